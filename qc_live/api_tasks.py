"""REST for tasks: intake (JSON and CSV), listing, lookup, history, and the
supervisor's hands on the queue (edit, cancel, release, assign)."""
from flask import Blueprint, jsonify, request
from flask_jwt_extended import current_user
from sqlalchemy.exc import IntegrityError

from . import importer, state
from .auth import role_required
from .database import yield_to_loop
from .errors import BadRequest, Conflict, NotFound, UnsupportedMediaType
from .extensions import db
from .history import task_events
from .listing import list_tasks
from .models import Role
from .validation import (MAX_ID, integer, json_body, json_object, query_flag, query_params,
                         task_changes, task_query, task_specs)

bp = Blueprint("tasks", __name__)


def _existing_id(task_id: int) -> int:
    """The URL's id, or 404 when no row can have it (SQLite cannot even bind it)."""
    if task_id > MAX_ID:
        raise NotFound(f"task {task_id} does not exist", code="task_not_found")
    return task_id


@bp.post("/tasks")
@role_required(Role.SUPERVISOR)
def create_tasks():
    cfg = state.config()
    specs = task_specs(json_body(), cfg.max_payload_bytes, cfg.max_tasks_per_request,
                       pause=yield_to_loop)
    if len(specs) > importer.BATCH_SIZE:
        return _create_in_batches(specs, cfg)
    try:
        outcome = state.dispatcher().create_tasks(db.session, specs, current_user.id)
    except IntegrityError:
        # create_tasks already retried once to find a concurrent twin; a second
        # clash means the database calls two external_ids equal that we do not
        # (a case-insensitive collation): refuse rather than guess.
        db.session.rollback()
        raise Conflict("an external_id clashes with an existing task's external_id "
                       "(the database compares them case- or accent-insensitively)",
                       code="external_id_conflict") from None
    state.notifier().push(outcome)
    return jsonify({"tasks": outcome.value}), 201


def _create_in_batches(specs, cfg):
    """A long list as the CSV import writes it, one transaction per batch:
    in one transaction it would keep the event loop (on SQLite, every writer)
    waiting for longer than a process lease. Every item was checked already,
    so only a database failure can stop it part-way, and the error says how
    far it got."""
    tasks = []

    def after_batch(outcome):
        tasks.extend(outcome.value)
        _after_batch(outcome)
    importer.create_in_batches(db.session, list(enumerate(specs)), current_user.id,
                               after_batch, counted_by="index")
    return jsonify({"tasks": tasks}), 201


@bp.get("/tasks")
@role_required(Role.SUPERVISOR)
def get_tasks():
    """A page of tasks; see listing.py for the orders and the cursor."""
    tasks, next_cursor = list_tasks(db.session, task_query(request.args))
    return jsonify({"tasks": tasks, "next_cursor": next_cursor})


CSV_TYPES = ("text/csv", "application/csv", "text/plain")


def _upload() -> bytes:
    """The CSV: the multipart field "file", or the whole body as text/csv."""
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is None:
            raise BadRequest("send the CSV as the multipart field \"file\"",
                             code="missing_file")
        return upload.read()
    if request.mimetype in CSV_TYPES:
        return request.get_data(cache=False)
    raise UnsupportedMediaType("send a CSV file: multipart/form-data with a \"file\" "
                               "field, or a text/csv body (JSON goes to POST /tasks)")


def _after_batch(outcome) -> None:
    state.notifier().push(outcome)
    yield_to_loop()


@bp.post("/tasks/import")
@role_required(Role.SUPERVISOR)
def import_tasks():
    """Import a CSV of tasks (see importer.py for the file and the policy)."""
    cfg = state.config()
    request.max_content_length = cfg.max_import_bytes
    skip_invalid = query_flag(query_params(request.args, {"skip_invalid"}), "skip_invalid")
    parsed = importer.parse(importer.decode(_upload()), cfg.max_payload_bytes,
                            cfg.max_tasks_per_request, pause=yield_to_loop)
    if parsed.problems and not skip_invalid:
        raise parsed.refusal()
    done = importer.create_in_batches(db.session, parsed.specs, current_user.id,
                                      _after_batch)
    body = {"created": done.created, "existing": done.existing, "invalid": parsed.report(),
            "invalid_rows": parsed.invalid_rows, "total_rows": parsed.total_rows,
            "batches": done.batches}
    if len(done.task_ids) <= importer.MAX_IDS_IN_ANSWER:
        body["task_ids"] = done.task_ids
    return jsonify(body), 201


@bp.get("/tasks/<int:task_id>")
@role_required(Role.REVIEWER)
def get_task(task_id: int):
    return jsonify(state.dispatcher().task_for_reader(db.session, _existing_id(task_id),
                                                      current_user))


@bp.patch("/tasks/<int:task_id>")
@role_required(Role.SUPERVISOR)
def patch_task(task_id: int):
    """Edit name/payload/priority/deadline, or cancel. The holder sees the
    new version at once (task-assigned again), or task-revoked on cancel."""
    changes = task_changes(json_body(), state.config().max_payload_bytes)
    outcome = state.dispatcher().update_task(db.session, _existing_id(task_id), changes,
                                             current_user.id)
    state.notifier().push(outcome)
    return jsonify(outcome.value)


@bp.get("/tasks/<int:task_id>/history")
@role_required(Role.REVIEWER)
def task_history(task_id: int):
    """Supervisors: any task. Reviewers: a task they hold or held."""
    task = state.dispatcher().task_for_reader(db.session, _existing_id(task_id), current_user)
    return jsonify({"task_id": task["id"], "events": task_events(db.session, task["id"])})


@bp.post("/tasks/<int:task_id>/release")
@role_required(Role.SUPERVISOR)
def release_task(task_id: int):
    outcome = state.dispatcher().release(db.session, _existing_id(task_id), current_user.id)
    state.notifier().push(outcome)
    return jsonify(outcome.value)


@bp.post("/assign_task")
@role_required(Role.SUPERVISOR)
def assign_task():
    data = json_object(json_body(), {"task_id"})
    task_id = integer(data, "task_id", low=1, high=MAX_ID)
    outcome = state.dispatcher().assign_task(db.session, task_id, current_user.id)
    state.notifier().push(outcome)
    task = outcome.value
    if task["assignee_id"] is None:
        message = f"task {task_id} stays pending: no reviewer is free right now"
    else:
        message = f"task {task_id} assigned to reviewer {task['assignee_id']}"
    return jsonify({"message": message, "task": task})
