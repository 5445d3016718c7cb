"""What the server answers, for the OpenAPI document (the views build the
dicts; these describe them)."""
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..listing import STATUSES
from ..outbox import EVENT_TYPES
from ..outbox import STATUSES as DELIVERY_STATUSES
from .fields import OUTCOMES, ROLES, Id, ReviewForm

Time = Annotated[datetime, Field(description="ISO-8601 in UTC with a Z, to the millisecond")]


class Answer(BaseModel):
    """An answer with exactly these keys."""
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
    queue: str
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
    reasons: list[str] | None = Field(description="the fail reasons' codes of the verdict "
                                      "(the queue's form); null when not given")
    checklist: dict[str, bool] | None = Field(description="the checklist's answers by item "
                                              "id; null when not given")
    kind: Literal["review", "audit"] = Field(description="audit: a blind second review of "
                                             "task `review_of`")
    review_of: Id | None = Field(description="the audited task (audits only)")


class AuditedTask(Task):
    """A task as supervisors see it (never sent to a reviewer)."""
    expected_outcome: Literal[OUTCOMES] | None = Field(None, description="a gold task's "
                                                       "answer")
    audit: Literal["agreed", "disputed"] | None = Field(
        None, description="what this task's audit found; null: not audited (yet)")
    final_outcome: Literal[OUTCOMES] | None = Field(None, description="the final verdict")
    final_note: str | None = None
    finalized_at: Time | None = Field(None, description="when the verdict became final "
                                      "(task.finalized); null: not yet")


class Waiting(Answer):
    reason: Literal["no_qualified_reviewer_online", "qualified_paused", "qualified_busy",
                    "next_in_line"]
    message: str
    level_needed: int = Field(description="the skill level the task asks for now")
    online_qualified: int = Field(description="reviewers online with that level for its queue")
    relax_in_s: float | None = Field(description="seconds until level 1 is enough "
                                     "(relax_after_s), if that is still to come")


class SupervisedTask(AuditedTask):
    waiting: Waiting = Field(None, description="pending tasks only: why the task is on "
                             "nobody's screen")


class CreatedTasks(Answer):
    tasks: list[AuditedTask] = Field(description="the tasks, in input order")


class TaskPage(Answer):
    tasks: list[AuditedTask]
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


Skills = Annotated[dict[str, int], Field(description="queue -> level 1..10")]


class User(Answer):
    id: Id
    username: str
    role: Literal[ROLES]
    active: bool
    online: bool
    available: bool
    task_id: Id | None
    completed_count: int
    skills: Skills = Field(None, description="reviewers only")


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
    form: ReviewForm | None = Field(description="the form of the task's queue; null: none "
                                    "(or no task)")


class Completed(Answer):
    message: str
    task: Task
    next_task: Task | None
    next_form: ReviewForm | None = Field(description="the form of the next task's queue; "
                                         "null: none (or no next task)")


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
    fail_reasons: dict[str, int] = Field(None, description="GET /stats and /users/<id>/stats "
                                         "(not the board): fail reason code -> how often, "
                                         "over every completed fail (as passed and failed)")


class Queue(Open):
    pending: int
    assigned: int
    by_priority: dict[str, int] = Field(description="pending tasks per priority")
    oldest_pending_age_s: float | None


class QueueInfo(Answer):
    """A queue (docs/api.md, Queues and skills)."""
    name: str
    description: str
    min_level: int
    relax_after_s: int | None
    audit_rate: float = Field(description="share of completions audited, the floor of each "
                              "reviewer's audit probability; 0: none")
    pending: int
    assigned: int
    oldest_pending_age_s: float | None
    online_qualified: int = Field(description="reviewers online with at least min_level")
    form: ReviewForm | None = Field(description="the review form (Review forms); null: none")


class TrendDay(Answer):
    day: str = Field(description="a UTC day, YYYY-MM-DD")
    audits: int = Field(description="audits of the reviewer's work completed that day")
    agreed: int
    agreement_rate: float | None
    gold_done: int
    gold_correct: int
    gold_accuracy: float | None


class ReviewerQuality(Answer):
    id: Id
    username: str
    completed: int
    audits_done: int = Field(description="audits of this reviewer's work completed")
    agreed: int
    disputed: int
    disputes_open: int = Field(description="disputed, not resolved yet")
    agreement_rate: float | None = Field(description="agreed / audits_done; null: none yet")
    gold_done: int
    gold_correct: int
    gold_accuracy: float | None = Field(description="gold_correct / gold_done; null: none yet")
    audit_probability: float = Field(description="the chance a completion is audited, in the "
                                     "most audited queue it has skills for")
    trend: list[TrendDay] = Field(description="the last 7 UTC days, oldest first")


class ReviewerQualities(Answer):
    reviewers: list[ReviewerQuality]
    at: Time


class Queues(Answer):
    queues: list[QueueInfo]


class FloorQueue(Queue):
    completed_last_hour: int
    median_handle_s: float | None


class CompletionBucket(Answer):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    start: Time
    completed: int
    passed: int = Field(alias="pass")
    failed: int = Field(alias="fail")


class Completions(Answer):
    hours: int
    bucket_s: int
    at: Time = Field(description="the server's now: the last bucket ends here")
    buckets: list[CompletionBucket] = Field(description="every bucket, oldest first, "
                                            "empty ones included")


class FloorStats(Answer):
    queue: FloorQueue
    reviewers: list[ReviewerStats]
    fail_reasons: dict[str, dict[str, int]] = Field(
        description="queue -> fail reason code -> how often, over every completed fail "
        "(queues without any are left out)")
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
    skills: Skills


class BoardStats(Open):
    completed_last_hour: int
    median_handle_s: float | None
    reviewers: list[ReviewerStats]


class Board(Open):
    reviewers: list[BoardReviewer]
    queue: Queue
    queues: list[QueueInfo]
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


class Webhook(Answer):
    id: Id
    url: str
    events: list[Literal[EVENT_TYPES]]
    created_at: Time


class Webhooks(Answer):
    webhooks: list[Webhook] = Field(description="the active subscriptions (never their secrets)")


class Delivery(Answer):
    event_id: str = Field(description="also the X-QC-Delivery header: receivers deduplicate "
                          "by it")
    type: Literal[EVENT_TYPES]
    task_id: Id
    status: Literal[DELIVERY_STATUSES]
    attempts: int
    last_error: str | None
    created_at: Time
    next_attempt_at: Time | None = Field(description="pending only: when it is tried next")
    delivered_at: Time | None


class Deliveries(Answer):
    deliveries: list[Delivery] = Field(description="newest first")
