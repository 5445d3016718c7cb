"""The REST API as an OpenAPI 3.1 document, served at GET /openapi.json.

Written here, next to the code, and copied to docs/openapi.json with
`python -m qc_live.openapi > docs/openapi.json` (a test checks the copy is
current and that every route of the app is described, and nothing else).
Socket.IO events are outside OpenAPI's reach: docs/api.md describes them.
"""
import json
import sys

from flask import Blueprint, jsonify

bp = Blueprint("openapi", __name__)

VERSION = "1.0.0"


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict) -> dict:
    return {"anyOf": [schema, {"type": "null"}]}


def _obj(properties: dict, required=(), extra: bool = False, description: str | None = None):
    schema = {"type": "object", "properties": properties, "additionalProperties": extra}
    if required:
        schema["required"] = list(required)
    if description:
        schema["description"] = description
    return schema


STRING = {"type": "string"}
INTEGER = {"type": "integer"}
BOOLEAN = {"type": "boolean"}
ID = {"type": "integer", "minimum": 1}
TIME = {"type": "string", "format": "date-time",
        "description": "ISO-8601 in UTC with a Z, to the millisecond"}
PRIORITY = {"type": "integer", "minimum": -1_000_000, "maximum": 1_000_000}
STATUS = {"type": "string", "enum": ["pending", "assigned", "completed", "cancelled",
                                     "expired"]}
ROLE = {"type": "string", "enum": ["reviewer", "supervisor", "admin"]}
PASSWORD = {"type": "string", "minLength": 8, "maxLength": 1024}
USERNAME = {"type": "string", "minLength": 1, "maxLength": 80,
            "description": "surrounding blanks are removed; printable characters only (422 "
            "invalid_username); unique ignoring case (409 username_taken)"}
ONE_LINE_NAME = {"type": "string", "minLength": 1, "maxLength": 255,
                 "description": "one line of text: no control characters or line breaks "
                 "(422 control_character)"}

