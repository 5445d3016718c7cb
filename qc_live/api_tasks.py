"""REST for tasks: intake (JSON and CSV), listing, lookup, history, and the
supervisor's hands on the queue (edit, cancel, release, assign)."""
from flask import Blueprint, Response, jsonify, request, stream_with_context
from flask_jwt_extended import current_user
from sqlalchemy.exc import IntegrityError

from . import export, importer, routing, state
from .api import Media, api
from .auth import role_required
from .database import yield_to_loop
from .dispatch import history_for_reader
from .errors import BadRequest, Conflict, NotFound, UnsupportedMediaType
from .extensions import db
from .history import task_events
from .listing import list_tasks
from .models import MAX_ID, Role
from .schemas.answers import (AuditedTask, Assigned, CreatedTasks, ImportResult,
                              SupervisedTask, Task, TaskHistory, TaskPage)
from .sql import READ_TASK
from .lifecycle import TaskSpec
from .schemas.requests import (AssignTask, ImportOptions, NewTasks, Resolution, TaskChanges,
                               TaskExport, TaskListing)

bp = Blueprint("tasks", __name__)


def _existing_id(task_id: int) -> int:
    """The URL's id, or 404 when no row can have it (SQLite cannot even bind it)."""
    if task_id > MAX_ID:
        raise NotFound(f"task {task_id} does not exist", code="task_not_found")
    return task_id


@bp.post("/tasks")
@role_required(Role.SUPERVISOR)
@api("Create one task or a list", "a supervisor", body=NewTasks,
     answers={201: (CreatedTasks, "the tasks, in input order")}, errors=(401, 403, 409, 413, 503),
     description="Every item is checked first: one bad item refuses the list (invalid_tasks, "
     "with `rows`). At most 100,000 tasks. Lists of more than 1,000 are written in batches of "
     "1,000 (each a transaction, dispatched at once); if the database fails part-way the "
     "error says how far it got (created, imported_through_index).")
def create_tasks(body: list):
    cfg = state.config()
    specs = [TaskSpec(**dict(task)) for task in body]
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
@api("List tasks", "a supervisor", query=TaskListing, errors=(401, 403),
     answers={200: (TaskPage, "one page and the cursor of the next")},
     description="Keyset pagination: pass next_cursor back as `cursor` (with the same "
     "order_by) until it is null. Unknown parameters are 400. The results view: "
     "order_by=-completed_at (newest completion first; tasks never completed are not listed) "
     "with outcome, completed_after (inclusive), completed_before (exclusive). q: the task "
     "with that external_id, and tasks whose name begins with q.")
def get_tasks(query: TaskListing):
    """A page of tasks; see listing.py for the orders and the cursor."""
    tasks, next_cursor = list_tasks(db.session, query.task_query())
    return jsonify({"tasks": tasks, "next_cursor": next_cursor})


@bp.get("/tasks/export")
@role_required(Role.SUPERVISOR)
@api("Export tasks as CSV or NDJSON", "a supervisor", query=TaskExport, errors=(401, 403),
     answers={200: ((Media("text/csv", {"type": "string"}),
                     Media("application/x-ndjson", {"type": "string"})),
                    "streamed: CSV (UTF-8, a header row) or NDJSON (one task object per "
                    "line), as `format` says")},
     description="Every task matching the filters of GET /tasks and the completion window "
     "(completed_after inclusive, completed_before exclusive), by id, streamed in pages of "
     "1,000 (flat memory at any size). CSV text cells that begin with =, +, -, @, a tab or "
     "a carriage return get a leading single quote (OWASP CSV injection). A bad filter or "
     "format is refused before anything is sent.")
def export_tasks(query: TaskExport):
    chosen = export.ExportQuery(statuses=tuple(query.status), assignee_id=query.assignee_id,
                                priority=query.priority, queue=query.queue,
                                outcome=query.outcome, completed_after=query.completed_after,
                                completed_before=query.completed_before)
    body = stream_with_context(export.stream(db.session, chosen, query.format))
    return Response(body, mimetype=None, content_type=export.MEDIA_TYPES[query.format],
                    headers={"Content-Disposition":
                             f'attachment; filename="tasks.{query.format}"',
                             "Cache-Control": "no-store"})


CSV_TYPES = ("text/csv", "application/csv", "text/plain")
CSV_UPLOAD = {"multipart/form-data": {"type": "object", "properties": {
    "file": {"type": "string", "format": "binary"}}, "required": ["file"]},
    "text/csv": {"type": "string"}}


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
@api("Import tasks from a CSV file", "a supervisor", body=CSV_UPLOAD, query=ImportOptions,
     answers={201: (ImportResult, "what was imported")},
     errors=(400, 401, 403, 409, 413, 422, 503),
     description="UTF-8 CSV with a header row: name (required), priority, deadline, "
     "external_id, payload (a JSON object), queue (an existing queue: unknown_queue for the "
     "row otherwise; default: default), expected_outcome (pass or fail: a gold task); an "
     "empty cell means not given. Every row is "
     "checked first: with any bad row nothing is imported (400/422 invalid_tasks listing "
     "the rows), unless skip_invalid=1, which imports the valid rows and lists the skipped "
     "ones. Rows are created in batches of 1,000 (each a transaction, dispatched at once). "
     "At most 100,000 rows and 64 MiB. If the database fails part-way the error says how far "
     "it got (created, imported_through_line).")
