"""REST for tasks: intake, lookup, and the supervisor's hands on the queue."""
from flask import Blueprint, current_app, jsonify
from flask_jwt_extended import current_user

from . import dispatch
from .auth import role_required
from .extensions import db
from .models import Role
from .notify import push
from .validation import integer, json_body, json_object, task_specs

bp = Blueprint("tasks", __name__)


def config():
    return current_app.extensions["qc_config"]


@bp.post("/tasks")
@role_required(Role.SUPERVISOR)
def create_tasks():
    cfg = config()
    specs = task_specs(json_body(), cfg.max_payload_bytes, cfg.max_tasks_per_request)
    outcome = dispatch.create_tasks(db.session, specs, current_user.id, cfg.lease_seconds)
    push(outcome)
    return jsonify({"tasks": outcome.value}), 201


@bp.get("/tasks/<int:task_id>")
@role_required(Role.REVIEWER)
def get_task(task_id: int):
    return jsonify(dispatch.task_for_reader(db.session, task_id, current_user))


@bp.post("/tasks/<int:task_id>/release")
@role_required(Role.SUPERVISOR)
def release_task(task_id: int):
    outcome = dispatch.release(db.session, task_id, current_user.id, config().lease_seconds)
    push(outcome)
    return jsonify(outcome.value)


@bp.post("/assign_task")
@role_required(Role.SUPERVISOR)
def assign_task():
    data = json_object(json_body(), {"task_id"})
    task_id = integer(data, "task_id", low=1, high=2**63 - 1)
    outcome = dispatch.assign_task(db.session, task_id, current_user.id, config().lease_seconds)
    push(outcome)
    task = outcome.value
    if task["assignee_id"] is None:
        message = f"task {task_id} stays pending: no reviewer is free right now"
    else:
        message = f"task {task_id} assigned to reviewer {task['assignee_id']}"
    return jsonify({"message": message, "task": task})