SCHEMAS = {
    "Error": _obj({"error": _obj(
        {"code": {"type": "string", "pattern": "^[a-z][a-z0-9]*(_[a-z0-9]+)*$",
                  "description": "snake_case, stable: what programs test"},
         "message": {"type": "string", "description": "for a person"},
         "rows": {"type": "array", "items": _ref("RowProblem"),
                  "description": "invalid_tasks: every bad row (at most 1,000 listed)"}},
        ["code", "message"], extra=True)}, ["error"]),
    "RowProblem": _obj({"index": {"type": "integer", "description": "row, from 0"},
                        "line": {"type": "integer", "description": "CSV import: line of the "
                                 "file (the header is line 1)"},
                        "field": _nullable(STRING), "code": STRING, "message": STRING},
                       ["index", "code", "message"]),
    "Task": _obj({
        "id": ID, "external_id": _nullable(STRING), "name": STRING,
        "payload": {"type": "object"}, "priority": INTEGER, "status": STATUS,
        "assignee_id": _nullable(ID), "created_at": TIME, "assigned_at": _nullable(TIME),
        "completed_at": _nullable(TIME), "deadline": _nullable(TIME),
        "outcome": _nullable({"type": "string", "enum": ["pass", "fail"]}),
        "note": _nullable(STRING)},
        ["id", "external_id", "name", "payload", "priority", "status", "assignee_id",
         "created_at", "assigned_at", "completed_at", "deadline", "outcome", "note"]),
    "NewTask": _obj({
        "name": ONE_LINE_NAME,
        "payload": _nullable({"type": "object", "description": "at most 64 KiB as JSON"}),
        "priority": _nullable(PRIORITY),
        "deadline": _nullable({"type": "string", "format": "date-time",
                               "description": "without an offset: UTC"}),
        "external_id": _nullable({"type": "string", "minLength": 1, "maxLength": 191,
                                  "description": "idempotency key: the same external_id "
                                  "again gives the existing task; one line of text "
                                  "(422 control_character otherwise)"})},
        ["name"]),
    "TaskChanges": {
        "oneOf": [
            _obj({"name": ONE_LINE_NAME,
                  "payload": {"type": "object"}, "priority": PRIORITY,
                  "deadline": _nullable({"type": "string", "format": "date-time",
                                         "description": "null clears the deadline"})},
                 description="edit: at least one field", extra=False),
            _obj({"status": {"const": "cancelled"}}, ["status"],
                 description="cancel (on its own)")],
    },
    "TaskPage": _obj({"tasks": {"type": "array", "items": _ref("Task")},
                      "next_cursor": _nullable(STRING)}, ["tasks", "next_cursor"]),
    "TaskEvent": _obj({
        "at": TIME,
        "kind": {"type": "string", "description": "created, assigned, completed, released, "
                 "requeued, unacknowledged, signed_out, cancelled, expired, updated"},
        "reviewer_id": _nullable(ID), "actor_id": _nullable(ID),
        "detail": _nullable({"type": "object"})},
        ["at", "kind", "reviewer_id", "actor_id", "detail"]),
    "ImportResult": _obj({
        "created": INTEGER,
        "existing": {"type": "integer", "description": "rows whose external_id was already "
                     "present (or earlier in the file)"},
        "invalid": {"type": "array", "items": _ref("RowProblem"),
                    "description": "skipped rows (with skip_invalid=1), at most 1,000 listed"},
        "invalid_rows": INTEGER, "total_rows": INTEGER, "batches": INTEGER,
        "task_ids": {"type": "array", "items": ID,
                     "description": "ids of the imported rows in file order; only when at "
                     "most 1,000 rows were imported"}},
        ["created", "existing", "invalid", "invalid_rows", "total_rows", "batches"]),
    "User": _obj({"id": ID, "username": STRING, "role": ROLE, "active": BOOLEAN,
                  "online": BOOLEAN, "available": BOOLEAN, "task_id": _nullable(ID),
                  "completed_count": INTEGER},
                 ["id", "username", "role", "active", "online", "available", "task_id",
                  "completed_count"]),
    "NewUser": _obj({"username": USERNAME, "password": PASSWORD, "role": ROLE},
                    ["username", "password"]),
    "UserChanges": _obj({"username": USERNAME,
                         "role": {**ROLE, "description": "admins only"},
                         "active": BOOLEAN, "password": PASSWORD}),
    "Tokens": _obj({"token": STRING, "access_token": STRING, "refresh_token": STRING,
                    "user": _obj({"id": ID, "username": STRING, "role": ROLE},
                                 ["id", "username", "role"])},
                   ["token", "access_token", "refresh_token", "user"], extra=True),
    "ReviewerStats": _obj({
        "id": ID, "username": STRING, "completed_today": INTEGER, "completed_total": INTEGER,
        "passed": INTEGER, "failed": INTEGER,
        "median_handle_s": _nullable({"type": "number", "description": "today, assigned to "
                                      "completed"})},
        ["id", "username", "completed_today", "completed_total", "passed", "failed",
         "median_handle_s"]),
    "Queue": _obj({"pending": INTEGER, "assigned": INTEGER,
                   "by_priority": {"type": "object", "additionalProperties": INTEGER,
                                   "description": "pending tasks per priority"},
                   "oldest_pending_age_s": _nullable({"type": "number"})},
                  ["pending", "assigned", "by_priority", "oldest_pending_age_s"], extra=True),
    "Board": _obj({
        "reviewers": {"type": "array", "items": _obj({
            "id": ID, "username": STRING, "online": BOOLEAN, "available": BOOLEAN,
            "task_id": _nullable(ID), "task_since": _nullable(TIME),
            "completed_count": INTEGER, "connected": BOOLEAN}, extra=True)},
        "queue": _ref("Queue"),
        "stats": _obj({"completed_last_hour": INTEGER,
                       "median_handle_s": _nullable({"type": "number"}),
                       "reviewers": {"type": "array", "items": _ref("ReviewerStats")}},
                      extra=True),
        "at": TIME}, ["reviewers", "queue", "stats"], extra=True),
    "Message": _obj({"message": STRING}, ["message"], extra=True),
}

