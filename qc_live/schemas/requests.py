"""What clients send: the request bodies (REST and socket events) and query
strings."""
from typing import Annotated, ClassVar

from pydantic import ConfigDict, Field, PrivateAttr, RootModel, ValidationError, model_validator

from ..errors import BadRequest, Invalid, QCError
from ..listing import DEFAULT_ORDER, ORDERS, STATUSES, TaskQuery, decode_cursor
from .. import outbox, webhooks
from ..models import MAX_ID, Role
from ..text import ANY_TEXT, MAX_USERNAME
from .base import Body, Changes, Check, Query, one_of, problem, problems, text
from .fields import (DEFAULT_LIST_LIMIT, LIST_LIMIT, MAX_NAME, PRIORITY_RANGE, CancelStatus,
                     ChecklistAnswers, Deadline, ExternalId, Flag, Form, Id, Level,
                     NewPassword, Note, Outcome, Password, Payload, Priority, QueryFlag,
                     QueueName, Reasons, RelaxAfter, RoleName, Skills, TaskName, Username,
                     check_statuses, query_integer, strong_password)


MIN_SECRET, MAX_SECRET = 16, 255
AUDIT_FILTERS = ("agreed", "disputed", "open")


def _url(value, _name, _context):
    return webhooks.check_url(value)


def _event_types(values, name, _context):
    if not values:
        raise Invalid(f"'{name}' must list at least one event type", code="bad_event")
    for value in values:
        if value not in outbox.EVENT_TYPES:
            raise Invalid(f"'{name}' must list event types among "
                          f"{', '.join(outbox.EVENT_TYPES)}, not {value!r}", code="bad_event")
    if len(set(values)) != len(values):
        raise Invalid(f"'{name}' lists an event type twice", code="bad_event")
    return values


def _secret(value, name, _context):
    if len(value) < MIN_SECRET:
        raise Invalid(f"'{name}' must be at least {MIN_SECRET} characters",
                      code="weak_secret")
    return value


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
        strong_password(self.new_password, "new_password")
        return self


class NewTask(Body):
    """One task to create (POST /tasks, a row of the CSV import)."""
    where: ClassVar[str] = "task"
    name: TaskName
    payload: Payload | None = Field(default_factory=dict)
    priority: Priority | None = 0
    deadline: Deadline | None = None
    external_id: ExternalId | None = None
    queue: QueueName | None = "default"
    expected_outcome: Annotated[Outcome | None, Field(
        description="a gold task: the right answer, never shown to reviewers")] = None


def unknown_queue(queue: str) -> Invalid:
    return Invalid(f"queue {queue!r} does not exist; create it first (POST /queues)",
                   code="unknown_queue")


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
                continue
            if "known_queues" in context and tasks[-1].queue not in context["known_queues"]():
                refused.append((index, unknown_queue(tasks[-1].queue)))
        if not refused:
            return tasks
        first = refused[0][1]
        if not isinstance(data, list):
            raise first
        kind = BadRequest if any(e.status == 400 for _, e in refused) else Invalid
        # Only unknown queues: said so, as for one task; rows says which.
        code = "unknown_queue" if all(e.code == "unknown_queue" for _, e in refused) \
            else "invalid_tasks"
        raise kind(f"{len(refused)} of {len(rows)} tasks are invalid; none was created "
                   f"(first: row {refused[0][0]}: {first.message})", code=code,
                   rows=[{"index": i, "code": e.code, "message": e.message}
                         for i, e in refused[:1000]])


class TaskChanges(Changes):
    """Edit name/payload/priority/deadline, or cancel: {"status": "cancelled"}
    on its own (there is nothing left to edit on a cancelled task). Only
    `deadline` may be null (it clears the deadline)."""
    model_config = ConfigDict(json_schema_extra={
        "minProperties": 1, "dependentSchemas": {"status": {"maxProperties": 1}}})
    nullable: ClassVar[frozenset] = frozenset({"deadline", "expected_outcome"})
    status: CancelStatus = None  # first: a bad status is reported before anything else
    name: TaskName = None
    payload: Payload = None
    priority: Priority = None
    deadline: Deadline | None = Field(None, description="null clears the deadline")
    queue: Annotated[QueueName, Field(description="pending tasks only (409 task_not_pending); "
                                      "it keeps its place (created_at)")] = None
    expected_outcome: Annotated[Outcome | None, Field(
        description="a gold task's answer; null: not gold")] = None

    @classmethod
    def check_whole(cls, data: dict) -> None:
        if "status" not in data:
            super().check_whole(data)
        elif data["status"] == "cancelled" and len(data) > 1:
            raise problem(BadRequest("cancel on its own: a cancelled task has nothing left "
                                     "to edit", code="cancel_with_changes"))

    def changes(self) -> dict:
        return {name: getattr(self, name) for name in self.model_fields_set}


