"""The shapes of the REST API and the socket events, each declared once.

Every request body and query string is a pydantic model here. The routes
parse requests into them (`api.api`), the socket handlers and the CSV import
use the same ones, and the OpenAPI document is generated from them
(openapi.py). Answers are models too, for the document only.

The contract's split of errors: type errors (a string where a number
belongs, a missing field, an unknown one) are 400; values of the right type
that make no sense (priority 10**9, outcome "maybe") are 422. `problems`
turns pydantic's errors into the contract's codes. Every type is strict: true
is not 1 and "5" is not 5 in JSON. Unknown fields are refused so typos do not
pass silently. In a body, null stands for an absent field, except in PATCH
bodies (`Changes`), where it is refused unless it means something.
"""
import json
import math
import re
from datetime import datetime
from typing import Annotated, Any, Callable, ClassVar, Literal, get_origin

from pydantic import (BaseModel, ConfigDict, Field, PrivateAttr, RootModel, ValidationError,
                      model_validator)
from pydantic_core import PydanticCustomError, core_schema

from .clock import parse_iso
from .errors import BadRequest, Invalid, QCError
from .listing import DEFAULT_ORDER, ORDERS, STATUSES, TaskQuery, decode_cursor
from .models import MAX_ID, Role
from .text import (ANY_TEXT, LINES, MAX_USERNAME, MIN_PASSWORD, ONE_LINE, check_new_password,
                   check_text, check_username)

MAX_NAME = 255
MAX_EXTERNAL_ID = 191
MAX_NOTE = 4000
MAX_PASSWORD = 1024
PRIORITY_RANGE = (-1_000_000, 1_000_000)
OUTCOMES = ("pass", "fail")
ROLES = tuple(role.value for role in Role)
LIST_LIMIT = (1, 500)
DEFAULT_LIST_LIMIT = 50


# --- JSON as the API accepts it -------------------------------------------------

def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400: the databases' JSON cannot store it
        raise ValueError(f"number out of range: {text}")
    return value


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def strict_json(text):
    """Parse JSON as the API accepts it. NaN and Infinity are not JSON (RFC
    8259); Python would accept them, echo them back unparseable, and MySQL's
    JSON columns refuse them. Raises ValueError (or RecursionError)."""
    return json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)


# --- rules of our own on a field -------------------------------------------------

def _problem(error: QCError) -> PydanticCustomError:
    """A refusal raised inside validation, carried with its status."""
    return PydanticCustomError(error.code, "{message}",
                               {"message": error.message, "status": error.status})


class Check:
    """A rule of our own on a field, run by pydantic after the field's type
    check (or before it with `before=True`, to convert a value first):
    `function(value, field name, validation context)` returns the value or
    raises a QCError. `schema` is what the rule means in the field's JSON
    schema: merged into the generated one, or in place of it (`replace`)."""

    def __init__(self, function: Callable, schema: dict | None = None, before: bool = False,
                 replace: bool = False):
        self.function, self.schema, self.before, self.replace = function, schema, before, replace

    def __get_pydantic_core_schema__(self, source, handler):
        wrap = (core_schema.with_info_before_validator_function if self.before
                else core_schema.with_info_after_validator_function)
        return wrap(self._run, handler(source))

    def _run(self, value, info):
        try:
            return self.function(value, info.field_name, info.context or {})
        except QCError as error:
            raise _problem(error) from None

    def __get_pydantic_json_schema__(self, schema, handler):
        if self.replace:
            return dict(self.schema)
        return {**handler(schema), **(self.schema or {})}


def text(max_length: int = 255, allow_empty: bool = False, strip: bool = False,
         kind: str = ONE_LINE) -> Check:
    """A string's rules (text.check_text): Unicode, blank, length, characters."""
    def check(value, name, _context):
        return check_text(value, name, max_length, allow_empty, strip, kind)
    schema = {"maxLength": max_length, **({} if allow_empty else {"minLength": 1})}
    return Check(check, schema)


def one_of(values, code: str, message: str | None = None, strip: bool = False) -> Check:
    """A string that must be one of `values` (422 `code` otherwise)."""
    def check(value, name, _context):
        value = value.strip() if strip else value
        if value not in values:
            raise Invalid(message or f"'{name}' must be one of {', '.join(values)}", code=code)
        return value
    return Check(check, {"type": "string", "enum": list(values)}, replace=True)


