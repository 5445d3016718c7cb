"""Tables: reviewers and other users, tasks, their history, and presence.

Invariants the database itself enforces:
- a task has at most one holder: `Task.holder_id` is set only while the task
  is assigned, and a task row can only be in one status;
- a reviewer holds at most one task: `holder_id` is UNIQUE (NULLs allowed).
"""
import enum
import unicodedata

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import Mapped, mapped_column, validates

from .clock import iso, utcnow
from .extensions import db

# Microseconds matter for FIFO order and for leases; MySQL drops them unless asked.
Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
Json = sa.JSON()


class ExactString(sa.types.TypeDecorator):
    """A string compared exactly, as SQLite does: MariaDB's default collation
    would make 'Case-1', 'case-1' and 'case-1 ' one key. Binary collations
    still pad spaces unless NO PAD, whose name differs between MariaDB and MySQL."""
    impl = sa.String
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name in ("mysql", "mariadb"):
            collation = "utf8mb4_nopad_bin" if dialect.is_mariadb else "utf8mb4_0900_bin"
            return dialect.type_descriptor(
                mysql.VARCHAR(self.impl.length, charset="utf8mb4", collation=collation))
        return dialect.type_descriptor(self.impl)


class Role(str, enum.Enum):
    REVIEWER = "reviewer"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return {"reviewer": 0, "supervisor": 1, "admin": 2}[self.value]


class TaskStatus(str, enum.Enum):
    PENDING = "pending"
    ASSIGNED = "assigned"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


FINAL_STATUSES = (TaskStatus.COMPLETED.value, TaskStatus.CANCELLED.value,
                  TaskStatus.EXPIRED.value)


MAX_USERNAME_KEY = 255
# Ids fit a signed 64-bit column; larger ones cannot name a row (and SQLite
# refuses to even bind them).
MAX_ID = 2**63 - 1


def username_key(name: str) -> str:
    """What two usernames must not share: the name without surrounding
    blanks, compatibility-normalised (NFKC: a full-width 'ＡＤＭＩＮ' is
    'ADMIN') and case-folded (Unicode full case folding, str.casefold:
    'Straße' is 'STRASSE')."""
    folded = unicodedata.normalize("NFKC", name.strip()).casefold()
    return unicodedata.normalize("NFKC", folded)


class User(db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(ExactString(80), unique=True)
    # username_key(username), kept by the `username` setter; UNIQUE, so names
    # are unique ignoring case whatever the writers do. NULL only for the
    # later of two names an older release let differ in case only (each
    # still logs in by its exact spelling), and for rows written by the
    # release before this column during a rolling upgrade.
    username_key: Mapped[str | None] = mapped_column(ExactString(MAX_USERNAME_KEY),
                                                     nullable=True)
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    role: Mapped[str] = mapped_column(sa.String(16), default=Role.REVIEWER.value)
    active: Mapped[bool] = mapped_column(default=True)
    # Paused reviewers keep their task but are handed no new one.
    available: Mapped[bool] = mapped_column(default=True)
    # When the reviewer last became free; the longest-idle gets new work first.
    idle_since: Mapped[object] = mapped_column(Timestamp, nullable=True)
    # Set when the last socket went away; the grace period counts from here.
    offline_since: Mapped[object] = mapped_column(Timestamp, nullable=True)
    # Bumped on logout/deactivation: every token carrying an older value is dead.
    token_version: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[object] = mapped_column(Timestamp, default=utcnow)

    __table_args__ = (sa.Index("ix_users_free", "role", "active", "available", "idle_since"),
                      sa.Index("uq_users_username_key", "username_key", unique=True))

    @validates("username")
    def _keep_key(self, _name, value):
        self.username_key = username_key(value)
        return value

    def public(self) -> dict:
        return {"id": self.id, "username": self.username, "role": self.role}


QUEUE_NAME_LENGTH = 64
DEFAULT_QUEUE = "default"
LEVELS = (1, 10)


class Queue(db.Model):
    """A kind of task (a product line, a language, a defect class). A reviewer
    qualifies for its tasks with a skill level of at least `min_level`, or of
    at least 1 once a task has waited longer than `relax_after_s` (never when
    it is NULL). The `default` queue always exists."""
    __tablename__ = "queues"

    name: Mapped[str] = mapped_column(ExactString(QUEUE_NAME_LENGTH), primary_key=True)
    description: Mapped[str] = mapped_column(sa.String(255), default="")
    min_level: Mapped[int] = mapped_column(default=1)
    relax_after_s: Mapped[int | None] = mapped_column(nullable=True)
    created_at: Mapped[object] = mapped_column(Timestamp, default=utcnow)
    # The review form (docs/api.md "Review forms"); NULL: no form.
    form: Mapped[object] = mapped_column(Json, nullable=True)
    # The share of completions audited: the floor of each reviewer's audit
    # probability (audits.py); 0: never audited.
    audit_rate: Mapped[float] = mapped_column(sa.Float, default=0.0, server_default="0")


class Skill(db.Model):
    """A reviewer's level (1..10) for one queue; no row: not skilled for it."""
    __tablename__ = "skills"

    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", name="fk_skills_user"),
                                         primary_key=True)
    queue: Mapped[str] = mapped_column(ExactString(QUEUE_NAME_LENGTH),
                                       sa.ForeignKey("queues.name", name="fk_skills_queue"),
                                       primary_key=True)
    level: Mapped[int] = mapped_column()

    __table_args__ = (sa.Index("ix_skills_queue", "queue", "level"),)


