"""REST for queues: supervisors list, create and edit them (the routing rules
and each queue's figures; see routing.py)."""
from flask import Blueprint, jsonify

from . import routing, state
from .api import api
from .auth import role_required
from .errors import NotFound
from .extensions import db
from .models import QUEUE_NAME_LENGTH, Role
from .schemas.answers import QueueInfo, Queues
from .schemas.requests import NewQueue, QueueChanges

bp = Blueprint("queues", __name__)


def _one(name: str) -> dict:
    found = routing.queue_figures(db.session, state.config(), name)
    if not found:
        raise NotFound(f"queue {name!r} does not exist", code="queue_not_found")
    return found[0]


@bp.get("/queues")
@role_required(Role.SUPERVISOR)
@api("List queues", "a supervisor", answers={200: (Queues, "every queue, by name")},
     errors=(401, 403))
def list_queues():
    return jsonify({"queues": routing.queue_figures(db.session, state.config())})


@bp.post("/queues")
@role_required(Role.SUPERVISOR)
@api("Create a queue", "a supervisor", body=NewQueue, answers={201: (QueueInfo, "the queue")},
     errors=(401, 403, 409),
     description="409 conflict if the name exists. A reviewer qualifies for the queue's tasks "
     "with a skill level of at least min_level, or at least 1 once a task has waited longer "
     "than relax_after_s.")
def create_queue(body: NewQueue):
    routing.create_queue(db.session, body.model_dump())
    return jsonify(_one(body.name)), 201


@bp.patch("/queues/<string:name>")
@role_required(Role.SUPERVISOR)
@api("Change a queue", "a supervisor", body=QueueChanges,
     answers={200: (QueueInfo, "the queue as it is now")}, errors=(401, 403, 404),
     description="Any of description, min_level, relax_after_s (null: never relax). Who "
     "qualifies changes from each reviewer's next claim; free reviewers who qualify now get "
     "work at once.")
def patch_queue(name: str, body: QueueChanges):
    if len(name) > QUEUE_NAME_LENGTH:
        raise NotFound(f"queue {name[:80]!r} does not exist", code="queue_not_found")
    routing.update_queue(db.session, name, body.changes())
    state.notifier().dispatch_later()
    return jsonify(_one(name))