def _zero_or_one(value, name, _context):
    """true/false, or 1/0 as the original portal API sent them."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value not in (0, 1):
            raise Invalid(f"'{name}' must be 0 or 1", code="out_of_range")
        return bool(value)
    return value


def _payload(payload, name, context):
    try:
        size = len(json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
                   .encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate: MariaDB's JSON check refuses it
        raise BadRequest(f"'{name}' contains text that is not valid Unicode",
                         code="invalid_text") from None
    limit = context["max_payload_bytes"]
    if size > limit:
        raise Invalid(f"'{name}' is larger than {limit} bytes", code="payload_too_large")
    return payload


def _deadline(value, name, _context):
    """A naive UTC datetime. OverflowError: an offset can push 9999-12-31
    past year 9999 in UTC."""
    if not isinstance(value, str):
        raise BadRequest(f"'{name}' must be an ISO-8601 string", code="wrong_type")
    try:
        return parse_iso(value)
    except (ValueError, OverflowError):
        raise Invalid(f"'{name}' is not an ISO-8601 date-time", code="bad_datetime") from None


def _username(value, _name, _context):
    return check_username(value)


def _role(value, name, _context):
    try:
        return Role(value)
    except ValueError:
        raise Invalid(f"'{name}' must be reviewer, supervisor or admin", code="bad_role") \
            from None


def _strong_password(value: str, name: str) -> None:
    try:
        check_new_password(value, name)
    except QCError as error:
        raise _problem(error) from None


def _empty_is_none(value, _name, _context):
    return value or None


_INTEGER = re.compile(r"[+-]?[0-9]{1,20}")


def _query_integer(value, name, _context):
    if not _INTEGER.fullmatch(value.strip()):
        raise BadRequest(f"'{name}' must be an integer", code="wrong_type")
    return int(value)


def _query_flag(value, name, _context):
    value = value.strip().lower()
    if value in ("1", "true", "yes"):
        return True
    if value in ("0", "false", "no", ""):
        return False
    raise BadRequest(f"'{name}' must be 1 or 0", code="wrong_type")


def _statuses(values, name, _context):
    """Each value one status or a comma list; repeats dropped."""
    statuses = []
    for value in values:
        for status in value.split(","):
            status = status.strip()
            if status not in STATUSES:
                raise Invalid(f"'{name}' must be one or more of {', '.join(STATUSES)} "
                              f"(comma-separated), not {status!r}", code="bad_status")
            if status not in statuses:
                statuses.append(status)
    return statuses


# --- field types -----------------------------------------------------------------

Id = Annotated[int, Field(ge=1, le=MAX_ID)]
Priority = Annotated[int, Field(ge=PRIORITY_RANGE[0], le=PRIORITY_RANGE[1])]
TaskName = Annotated[str, text(MAX_NAME, strip=True), Field(
    description="surrounding blanks are removed; one line of text: no control characters "
    "or line breaks (422 control_character)")]
ExternalId = Annotated[str, text(MAX_EXTERNAL_ID), Field(
    description="idempotency key: the same external_id again gives the existing task; one "
    "line of text (422 control_character otherwise)")]
Payload = Annotated[dict[str, Any], Check(_payload), Field(
    description="a JSON object, at most 64 KiB as JSON")]
Deadline = Annotated[datetime, Check(_deadline, before=True), Field(
    description="ISO-8601; without an offset: UTC")]
Outcome = Annotated[str, one_of(OUTCOMES, "bad_outcome", "'outcome' must be \"pass\" or \"fail\"")]
Note = Annotated[str, text(MAX_NOTE, allow_empty=True, kind=LINES), Check(_empty_is_none),
                 Field(description="tab and line breaks allowed, other control characters not")]
Flag = Annotated[bool, Check(_zero_or_one, {"anyOf": [{"type": "boolean"}, {"enum": [0, 1]}]},
                             before=True, replace=True)]
Username = Annotated[str, text(MAX_USERNAME, strip=True, kind=ANY_TEXT), Check(_username), Field(
    description="surrounding blanks are removed; printable characters only (422 "
    "invalid_username); unique ignoring case (409 username_taken)")]
Password = Annotated[str, text(MAX_PASSWORD, allow_empty=True, kind=ANY_TEXT)]
NewPassword = Annotated[Password, Field(json_schema_extra={"minLength": MIN_PASSWORD},
                                        description=f"at least {MIN_PASSWORD} characters "
                                        "(422 weak_password)")]
CancelStatus = Annotated[str, one_of(("cancelled",), "bad_status",
                                     "'status' can only be set to \"cancelled\"; the other "
                                     "statuses follow from dispatch (assign, release, complete)")]
RoleName = Annotated[str, text(16), Check(_role, {"type": "string", "enum": list(ROLES)},
                                         replace=True)]


def query_integer(low: int, high: int):
    """An integer in the query string: digits only (400), in range (422)."""
    return Annotated[int, Field(ge=low, le=high), Check(_query_integer, before=True)]


QueryFlag = Annotated[bool, Check(_query_flag, {"type": "boolean"}, before=True, replace=True)]


# --- pydantic's errors as the contract's ----------------------------------------

# pydantic's error type -> status, code, and what follows the field's name.
_PYDANTIC_ERRORS = {
    "missing": (400, "missing_field", "is required"),
    "int_type": (400, "wrong_type", "must be an integer"),
    "string_type": (400, "wrong_type", "must be a string"),
    "bool_type": (400, "wrong_type", "must be a boolean or 0/1"),
    "dict_type": (400, "wrong_type", "must be a JSON object"),
    "list_type": (400, "wrong_type", "must be a list"),
    "greater_than_equal": (422, "out_of_range", "must be at least {ge}"),
    "less_than_equal": (422, "out_of_range", "must be at most {le}"),
}


def _error(status: int, code: str, message: str) -> QCError:
    return (BadRequest if status == 400 else Invalid)(message, code=code)


def problems(error: ValidationError, shape) -> list[tuple[str | None, QCError]]:
    """(field, error) for each problem pydantic found in `shape`'s input, the
    one to report first first: not an object; unknown fields (all named in
    one); then the rest in the order the fields are declared."""
    unknown, found = [], []
    for item in error.errors(include_url=False):
        loc, kind, context = item["loc"], item["type"], item.get("ctx") or {}
        name = loc[0] if loc and isinstance(loc[0], str) else None
        if kind == "model_type":
            return [(None, BadRequest(f"the {shape.where} must be a JSON object",
                                      code="not_an_object"))]
        if kind == "extra_forbidden":
            unknown.append(name)
        elif "status" in context and "message" in context:  # one of ours (_problem)
            found.append((name, _error(context["status"], kind, context["message"])))
        elif kind in _PYDANTIC_ERRORS:
            status, code, tail = _PYDANTIC_ERRORS[kind]
            found.append((name, _error(status, code, f"'{name}' {tail.format(**context)}")))
        else:  # a type error of a kind no field here produces yet
            found.append((name, BadRequest(f"'{name}': {item['msg']}", code="wrong_type")))
    if unknown:
        found.insert(0, (None, BadRequest(shape.unknown_message(sorted(unknown)),
                                          code="unknown_field")))
    return found


# --- what clients send -------------------------------------------------------------

class Shape(BaseModel):
    """Something a client sends, checked strictly."""
    model_config = ConfigDict(strict=True, extra="forbid")
    where: ClassVar[str] = "body"

    @classmethod
    def unknown_message(cls, names: list[str]) -> str:
        return f"unknown field(s) in the {cls.where}: {', '.join(names)}"

    @classmethod
    def parse(cls, data, context: dict | None = None):
        """The model of `data`, or the first problem raised as a QCError."""
        try:
            return cls.model_validate(data, context=context)
        except ValidationError as error:
            raise problems(error, cls)[0][1] from None


class Body(Shape):
    """A JSON object. null stands for an absent field."""

    @model_validator(mode="before")
    @classmethod
    def _whole(cls, data):
        if isinstance(data, dict) and None in data.values():
            return {key: value for key, value in data.items()
                    if value is not None or key not in cls.model_fields}
        return data

    @classmethod
    def from_request(cls, data, context: dict):
        return cls.parse(data, context)


class Changes(Body):
    """A PATCH body: the fields to change, at least one. null is refused
    except for the fields in `nullable` (where it clears the value); read
    what was sent with `model_fields_set`."""
    model_config = ConfigDict(json_schema_extra={"minProperties": 1})
    nullable: ClassVar[frozenset] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _whole(cls, data):
        if isinstance(data, dict) and set(data) <= cls.model_fields.keys():
            if not data:
                names = list(cls.model_fields)
                raise _problem(BadRequest(f"nothing to change: give {', '.join(names[:-1])} "
                                          f"or {names[-1]}", code="empty_patch"))
            cls.check_whole(data)
        return data

    @classmethod
    def check_whole(cls, data: dict) -> None:
        """Rules on the body as a whole, once its fields are all known ones."""
        for name in cls.model_fields:
            if data.get(name, ...) is None and name not in cls.nullable:
                raise _problem(BadRequest(f"'{name}' cannot be null", code="wrong_type"))


class Query(Shape):
    """A query string. Unknown parameters are refused like unknown fields, and
    so is a parameter given twice unless its type is a list."""
    where: ClassVar[str] = "query"

    @classmethod
    def unknown_message(cls, names: list[str]) -> str:
        return f"unknown query parameter(s): {', '.join(names)}"

    @classmethod
    def from_args(cls, args):
        unknown = sorted(set(args) - cls.model_fields.keys())
        if unknown:
            raise BadRequest(cls.unknown_message(unknown), code="unknown_field")
        params = {}
        for name in args:
            values = args.getlist(name)
            if get_origin(cls.model_fields[name].annotation) is list:
                params[name] = values
            elif len(values) > 1:
                raise BadRequest(f"'{name}' is given more than once",
                                 code="repeated_parameter")
            else:
                params[name] = values[0]
        return cls.parse(params)


class Login(Body):
    # Any text: a name is only looked up here (an account made before the
    # rules on names must still log in).
    username: Annotated[str, text(MAX_USERNAME, kind=ANY_TEXT)]
    password: Password


class PasswordChange(Body):
    current_password: Password
    new_password: NewPassword

    @model_validator(mode="after")
    def _strong(self):
        _strong_password(self.new_password, "new_password")
        return self


class NewTask(Body):
    """One task to create (POST /tasks, a row of the CSV import)."""
    where: ClassVar[str] = "task"
    name: TaskName
    payload: Payload | None = Field(default_factory=dict)
    priority: Priority | None = 0
    deadline: Deadline | None = None
    external_id: ExternalId | None = None


class NewTasks(RootModel[NewTask | Annotated[list[NewTask], Field(min_length=1,
                                                                  max_length=100_000)]]):
    """One task or a list. All or nothing: any bad task refuses the request,
    and the error lists every bad one with its index."""

    @classmethod
    def from_request(cls, data, context: dict) -> list[NewTask]:
        """The tasks; `context["pause"]` is called every 1,000 (the server
        yields to the event loop)."""
        rows = data if isinstance(data, list) else [data]
        if not rows:
            raise BadRequest("no tasks given", code="empty_list")
        if len(rows) > context["max_tasks"]:
            raise Invalid(f"at most {context['max_tasks']} tasks per request", code="too_many")
        tasks, refused = [], []
        for index, row in enumerate(rows):
            if index % 1000 == 999:
                context["pause"]()
            try:
                tasks.append(NewTask.model_validate(row, context=context))
            except ValidationError as error:
                refused.append((index, problems(error, NewTask)[0][1]))
        if not refused:
            return tasks
        first = refused[0][1]
        if not isinstance(data, list):
            raise first
        kind = BadRequest if any(e.status == 400 for _, e in refused) else Invalid
        raise kind(f"{len(refused)} of {len(rows)} tasks are invalid; none was created "
                   f"(first: row {refused[0][0]}: {first.message})", code="invalid_tasks",
                   rows=[{"index": i, "code": e.code, "message": e.message}
                         for i, e in refused[:1000]])


class TaskChanges(Changes):
    """Edit name/payload/priority/deadline, or cancel: {"status": "cancelled"}
    on its own (there is nothing left to edit on a cancelled task). Only
    `deadline` may be null (it clears the deadline)."""
    model_config = ConfigDict(json_schema_extra={
        "minProperties": 1, "dependentSchemas": {"status": {"maxProperties": 1}}})
    nullable: ClassVar[frozenset] = frozenset({"deadline"})
    status: CancelStatus = None  # first: a bad status is reported before anything else
    name: TaskName = None
    payload: Payload = None
    priority: Priority = None
    deadline: Deadline | None = Field(None, description="null clears the deadline")

    @classmethod
    def check_whole(cls, data: dict) -> None:
        if "status" not in data:
            super().check_whole(data)
        elif data["status"] == "cancelled" and len(data) > 1:
            raise _problem(BadRequest("cancel on its own: a cancelled task has nothing left "
                                      "to edit", code="cancel_with_changes"))

    def changes(self) -> dict:
        return {name: getattr(self, name) for name in self.model_fields_set}


class Completion(Body):
    """A reviewer's completion (POST /complete_task, the task-complete event)."""
    task_id: Id
    outcome: Outcome | None = None
    note: Note | None = None
    user_id: Id | None = Field(None, description="if given, the caller's own id")