@sa.event.listens_for(User, "after_insert")
def _default_skill(_mapper, connection, user):
    """Every new reviewer starts with {"default": 1}, however it is made (the
    API, the CLI, a test's floor): with it, a floor without queues
    dispatches as it always did. accounts.py replaces it when skills are given."""
    if user.role == Role.REVIEWER.value:
        connection.execute(sa.insert(Skill.__table__).values(
            user_id=user.id, queue=DEFAULT_QUEUE, level=1))


KIND_REVIEW, KIND_AUDIT = "review", "audit"


class Task(db.Model):
    __tablename__ = "tasks"

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str | None] = mapped_column(ExactString(191), unique=True,
                                                    nullable=True)
    name: Mapped[str] = mapped_column(sa.String(255))
    payload: Mapped[object] = mapped_column(Json, default=dict)
    priority: Mapped[int] = mapped_column(default=0)
    status: Mapped[str] = mapped_column(sa.String(16), default=TaskStatus.PENDING.value)
    # Who has (or last had) the task; kept after completion for the record.
    assignee_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"), nullable=True)
    # Equal to assignee_id exactly while status is 'assigned'. UNIQUE: the
    # database refuses a second task for the same reviewer.
    holder_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"), unique=True,
                                                  nullable=True)
    created_at: Mapped[object] = mapped_column(Timestamp, default=utcnow)
    assigned_at: Mapped[object] = mapped_column(Timestamp, nullable=True)
    # When a socket of the holder (or a REST answer) confirmed it has the task;
    # an offer left unacknowledged for QC_ACK_TIMEOUT is taken back.
    acked_at: Mapped[object] = mapped_column(Timestamp, nullable=True)
    completed_at: Mapped[object] = mapped_column(Timestamp, nullable=True)
    deadline: Mapped[object] = mapped_column(Timestamp, nullable=True)
    outcome: Mapped[str | None] = mapped_column(sa.String(8), nullable=True)
    note: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    updated_at: Mapped[object] = mapped_column(Timestamp, default=utcnow, onupdate=utcnow)
    queue: Mapped[str] = mapped_column(
        ExactString(QUEUE_NAME_LENGTH), sa.ForeignKey("queues.name", name="fk_tasks_queue"),
        default=DEFAULT_QUEUE, server_default=DEFAULT_QUEUE)
    # The verdict's structure (docs/api.md "Review forms"): reason codes of a
    # fail and the checklist's answers; NULL when not given.
    reasons: Mapped[object] = mapped_column(Json, nullable=True)
    checklist: Mapped[object] = mapped_column(Json, nullable=True)
    # Second reviews and gold tasks (audits.py): 'review' or 'audit'; an
    # audit's original (UNIQUE, uq_tasks_review_of: one audit per original);
    # on an audit, the original's reviewer, whom the claim passes over.
    kind: Mapped[str] = mapped_column(sa.String(8), default=KIND_REVIEW,
                                      server_default=KIND_REVIEW)
    review_of: Mapped[int | None] = mapped_column(
        sa.ForeignKey("tasks.id", name="fk_tasks_review_of"), nullable=True)
    excluded_reviewer_id: Mapped[int | None] = mapped_column(nullable=True)
    # A gold task's answer (supervisors only; never sent to a reviewer).
    expected_outcome: Mapped[str | None] = mapped_column(sa.String(8), nullable=True)
    # On an original: what its audit found, 'agreed' or 'disputed' (NULL: none).
    audit: Mapped[str | None] = mapped_column(sa.String(8), nullable=True)
    # The final verdict, set once (UPDATE ... WHERE finalized_at IS NULL).
    final_outcome: Mapped[str | None] = mapped_column(sa.String(8), nullable=True)
    final_note: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    finalized_at: Mapped[object] = mapped_column(Timestamp, nullable=True)

    __table_args__ = (sa.Index("uq_tasks_review_of", "review_of", unique=True),)