ERRORS = {
    "400": "bad input: not JSON, wrong types, unknown fields",
    "401": "no token, or an invalid, expired or revoked one",
    "403": "wrong role, or not your task",
    "404": "unknown id",
    "409": "state conflict",
    "413": "body too large",
    "415": "unsupported content type: a JSON body needs Content-Type: application/json",
    "422": "well-formed but invalid values",
    "429": "too many attempts",
    "503": "the database is not reachable",
}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes) -> dict:
    return {code: {"$ref": f"#/components/responses/E{code}"} for code in codes}


def _op(summary: str, who: str, ok: dict, errors=(), body=None, params=(), public=False,
        tag: str = "tasks", description: str | None = None) -> dict:
    """One operation. `who` says which roles may call it (x-roles, and the text).
    A JSON body may be refused with 415 (not declared as application/json)."""
    if body is not None and "application/json" in body["content"]:
        errors = sorted({*errors, "415"})
    operation = {"tags": [tag], "summary": summary,
                 "description": (description + "\n\n" if description else "") + f"Who: {who}.",
                 "x-roles": who, "responses": {**ok, **_errors(*errors)}}
    if public:
        operation["security"] = []
    if body is not None:
        operation["requestBody"] = body
    if params:
        operation["parameters"] = list(params)
    return operation


def _json_body(schema: dict, required: bool = True) -> dict:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def _path_id(name: str, what: str) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": ID,
            "description": f"the {what}'s id"}


def _query(name: str, schema: dict, description: str) -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}


TASK_ID = _path_id("task_id", "task")
USER_ID = _path_id("user_id", "user")
AUTH_ERRORS = ("401", "403")
HTML = {"description": "an HTML page", "content": {"text/html": {"schema": STRING}}}