class Completion(Body):
    """A reviewer's completion (POST /complete_task, the task-complete event)."""
    task_id: Id
    outcome: Outcome | None = None
    note: Note | None = None
    user_id: Id | None = Field(None, description="if given, the caller's own id")
    reasons: Reasons | None = None
    checklist: ChecklistAnswers | None = None


class Availability(Body):
    """PUT /availability: a reviewer for itself, a supervisor for `user_id`."""
    availability: Flag
    user_id: Id | None = None


class SocketAvailability(Body):
    """The set-availability event."""
    available: Flag


class AssignTask(Body):
    task_id: Id
    reviewer_id: Annotated[Id, Field(description="this reviewer (409 not_qualified, "
                                     "reviewer_unavailable); default: the longest-idle free "
                                     "qualified one")] = None


class NewUser(Body):
    username: Username
    password: NewPassword
    role: RoleName | None = Role.REVIEWER
    skills: Annotated[Skills, Field(description="reviewers only; default "
                                    "{\"default\": 1}")] = None

    @model_validator(mode="after")
    def _strong(self):
        # After the role, as the fields' own checks all come first.
        strong_password(self.password, "password")
        return self


class UserChanges(Changes):
    username: Username = None
    role: Annotated[RoleName, Field(description="admins only")] = None
    active: Flag = None
    password: NewPassword = None
    skills: Annotated[Skills, Field(description="reviewers only: replaces their skills; "
                                    "counts from their next claim (a held task stays)")] = None

    @model_validator(mode="after")
    def _strong(self):
        if self.password is not None:
            strong_password(self.password, "password")
        return self


Statuses = Annotated[list[str], Check(check_statuses), Field(
    description="one status or a comma-separated list (or repeat the parameter): "
    f"{', '.join(STATUSES)}; default: all")]


OutcomeFilter = Annotated[Outcome, Field(description="completed tasks with this outcome")]
CompletedAfter = Annotated[Deadline, Field(
    description="completed at or after this moment (ISO-8601; without an offset: UTC)")]
CompletedBefore = Annotated[Deadline, Field(description="completed before this moment")]
Search = Annotated[str, text(MAX_NAME, strip=True), Field(
    description="the task whose external_id is exactly this, and tasks whose name begins "
    "with it (surrounding blanks removed)")]


class TaskListing(Query):
    """GET /tasks. Checked in this order; the cursor last, as it belongs to
    an order."""
    status: Statuses = []
    order_by: Annotated[str, one_of(tuple(ORDERS), "bad_order", strip=True), Field(
        description="created_at: oldest first; -created_at: newest first; priority: "
        "highest first, then oldest first (dispatch order); deadline: earliest first, tasks "
        "without one last (oldest first). Ties: by id.")] = DEFAULT_ORDER
    assignee_id: Annotated[query_integer(1, MAX_ID), Field(
        description="tasks this reviewer holds or held")] = None
    priority: Annotated[query_integer(*PRIORITY_RANGE), Field(
        description="exactly this priority")] = None
    queue: Annotated[QueueName, Field(description="tasks of this queue")] = None
    outcome: OutcomeFilter = None
    completed_after: CompletedAfter = None
    completed_before: CompletedBefore = None
    q: Search = None
    audit: Annotated[str, one_of(AUDIT_FILTERS, "bad_audit", strip=True), Field(
        description="agreed, disputed, or open (disputed and not resolved yet)")] = None
    limit: Annotated[query_integer(*LIST_LIMIT), Field(description="page size")] \
        = DEFAULT_LIST_LIMIT
    cursor: Annotated[str, Field(description="next_cursor of the previous page (opaque)")] \
        = None
    _after: tuple | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _cursor(self):
        if (self.completed_after or self.completed_before) and self.order_by != "-completed_at":
            # The window is a range of ix_tasks_completed: read in another order,
            # its rows would have to be sorted.
            raise problem(Invalid("completed_after and completed_before need "
                                  "order_by=-completed_at", code="bad_order"))
        if self.cursor:
            try:
                self._after = decode_cursor(self.cursor, self.order_by)
            except QCError as error:
                raise problem(error) from None
        return self

    def task_query(self) -> TaskQuery:
        return TaskQuery(statuses=tuple(self.status), assignee_id=self.assignee_id,
                         priority=self.priority, queue=self.queue, outcome=self.outcome,
                         completed_after=self.completed_after,
                         completed_before=self.completed_before, q=self.q,
                         order_by=self.order_by, limit=self.limit, after=self._after,
                         audit=self.audit)