def task_dict(row, **changes) -> dict:
    """The task object of the wire (docs/api.md) from a `tasks` row (a Core
    row, or any mapping of its columns) and the changes just written to it."""
    task = {**(row._mapping if hasattr(row, "_mapping") else row), **changes}
    return {
        "id": task["id"],
        "external_id": task["external_id"],
        "name": task["name"],
        "queue": task["queue"],
        "payload": task["payload"] if task["payload"] is not None else {},
        "priority": task["priority"],
        "status": task["status"],
        "assignee_id": task["assignee_id"],
        "created_at": iso(task["created_at"]),
        "assigned_at": iso(task["assigned_at"]),
        "completed_at": iso(task["completed_at"]),
        "deadline": iso(task["deadline"]),
        "outcome": task["outcome"],
        "note": task["note"],
        # .get: rows written by create() name only the columns they set.
        "reasons": task.get("reasons"),
        "checklist": task.get("checklist"),
        "kind": task.get("kind") or KIND_REVIEW,
        "review_of": task.get("review_of"),
    }


SUPERVISOR_ONLY = ("expected_outcome", "audit", "final_outcome", "final_note", "finalized_at")


def reviewer_view(task: dict) -> dict:
    """A task object fit for a reviewer: without SUPERVISOR_ONLY's keys."""
    if any(key in task for key in SUPERVISOR_ONLY):
        return {k: v for k, v in task.items() if k not in SUPERVISOR_ONLY}
    return task


def supervised_task_dict(row, **changes) -> dict:
    """The task object of supervisors' answers (GET /tasks, /tasks/<id>,
    export, webhooks): `task_dict` and what reviewers never see, the gold
    answer and the audit's findings (docs/api.md "Second reviews and gold
    tasks")."""
    task = {**(row._mapping if hasattr(row, "_mapping") else row), **changes}
    return {**task_dict(task), "expected_outcome": task.get("expected_outcome"),
            "audit": task.get("audit"), "final_outcome": task.get("final_outcome"),
            "final_note": task.get("final_note"),
            "finalized_at": iso(task.get("finalized_at"))}


# The dispatch query: next pending task by priority (descending), then FIFO.
sa.Index("ix_tasks_queue", Task.status, Task.priority.desc(), Task.created_at, Task.id)
# The claim: one queue's head, highest priority then oldest (queue.py reads
# one per queue a reviewer qualifies for), and its urgent head.
sa.Index("ix_tasks_queue_head", Task.queue, Task.status, Task.priority.desc(), Task.created_at,
         Task.id)
sa.Index("ix_tasks_queue_due", Task.queue, Task.status, Task.priority, Task.deadline)
# GET /tasks?queue= by age (one status at a time), and the board's figures per
# queue (counts and the oldest, over a range of the live statuses, covering).
sa.Index("ix_tasks_queue_created", Task.status, Task.queue, Task.created_at, Task.id)
# Urgent tasks within a priority, and deadline expiry.
sa.Index("ix_tasks_due", Task.status, Task.priority, Task.deadline)
sa.Index("ix_tasks_deadline", Task.status, Task.deadline)
# Board statistics and listings by age.
sa.Index("ix_tasks_completed", Task.status, Task.completed_at)
sa.Index("ix_tasks_created", Task.status, Task.created_at)
# GET /tasks?assignee_id=...: one reviewer's tasks of a status in each listing
# order (by age, by priority, by deadline), so that page stays an index read.
# The first also serves every other (assignee_id, status) lookup and the
# foreign key. Each index is written on every claim and completion (they change
# status and assignee_id), so there is no other index on these columns.
sa.Index("ix_tasks_assignee_created", Task.assignee_id, Task.status, Task.created_at, Task.id)
sa.Index("ix_tasks_assignee_priority", Task.assignee_id, Task.status, Task.priority.desc(),
         Task.created_at, Task.id)