PATHS = {
    "/login": {"post": _op(
        "Log in", "anyone", {"200": _json(_ref("Tokens"), "tokens and the user")},
        ("400", "401", "422", "429"), tag="auth", public=True,
        description="The name is found by its exact spelling, else ignoring case. Failed "
        "logins are throttled: after 10 failures for one username from one client address, "
        "or 50 from one address, within 5 minutes, 429 too_many_attempts with Retry-After "
        "(a success clears its name and address, a new password clears the name).",
        body=_json_body(_obj({"username": STRING, "password": STRING},
                             ["username", "password"])))},
    "/refresh": {"post": _op(
        "A new access token", "a refresh token in the Authorization header",
        {"200": _json(_obj({"access_token": STRING}, ["access_token"]), "a fresh access "
                      "token")}, ("401",), tag="auth")},
    "/logout": {"post": _op(
        "Log out everywhere", "any user",
        {"200": _json(_ref("Message"), "every token of the user is revoked")}, ("401",),
        tag="auth", description="Revokes every token of the user, disconnects its sockets "
        "and returns a held task to the queue at once.")},
    "/me/password": {"post": _op(
        "Change your own password", "any user",
        {"200": _json(_ref("Tokens"), "fresh tokens (with a message)")},
        ("400", "401", "403", "422"), tag="users",
        description="Every earlier token of the user dies and its sockets are disconnected; "
        "the answer carries fresh tokens. A reviewer keeps its task if it reconnects within "
        "the grace period. 403 wrong_password if current_password is wrong.",
        body=_json_body(_obj({"current_password": STRING, "new_password": PASSWORD},
                             ["current_password", "new_password"])))},
    "/availability": {"put": _op(
        "Pause or resume a reviewer", "a reviewer for itself; a supervisor for any reviewer",
        {"200": _json(_obj({"message": STRING, "availability": {"enum": [0, 1]},
                            "user_id": ID, "task": _nullable(_ref("Task"))},
                           ["message", "availability"], extra=True), "the new state")},
        ("400", "401", "403", "404", "422"), tag="reviewers",
        body=_json_body(_obj({"availability": {"enum": [0, 1, True, False]}, "user_id": ID},
                             ["availability"])))},
    "/me/task": {"get": _op(
        "The task you hold", "a reviewer",
        {"200": _json(_obj({"task": _nullable(_ref("Task"))}, ["task"]), "the task or null")},
        AUTH_ERRORS, tag="reviewers")},
    "/complete_task": {"post": _op(
        "Complete your task", "a reviewer, for its own task",
        {"200": _json(_obj({"message": STRING, "task": _ref("Task"),
                            "next_task": _nullable(_ref("Task"))},
                           ["message", "task", "next_task"]), "the completed and the next task")},
        ("400", "401", "403", "404", "409", "422"), tag="reviewers",
        body=_json_body(_obj({"task_id": ID, "user_id": ID,
                              "outcome": {"enum": ["pass", "fail"]},
                              "note": {"type": "string", "maxLength": 4000,
                                       "description": "tab and line breaks allowed, other "
                                       "control characters not"}}, ["task_id"])))},
    "/assign_task": {"post": _op(
        "Send a pending task out now", "a supervisor",
        {"200": _json(_obj({"message": STRING, "task": _ref("Task")}, ["message", "task"]),
                      "assigned to the longest-idle free reviewer, or still pending")},
        ("400", "401", "403", "404", "409"), body=_json_body(_obj({"task_id": ID},
                                                                  ["task_id"])))},
    "/tasks": {
        "get": _op(
            "List tasks", "a supervisor",
            {"200": _json(_ref("TaskPage"), "one page and the cursor of the next")},
            ("400", "401", "403", "422"),
            description="Keyset pagination: pass next_cursor back as `cursor` (with the same "
            "order_by) until it is null. Unknown parameters are 400.",
            params=[
                _query("status", STRING, "one status or a comma-separated list (or repeat "
                       "the parameter); default: all"),
                _query("assignee_id", ID, "tasks this reviewer holds or held"),
                _query("priority", PRIORITY, "exactly this priority"),
                _query("order_by", {"enum": ["created_at", "-created_at", "priority",
                                             "deadline"], "default": "created_at"},
                       "created_at: oldest first; -created_at: newest first; priority: "
                       "highest first, then oldest first (dispatch order); deadline: "
                       "earliest first, tasks without one last (oldest first). Ties: by id."),
                _query("limit", {"type": "integer", "minimum": 1, "maximum": 500,
                                 "default": 50}, "page size"),
                _query("cursor", STRING, "next_cursor of the previous page (opaque)")]),
        "post": _op(
            "Create one task or a list", "a supervisor",
            {"201": _json(_obj({"tasks": {"type": "array", "items": _ref("Task")}},
                               ["tasks"]), "the tasks, in input order")},
            ("400", "401", "403", "409", "413", "422", "503"),
            description="Every item is checked first: one bad item refuses the list "
            "(invalid_tasks, with `rows`). At most 100,000 tasks. Lists of more than 1,000 "
            "are written in batches of 1,000 (each a transaction, dispatched at once); if "
            "the database fails part-way the error says how far it got (created, "
            "imported_through_index).",
            body=_json_body({"oneOf": [_ref("NewTask"), {"type": "array",
                                                         "items": _ref("NewTask")}]}))},
    "/tasks/import": {"post": _op(
        "Import tasks from a CSV file", "a supervisor",
        {"201": _json(_ref("ImportResult"), "what was imported")},
        ("400", "401", "403", "409", "413", "415", "422", "503"),
        description="UTF-8 CSV with a header row: name (required), priority, deadline, "
        "external_id, payload (a JSON object); an empty cell means not given. Every row is "
        "checked first: with any bad row nothing is imported (400/422 invalid_tasks listing "
        "the rows), unless skip_invalid=1, which imports the valid rows and lists the "
        "skipped ones. Rows are created in batches of 1,000 (each a transaction, dispatched "
        "at once). At most 100,000 rows and 64 MiB. If the database fails part-way the "
        "error says how far it got (created, imported_through_line).",
        params=[_query("skip_invalid", {"enum": ["0", "1"], "default": "0"},
                       "import the valid rows even if some are invalid")],
        body={"required": True, "content": {
            "multipart/form-data": {"schema": _obj({"file": {"type": "string",
                                                             "format": "binary"}},
                                                   ["file"])},
            "text/csv": {"schema": STRING}}})},
    "/tasks/{task_id}": {
        "get": _op("One task", "a supervisor; a reviewer for a task it holds or held",
                   {"200": _json(_ref("Task"), "the task")}, ("401", "403", "404"),
                   params=[TASK_ID]),
        "patch": _op(
            "Edit or cancel a task", "a supervisor",
            {"200": _json(_ref("Task"), "the task as it is now")},
            ("400", "401", "403", "404", "409", "422"), params=[TASK_ID],
            description="Edits go to a holder at once (task-assigned again, same id); "
            "cancelling an assigned task sends its holder task-revoked (cancelled) and then "
            "its next task. Finished tasks are 409 task_final. Only deadline may be null.",
            body=_json_body(_ref("TaskChanges")))},
    "/tasks/{task_id}/history": {"get": _op(
        "A task's history", "a supervisor; a reviewer for a task it holds or held",
        {"200": _json(_obj({"task_id": ID, "events": {"type": "array",
                                                      "items": _ref("TaskEvent")}},
                           ["task_id", "events"]), "every transition, oldest first")},
        ("401", "403", "404"), params=[TASK_ID])},
    "/tasks/{task_id}/release": {"post": _op(
        "Take a task back into the queue", "a supervisor",
        {"200": _json(_ref("Task"), "the task, pending again (it keeps its place)")},
        ("401", "403", "404", "409"), params=[TASK_ID])},
    "/users": {
        "get": _op("List users", "a supervisor",
                   {"200": _json(_obj({"users": {"type": "array", "items": _ref("User")}},
                                      ["users"]), "every account")}, AUTH_ERRORS, tag="users"),
        "post": _op("Create a user", "an admin; a supervisor for reviewers",
                    {"201": _json(_ref("User"), "the new user")},
                    ("400", "401", "403", "409", "422"), tag="users",
                    body=_json_body(_ref("NewUser")))},
    "/users/{user_id}": {
        "patch": _op(
            "Change a user", "an admin; a supervisor for reviewers (not their role)",
            {"200": _json(_ref("User"), "the user as it is now")},
            ("400", "401", "403", "404", "409", "422"), tag="users", params=[USER_ID],
            description="Changing the role, resetting the password or active=false signs "
            "the user out everywhere (tokens, sockets, held task back to the queue). The "
            "last active admin cannot be demoted or deactivated (409 last_admin), nobody "
            "deactivates themselves (409 cannot_deactivate_self).",
            body=_json_body(_ref("UserChanges"))),
        "delete": _op(
            "Deactivate a user", "an admin; a supervisor for reviewers",
            {"204": {"description": "deactivated (the account and its history stay)"}},
            ("401", "403", "404", "409"), tag="users", params=[USER_ID])},
    "/users/{user_id}/sign-out": {"post": _op(
        "Force a user offline", "an admin; a supervisor for reviewers",
        {"200": _json(_obj({"message": STRING, "user_id": ID, "task": _nullable(_ref("Task"))},
                           ["message", "user_id", "task"]),
                      "signed out; `task` is the task that went back to the queue")},
        ("401", "403", "404"), tag="users", params=[USER_ID])},
    "/users/{user_id}/stats": {"get": _op(
        "One reviewer's stats", "a supervisor; a reviewer for itself",
        {"200": _json(_ref("ReviewerStats"), "the reviewer's figures")},
        ("401", "403", "404", "422"), tag="stats", params=[USER_ID])},
    "/stats": {"get": _op(
        "Queue and reviewer stats", "a supervisor",
        {"200": _json(_obj({"queue": {"allOf": [_ref("Queue"), _obj({
            "completed_last_hour": INTEGER,
            "median_handle_s": _nullable({"type": "number"})}, extra=True)]},
            "reviewers": {"type": "array", "items": _ref("ReviewerStats")}, "at": TIME},
            ["queue", "reviewers"]), "the figures")}, AUTH_ERRORS, tag="stats")},
    "/board": {"get": _op("The board snapshot", "a supervisor",
                          {"200": _json(_ref("Board"), "the same snapshot /board pushes")},
                          AUTH_ERRORS, tag="stats")},
    "/healthz": {"get": _op(
        "Health", "anyone",
        {"200": _json(_obj({"status": STRING, "database": STRING, "process": STRING},
                           extra=True), "the database answers"),
         "503": _json(_obj({"status": STRING, "database": STRING, "error": {"type": "object"}},
                           extra=True), "the database does not answer")},
        tag="operations", public=True)},
    "/metrics": {"get": _op(
        "Prometheus metrics", "anyone; with QC_METRICS_TOKEN set, that token as a bearer",
        {"200": {"description": "Prometheus text format (OpenMetrics if asked for in Accept): "
                 "this process's counters and the floor's gauges (docs/deploy.md)",
                 "content": {"text/plain": {"schema": STRING}}}},
        ("401",), tag="operations", public=True)},
    "/openapi.json": {"get": _op("This document", "anyone",
                                 {"200": {"description": "OpenAPI 3.1",
                                          "content": {"application/json": {}}}},
                                 tag="operations", public=True)},
    "/": {"get": _op("Login page", "anyone", {"200": HTML}, tag="pages", public=True)},
    "/reviewer": {"get": _op("Reviewer page", "anyone (the page logs in itself)",
                             {"200": HTML}, tag="pages", public=True)},
    "/supervisor": {"get": _op("Board page", "anyone (the page logs in itself)",
                               {"200": HTML}, tag="pages", public=True)},
    "/vendor/{name}": {"get": _op(
        "The Socket.IO browser client", "anyone",
        {"200": {"description": "JavaScript", "content": {"text/javascript": {}}}}, ("404",),
        tag="pages", public=True,
        params=[{"name": "name", "in": "path", "required": True, "schema": STRING}])},
    "/static/{filename}": {"get": _op(
        "Static files of the pages", "anyone", {"200": {"description": "the file"}}, ("404",),
        tag="pages", public=True,
        params=[{"name": "filename", "in": "path", "required": True, "schema": STRING}])},
}


def spec() -> dict:
    return {
        "openapi": "3.1.0",
        "info": {"title": "qc_live", "version": VERSION,
                 "description": "Real-time task dispatch for manual QC teams. REST here; "
                 "the Socket.IO namespaces /reviewer and /board are described in "
                 "docs/api.md. Every error is {\"error\": {\"code\", \"message\"}}."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "tags": [{"name": n} for n in ("auth", "tasks", "reviewers", "users", "stats",
                                        "operations", "pages")],
        "paths": PATHS,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "bearerFormat": "JWT"}},
            "schemas": SCHEMAS,
            "responses": {f"E{code}": _json(_ref("Error"), text)
                          for code, text in ERRORS.items()},
        },
    }


@bp.get("/openapi.json")
def openapi_json():
    return jsonify(spec())


if __name__ == "__main__":
    json.dump(spec(), sys.stdout, indent=1)
    sys.stdout.write("\n")