AuditRate = Annotated[float, Field(ge=0, le=1, description="share of completions sent to a "
                                   "blind second review (0..1), the floor of each reviewer's "
                                   "adaptive rate; 0: none")]


class Resolution(Body):
    """POST /tasks/<id>/resolve: a supervisor's final verdict on a dispute."""
    outcome: Outcome
    note: Note | None = None


class NewQueue(Body):
    name: QueueName
    description: Annotated[str, text(255, allow_empty=True)] = ""
    min_level: Annotated[Level, Field(description="the level a reviewer needs for its "
                                      "tasks")] = 1
    relax_after_s: Annotated[RelaxAfter, Field(description="after this long waiting, level 1 "
                                               "is enough; null: never")] = None
    form: Form = None
    audit_rate: AuditRate = 0.0


class QueueChanges(Changes):
    nullable: ClassVar[frozenset] = frozenset({"relax_after_s", "form"})
    description: Annotated[str, text(255, allow_empty=True)] = None
    min_level: Level = None
    relax_after_s: Annotated[RelaxAfter | None, Field(description="null: never relax")] = None
    form: Annotated[Form, Field(description="null: no form")] = None
    audit_rate: AuditRate = None

    def changes(self) -> dict:
        return {name: getattr(self, name) for name in self.model_fields_set}


class ImportOptions(Query):
    skip_invalid: Annotated[QueryFlag, Field(
        description="import the valid rows even if some are invalid")] = False


class NewWebhook(Body):
    """POST /webhooks."""
    url: Annotated[str, text(webhooks.MAX_URL, strip=True), Check(_url), Field(
        description="http or https; with QC_WEBHOOK_REFUSE_PRIVATE, a host that resolves to "
        "a private or loopback address is refused (422 private_target)")]
    events: Annotated[list[str], Check(_event_types, {
        "minItems": 1, "uniqueItems": True,
        "items": {"type": "string", "enum": list(outbox.EVENT_TYPES)}})]
    secret: Annotated[str, text(MAX_SECRET, kind=ANY_TEXT), Check(_secret), Field(
        description=f"signs each delivery (X-QC-Signature); {MIN_SECRET} to {MAX_SECRET} "
        "characters; stored, never returned", json_schema_extra={"minLength": MIN_SECRET})]


MAX_BUCKETS = 1440


class CompletionsQuery(Query):
    """GET /stats/completions."""
    hours: Annotated[query_integer(1, 168), Field(description="how far back")] = 8
    bucket_s: Annotated[query_integer(60, 86_400), Field(
        description="bucket width in seconds; buckets start at multiples of it since the "
        "epoch (UTC)")] = 600

    @model_validator(mode="after")
    def _few_enough(self):
        if self.hours * 3600 // self.bucket_s > MAX_BUCKETS:
            raise problem(Invalid(f"hours * 3600 / bucket_s must be at most {MAX_BUCKETS} "
                                  "buckets: widen bucket_s", code="too_many_buckets"))
        return self


class DeliveryListing(Query):
    status: Annotated[str, one_of(outbox.STATUSES, "bad_status", strip=True), Field(
        description="only deliveries in this status")] = None
    limit: Annotated[query_integer(1, 1000), Field(description="how many, newest first")] \
        = 100


class TaskExport(Query):
    """GET /tasks/export: the filters of GET /tasks, and when tasks completed."""
    format: Annotated[str, one_of(("csv", "ndjson"), "bad_format", strip=True), Field(
        description="csv: UTF-8 with a header row; ndjson: one task object per line")]
    status: Statuses = []
    assignee_id: Annotated[query_integer(1, MAX_ID), Field(
        description="tasks this reviewer holds or held")] = None
    priority: Annotated[query_integer(*PRIORITY_RANGE), Field(
        description="exactly this priority")] = None
    queue: Annotated[QueueName, Field(description="tasks of this queue")] = None
    outcome: OutcomeFilter = None
    completed_after: CompletedAfter = None
    completed_before: CompletedBefore = None