class Availability(Body):
    """PUT /availability: a reviewer for itself, a supervisor for `user_id`."""
    availability: Flag
    user_id: Id | None = None


class SocketAvailability(Body):
    """The set-availability event."""
    available: Flag


class AssignTask(Body):
    task_id: Id


class NewUser(Body):
    username: Username
    password: NewPassword
    role: RoleName | None = Role.REVIEWER

    @model_validator(mode="after")
    def _strong(self):
        # After the role, as the fields' own checks all come first.
        _strong_password(self.password, "password")
        return self


class UserChanges(Changes):
    username: Username = None
    role: Annotated[RoleName, Field(description="admins only")] = None
    active: Flag = None
    password: NewPassword = None

    @model_validator(mode="after")
    def _strong(self):
        if self.password is not None:
            _strong_password(self.password, "password")
        return self


class TaskListing(Query):
    """GET /tasks. Checked in this order; the cursor last, as it belongs to
    an order."""
    status: Annotated[list[str], Check(_statuses), Field(
        description="one status or a comma-separated list (or repeat the parameter): "
        f"{', '.join(STATUSES)}; default: all")] = []
    order_by: Annotated[str, one_of(tuple(ORDERS), "bad_order", strip=True), Field(
        description="created_at: oldest first; -created_at: newest first; priority: "
        "highest first, then oldest first (dispatch order); deadline: earliest first, tasks "
        "without one last (oldest first). Ties: by id.")] = DEFAULT_ORDER
    assignee_id: Annotated[query_integer(1, MAX_ID), Field(
        description="tasks this reviewer holds or held")] = None
    priority: Annotated[query_integer(*PRIORITY_RANGE), Field(
        description="exactly this priority")] = None
    limit: Annotated[query_integer(*LIST_LIMIT), Field(description="page size")] \
        = DEFAULT_LIST_LIMIT
    cursor: Annotated[str, Field(description="next_cursor of the previous page (opaque)")] \
        = None
    _after: tuple | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _cursor(self):
        if self.cursor:
            try:
                self._after = decode_cursor(self.cursor, self.order_by)
            except QCError as error:
                raise _problem(error) from None
        return self

    def task_query(self) -> TaskQuery:
        return TaskQuery(statuses=tuple(self.status), assignee_id=self.assignee_id,
                         priority=self.priority, order_by=self.order_by, limit=self.limit,
                         after=self._after)