sa.Index("ix_tasks_assignee_deadline", Task.assignee_id, Task.status, Task.deadline, Task.id)
# A reviewer's audited work and gold answers (audits.quality_of, at each
# sampled completion, and GET /stats/reviewers); the dispute list.
sa.Index("ix_tasks_assignee_audit", Task.assignee_id, Task.audit)
sa.Index("ix_tasks_assignee_gold", Task.assignee_id, Task.expected_outcome, Task.outcome)
sa.Index("ix_tasks_audit_created", Task.audit, Task.finalized_at, Task.created_at, Task.id)
# Every reviewer's figures at once (audits.reviewer_figures: the board's
# snapshot, up to ten times a second): covering reads of the audited and the
# gold tasks only, not of every task (0007_quality_indexes).
sa.Index("ix_tasks_audit_assignee", Task.audit, Task.finalized_at, Task.assignee_id)
sa.Index("ix_tasks_gold_assignee", Task.expected_outcome, Task.assignee_id, Task.outcome)


class TaskEvent(db.Model):
    """Append-only history: one row per task transition."""
    __tablename__ = "task_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(sa.ForeignKey("tasks.id"), index=True)
    kind: Mapped[str] = mapped_column(sa.String(24))
    reviewer_id: Mapped[int | None] = mapped_column(nullable=True)
    actor_id: Mapped[int | None] = mapped_column(nullable=True)
    at: Mapped[object] = mapped_column(Timestamp, default=utcnow)
    detail: Mapped[object] = mapped_column(Json, nullable=True)

    __table_args__ = (sa.Index("ix_task_events_reviewer", "reviewer_id", "kind"),)


class ServerProcess(db.Model):
    """A running server process and its lease (renewed by its heartbeat)."""
    __tablename__ = "server_processes"

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    host: Mapped[str] = mapped_column(sa.String(255))
    pid: Mapped[int] = mapped_column()
    started_at: Mapped[object] = mapped_column(Timestamp, default=utcnow)
    heartbeat_at: Mapped[object] = mapped_column(Timestamp, default=utcnow, index=True)


class Connection(db.Model):
    """One connected Socket.IO socket: which user, which namespace, which process."""
    __tablename__ = "connections"

    sid: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    namespace: Mapped[str] = mapped_column(sa.String(32))
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    process_id: Mapped[str] = mapped_column(sa.String(32), index=True)
    connected_at: Mapped[object] = mapped_column(Timestamp, default=utcnow)

    __table_args__ = (sa.Index("ix_connections_user", "user_id", "namespace"),)


# Long texts: MariaDB's TEXT holds 64 KiB, and a delivery's body carries a
# payload of up to 64 KiB of JSON plus the rest of the task.
LongText = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")


class Webhook(db.Model):
    """A subscription: where to POST which events (webhooks.py), signed with
    `secret`, which the API never returns."""
    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(sa.String(2048))
    events: Mapped[object] = mapped_column(Json)  # a list of event types
    secret: Mapped[str] = mapped_column(sa.String(255))
    # DELETE turns it off: its delivery log stays, nothing new is written for it.
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[object] = mapped_column(Timestamp, default=utcnow)


class WebhookDelivery(db.Model):
    """The outbox: one row per event and subscription, written in the same
    transaction as the transition it tells of (outbox.py), delivered at
    least once by any process's courier (webhooks.py)."""
    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(sa.String(36), unique=True)
    webhook_id: Mapped[int] = mapped_column(sa.ForeignKey("webhooks.id"))
    type: Mapped[str] = mapped_column(sa.String(32))
    task_id: Mapped[int] = mapped_column()
    # The JSON body exactly as it is sent (and signed).
    body: Mapped[str] = mapped_column(LongText)
    # pending -> delivered | failed (retries over); a redeliver makes it pending again.
    status: Mapped[str] = mapped_column(sa.String(16))
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[object] = mapped_column(Timestamp)
    # Retried until then (24 h after the event, or after a manual redeliver).
    retry_until: Mapped[object] = mapped_column(Timestamp)
    last_error: Mapped[str | None] = mapped_column(sa.String(500), nullable=True)
    created_at: Mapped[object] = mapped_column(Timestamp, default=utcnow)
    delivered_at: Mapped[object] = mapped_column(Timestamp, nullable=True)
    # The lease of the process delivering it now: nobody else takes it until then.
    claimed_by: Mapped[str | None] = mapped_column(sa.String(32), nullable=True)
    claimed_until: Mapped[object] = mapped_column(Timestamp, nullable=True)

    __table_args__ = (sa.Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
                      sa.Index("ix_webhook_deliveries_log", "webhook_id", "id"))
