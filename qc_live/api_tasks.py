"""REST for tasks: intake, lookup, and the supervisor's hands on the queue."""
from flask import Blueprint, current_app, jsonify
from flask_jwt_extended import current_user
from sqlalchemy.exc import IntegrityError

from . import dispatch
from .auth import role_required
from .errors import Conflict, NotFound
from .extensions import db
from .models import Role
from .notify import push
from .validation import MAX_ID, integer, json_body, json_object, task_specs

bp = Blueprint("tasks", __name__)


def config():
    return current_app.extensions["qc_config"]


def _existing_id(task_id: int) -> int:
    """The URL's id, or 404 when no row can have it (SQLite cannot even bind it)."""
    if task_id > MAX_ID:
        raise NotFound(f"task {task_id} does not exist", code="task_not_found")
    return task_id


@bp.post("/tasks")
@role_required(Role.SUPERVISOR)
def create_tasks():
    cfg = config()
    specs = task_specs(json_body(), cfg.max_payload_bytes, cfg.max_tasks_per_request)
    try:
        outcome = dispatch.create_tasks(db.session, specs, current_user.id, cfg.lease_seconds)
    except IntegrityError:
        # create_tasks already retried once to find a concurrent twin; a second
        # clash means the database calls two external_ids equal that we do not
        # (a case-insensitive collation): refuse rather than guess.
        db.session.rollback()
        raise Conflict("an external_id clashes with an existing task's external_id "
                       "(the database compares them case- or accent-insensitively)",
                       code="external_id_conflict") from None
    push(outcome)
    return jsonify({"tasks": outcome.value}), 201


@bp.get("/tasks/<int:task_id>")
@role_required(Role.REVIEWER)
def get_task(task_id: int):
    return jsonify(dispatch.task_for_reader(db.session, _existing_id(task_id), current_user))


@bp.post("/tasks/<int:task_id>/release")
@role_required(Role.SUPERVISOR)
def release_task(task_id: int):
    outcome = dispatch.release(db.session, _existing_id(task_id), current_user.id,
                               config().lease_seconds)
    push(outcome)
    return jsonify(outcome.value)


@bp.post("/assign_task")
@role_required(Role.SUPERVISOR)
def assign_task():
    data = json_object(json_body(), {"task_id"})
    task_id = integer(data, "task_id", low=1, high=MAX_ID)
    outcome = dispatch.assign_task(db.session, task_id, current_user.id, config().lease_seconds)
    push(outcome)
    task = outcome.value
    if task["assignee_id"] is None:
        message = f"task {task_id} stays pending: no reviewer is free right now"
    else:
        message = f"task {task_id} assigned to reviewer {task['assignee_id']}"
    return jsonify({"message": message, "task": task})