class ImportOptions(Query):
    skip_invalid: Annotated[QueryFlag, Field(
        description="import the valid rows even if some are invalid")] = False


# --- what the server answers (for the document) ------------------------------------

Time = Annotated[datetime, Field(description="ISO-8601 in UTC with a Z, to the millisecond")]


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Open(BaseModel):
    """An answer that may carry more keys than these."""
    model_config = ConfigDict(extra="allow")


class RowProblem(Answer):
    index: int = Field(description="row, from 0")
    line: int = Field(None, description="CSV import: line of the file (the header is line 1)")
    field: str | None = None
    code: str
    message: str


class ErrorDetail(Open):
    code: str = Field(pattern=r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$",
                      description="snake_case, stable: what programs test")
    message: str = Field(description="for a person")
    rows: list[RowProblem] = Field(None, description="invalid_tasks: every bad row (at most "
                                   "1,000 listed)")


class Error(Answer):
    """Every error: {"error": {"code", "message"}}."""
    error: ErrorDetail

    @classmethod
    def __get_pydantic_json_schema__(cls, schema, handler):
        # The detail written out in place: the contract's shape reads whole.
        result = handler.resolve_ref_schema(handler(schema))
        properties = result["properties"]
        properties["error"] = dict(handler.resolve_ref_schema(properties["error"]))
        return result


