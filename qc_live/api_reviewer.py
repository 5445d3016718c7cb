"""The reviewer's REST fallback (and the original portal's endpoints).

Everything a socket does, over plain HTTP. A reviewer with no socket who calls
these is "seen" now: its grace period restarts (see presence.seen_over_rest),
so a REST-only client keeps its task by calling at least every
QC_GRACE_SECONDS (GET /me/task is enough).
"""
from flask import Blueprint, current_app, jsonify
from flask_jwt_extended import current_user

from . import dispatch, metrics, presence
from .api import api
from .auth import role_required
from .database import run_write
from .errors import Forbidden
from .extensions import db
from .models import Role
from .notify import push
from .schemas.answers import AvailabilitySet, Completed, HeldTask
from .schemas.requests import Availability, Completion

bp = Blueprint("reviewer_api", __name__)


def _seen():
    cfg = current_app.extensions["qc_config"]
    run_write(db.session, presence.seen_over_rest, current_user.id, cfg.lease_seconds)


def _delivered(task: dict | None) -> None:
    """A task in an HTTP answer has reached the reviewer: that is its ack."""
    if task is not None:
        run_write(db.session, dispatch.acknowledge, current_user.id, task["id"])


@bp.get("/me/task")
@role_required(Role.REVIEWER, exact=True)
@api("The task you hold", "a reviewer", answers={200: (HeldTask, "the task or null")},
     errors=(401, 403))
def my_task():
    _seen()
    task = dispatch.current_task(db.session, current_user.id)
    _delivered(task)
    return jsonify({"task": task})


@bp.post("/complete_task")
@role_required(Role.REVIEWER, exact=True)
@api("Complete your task", "a reviewer, for its own task", body=Completion,
     answers={200: (Completed, "the completed and the next task")},
     errors=(401, 403, 404, 409))
def complete_task(body: Completion):
    started = metrics.clock()
    task_id, outcome, note, user_id = body.task_id, body.outcome, body.note, body.user_id
    if user_id is not None and user_id != current_user.id:
        raise Forbidden("reviewers complete their own tasks only", code="not_your_task")
    _seen()
    result = dispatch.complete(db.session, current_user.id, task_id, outcome, note)
    metrics.completed("rest", outcome, result, started)
    push(result)
    nxt = result.value["next_task"]
    _delivered(nxt)
    message = (f"task {task_id} completed; next task {nxt['id']} assigned" if nxt
               else f"task {task_id} completed; no task is pending")
    return jsonify({"message": message, **result.value})


@bp.put("/availability")
@role_required(Role.REVIEWER)
@api("Pause or resume a reviewer", "a reviewer for itself; a supervisor for any reviewer",
     body=Availability, answers={200: (AvailabilitySet, "the new state")},
     errors=(401, 403, 404))
def availability(body: Availability):
    cfg = current_app.extensions["qc_config"]
    available, target = body.availability, body.user_id
    me = current_user.id
    if target is None or target == me:
        if current_user.role != Role.REVIEWER.value:
            raise Forbidden("give the user_id of the reviewer to pause or resume",
                            code="not_a_reviewer")
        target, claim = me, True
        _seen()
    else:
        if Role(current_user.role).rank < Role.SUPERVISOR.rank:
            raise Forbidden("reviewers set their own availability only")
        claim = presence.is_online(db.session, target, cfg.lease_seconds)
    outcome = dispatch.set_availability(db.session, target, available, me, claim=claim)
    push(outcome)
    if target == me:
        _delivered(outcome.value["task"])
    state = "available" if available else "paused"
    return jsonify({"message": f"reviewer {target} is {state}",
                    "availability": int(available), "user_id": target,
                    "task": outcome.value["task"]})