def import_tasks(query: ImportOptions):
    """Import a CSV of tasks (see importer.py for the file and the policy)."""
    cfg = state.config()
    request.max_content_length = cfg.max_import_bytes
    skip_invalid = query.skip_invalid
    parsed = importer.parse(importer.decode(_upload()), cfg.max_payload_bytes,
                            cfg.max_tasks_per_request, pause=yield_to_loop,
                            queues=routing.queue_names(db.session))
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
@api("One task", "a supervisor; a reviewer for a task it holds or held",
     answers={200: (SupervisedTask, "the task; for a supervisor, a pending task also says "
                    "why it is `waiting`")}, errors=(401, 403, 404))
def get_task(task_id: int):
    task = state.dispatcher().task_for_reader(db.session, _existing_id(task_id), current_user)
    if task["status"] == "pending" and \
            Role(current_user.role).rank >= Role.SUPERVISOR.rank:
        row = db.session.execute(READ_TASK, {"task_id": task["id"]}).first()
        task["waiting"] = routing.waiting(db.session, state.config(), row)
    return jsonify(task)


@bp.patch("/tasks/<int:task_id>")
@role_required(Role.SUPERVISOR)
@api("Edit or cancel a task", "a supervisor", body=TaskChanges,
     answers={200: (AuditedTask, "the task as it is now")}, errors=(401, 403, 404, 409, 422),
     description="A pending task may move to another `queue` (422 unknown_queue; 409 "
     "task_not_pending once held); it keeps its place by age. "
     "Edits go to a holder at once (task-assigned again, same id); cancelling "
     "an assigned task sends its holder task-revoked (cancelled) and then its next task. "
     "Finished tasks are 409 task_final. Only deadline may be null.")
def patch_task(task_id: int, body: TaskChanges):
    """Edit name/payload/priority/deadline, or cancel. The holder sees the
    new version at once (task-assigned again), or task-revoked on cancel."""
    changes = body.changes()
    outcome = state.dispatcher().update_task(db.session, _existing_id(task_id), changes,
                                             current_user.id)
    state.notifier().push(outcome)
    return jsonify(outcome.value)


@bp.get("/tasks/<int:task_id>/history")
@role_required(Role.REVIEWER)
@api("A task's history", "a supervisor; a reviewer for a task it holds or held",
     answers={200: (TaskHistory, "every transition, oldest first")}, errors=(401, 403, 404))
def task_history(task_id: int):
    """Supervisors: any task. Reviewers: a task they hold or held."""
    task = state.dispatcher().task_for_reader(db.session, _existing_id(task_id), current_user)
    events = history_for_reader(task_events(db.session, task["id"]), current_user)
    return jsonify({"task_id": task["id"], "events": events})


@bp.post("/tasks/<int:task_id>/release")
@role_required(Role.SUPERVISOR)
@api("Take a task back into the queue", "a supervisor",
     answers={200: (Task, "the task, pending again (it keeps its place)")},
     errors=(401, 403, 404, 409))
def release_task(task_id: int):
    outcome = state.dispatcher().release(db.session, _existing_id(task_id), current_user.id)
    state.notifier().push(outcome)
    return jsonify(outcome.value)


@bp.post("/tasks/<int:task_id>/resolve")
@role_required(Role.SUPERVISOR)
@api("Settle a disputed task", "a supervisor", body=Resolution,
     answers={200: (AuditedTask, "the task, with its final verdict")},
     errors=(401, 403, 404, 409),
     description="The final verdict of a task whose audit disagreed (audit: disputed): "
     "final_outcome and final_note are set and task.finalized is sent, once. 409 not_disputed "
     "(no dispute), 409 already_resolved.")
def resolve_task(task_id: int, body: Resolution):
    outcome = state.dispatcher().resolve(db.session, _existing_id(task_id), body.outcome,
                                         body.note, current_user.id)
    state.notifier().push(outcome)
    return jsonify(outcome.value)


@bp.post("/assign_task")
@role_required(Role.SUPERVISOR)
@api("Send a pending task out now", "a supervisor", body=AssignTask, errors=(401, 403, 404, 409),
     answers={200: (Assigned, "assigned to the longest-idle free qualified reviewer (or the "
                    "one named), or still pending")},
     description="With reviewer_id: 409 not_qualified (the message says why) when that "
     "reviewer does not qualify for the task's queue now, 409 reviewer_unavailable when it is "
     "not free (offline, paused, holding a task). Without: the task stays pending when no "
     "qualified reviewer is free.")
def assign_task(body: AssignTask):
    task_id = body.task_id
    outcome = state.dispatcher().assign_task(db.session, task_id, current_user.id,
                                             reviewer_id=body.reviewer_id)
    state.notifier().push(outcome)
    task = outcome.value
    if task["assignee_id"] is None:
        message = (f"task {task_id} stays pending: no reviewer qualified for queue "
                   f"{task['queue']!r} is free right now")
    else:
        message = f"task {task_id} assigned to reviewer {task['assignee_id']}"
    return jsonify({"message": message, "task": task})