class Task(Answer):
    id: Id
    external_id: str | None
    name: str
    payload: dict[str, Any]
    priority: int
    status: Literal[STATUSES]
    assignee_id: Id | None
    created_at: Time
    assigned_at: Time | None
    completed_at: Time | None
    deadline: Time | None
    outcome: Literal[OUTCOMES] | None
    note: str | None


class CreatedTasks(Answer):
    tasks: list[Task] = Field(description="the tasks, in input order")


class TaskPage(Answer):
    tasks: list[Task]
    next_cursor: str | None


class TaskEvent(Answer):
    at: Time
    kind: str = Field(description="created, assigned, completed, released, requeued, "
                      "unacknowledged, signed_out, cancelled, expired, updated")
    reviewer_id: Id | None
    actor_id: Id | None
    detail: dict[str, Any] | None


class TaskHistory(Answer):
    task_id: Id
    events: list[TaskEvent]


class ImportResult(Answer):
    created: int
    existing: int = Field(description="rows whose external_id was already present (or "
                          "earlier in the file)")
    invalid: list[RowProblem] = Field(description="skipped rows (with skip_invalid=1), at "
                                      "most 1,000 listed")
    invalid_rows: int
    total_rows: int
    batches: int
    task_ids: list[Id] = Field(None, description="ids of the imported rows in file order; "
                               "only when at most 1,000 rows were imported")


class Assigned(Answer):
    message: str
    task: Task


class User(Answer):
    id: Id
    username: str
    role: Literal[ROLES]
    active: bool
    online: bool
    available: bool
    task_id: Id | None
    completed_count: int


class Users(Answer):
    users: list[User]


class TokenUser(Answer):
    id: Id
    username: str
    role: Literal[ROLES]


class Tokens(Open):
    token: str
    access_token: str
    refresh_token: str
    user: TokenUser


class AccessToken(Answer):
    access_token: str


class Message(Open):
    message: str


class HeldTask(Answer):
    task: Task | None


class Completed(Answer):
    message: str
    task: Task
    next_task: Task | None


class AvailabilitySet(Open):
    message: str
    availability: Literal[0, 1]
    user_id: Id = None
    task: Task | None = None


class SignedOut(Answer):
    message: str
    user_id: Id
    task: Task | None = Field(description="the task that went back to the queue")


class ReviewerStats(Answer):
    id: Id
    username: str
    completed_today: int
    completed_total: int
    passed: int
    failed: int
    median_handle_s: float | None = Field(description="today, assigned to completed")


class Queue(Open):
    pending: int
    assigned: int
    by_priority: dict[str, int] = Field(description="pending tasks per priority")
    oldest_pending_age_s: float | None


class FloorQueue(Queue):
    completed_last_hour: int
    median_handle_s: float | None


class FloorStats(Answer):
    queue: FloorQueue
    reviewers: list[ReviewerStats]
    at: Time = None


class BoardReviewer(Open):
    id: Id
    username: str
    online: bool
    available: bool
    task_id: Id | None
    task_since: Time | None
    completed_count: int
    connected: bool


class BoardStats(Open):
    completed_last_hour: int
    median_handle_s: float | None
    reviewers: list[ReviewerStats]


class Board(Open):
    reviewers: list[BoardReviewer]
    queue: Queue
    stats: BoardStats
    at: Time = None


class Health(Open):
    status: str
    database: str
    process: str = None


class Unhealthy(Open):
    status: str
    database: str
    error: dict[str, Any]
