"""The dispatch rules: every transition of a task happens here and nowhere else.

    pending --claim/assign--> assigned --complete--> completed
       ^                        |
       +--release/requeue-------+--cancel--> cancelled
       (keeps its place: order is priority, then created_at, then id)

Each public function runs its own write transaction (`database.run_write`),
commits, and returns an `Outcome`: the value the caller asked for and the
notices (`Assigned`, `Idle`, `Revoked`) to push to reviewers. Nothing here
emits or knows about sockets or requests, so pushes always happen after the
commit, by the caller.

Locks are taken in one order, reviewer row first and then task row, so two
transactions cannot wait on each other in a cycle. On MySQL/MariaDB pending
tasks are picked with FOR UPDATE SKIP LOCKED, so concurrent claimers take
different tasks; on SQLite write transactions are serialised. Underneath, the
UNIQUE index on `tasks.holder_id` makes a second task for one reviewer
impossible whatever the code does.

Only `dispatch_pending`, which may hand out thousands of tasks in one call,
yields to the event loop (`database.yield_to_loop`), and only between its
transactions.
"""
from dataclasses import dataclass, field
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from .clock import ago, iso, utcnow
from .database import is_sqlite, run_write, run_write_shared, yield_to_loop
from .errors import Conflict, Forbidden, Invalid, NotFound, QCError
from .models import FINAL_STATUSES, Role, Task, TaskEvent, TaskStatus, User
from .presence import forget_sockets, live_socket_exists

PENDING = TaskStatus.PENDING.value
ASSIGNED = TaskStatus.ASSIGNED.value


@dataclass(frozen=True)
class Assigned:
    """Push `task-assigned` to the reviewer. `resent`: not new, the task the
    reviewer already holds, shown again to a socket that just connected."""
    reviewer_id: int
    task: dict
    resent: bool = False


@dataclass(frozen=True)
class Idle:
    """Push `idle` to the reviewer: reason is 'queue-empty' or 'paused'."""
    reviewer_id: int
    reason: str


@dataclass(frozen=True)
class Revoked:
    """Push `task-revoked`: reason is 'released' (supervisor, or the user signed
    out), 'cancelled', 'expired', 'unacknowledged' (offer timeout) or
    'abandoned' (grace ran out)."""
    reviewer_id: int
    task_id: int
    reason: str


@dataclass
class Outcome:
    value: object = None
    notices: list = field(default_factory=list)

    def extend(self, other: "Outcome") -> "Outcome":
        self.notices.extend(other.notices)
        return self


@dataclass(frozen=True)
class TaskSpec:
    """A validated task to create (see api.validation)."""
    name: str
    payload: dict
    priority: int = 0
    deadline: object = None
    external_id: str | None = None


# Among tasks of equal priority, those due within this window go first,
# earliest deadline first; the rest keep FIFO order.
URGENT_WINDOW = timedelta(minutes=30)


# At most this many tasks per transaction of dispatch_pending: a 5,000-task
# import must not hold the event loop (or, on SQLite, every other writer) for
# the whole of it; 500 take ~0.15 s of CPU on the benchmark machine.
DISPATCH_BATCH = 500

# populate_existing: a row locked FOR UPDATE must be read afresh even if the
# session already holds the object, or a re-check would see the older read.
_FRESH = {"populate_existing": True}


# --- queries -----------------------------------------------------------------
#
# The claim path (complete -> next task, offer_work, set_availability) runs on
# every completion, so it is written as prebuilt Core statements over the
# tables: no ORM unit of work, no objects to track, the task dict built from
# the row. The rarer transitions below keep the ORM for readability.

_tasks, _events, _users = Task.__table__, TaskEvent.__table__, User.__table__
_param = sa.bindparam


def _not_overdue_in(table):
    return sa.or_(table.c.deadline.is_(None), table.c.deadline > _param("now"))


_not_overdue = _not_overdue_in(_tasks)

# The FIFO head: highest priority, then oldest. One index range read (ix_tasks_queue).
_QUEUE_HEAD = (sa.select(_tasks).where(_tasks.c.status == PENDING, _not_overdue)
               .order_by(_tasks.c.priority.desc(), _tasks.c.created_at, _tasks.c.id)
               .limit(1).with_for_update(skip_locked=True))
# The highest pending priority, read without a lock (a subquery of a locking
# read locks nothing on MySQL/MariaDB).
_top = _tasks.alias("queue_top")
_TOP_PRIORITY = (sa.select(_top.c.priority)
                 .where(_top.c.status == PENDING, _not_overdue_in(_top))
                 .order_by(_top.c.priority.desc()).limit(1).scalar_subquery())
# Within that priority, a task due soon goes first (ix_tasks_due). The whole
# row, like the FIFO read: with only the id selected, concurrent claims on
# MariaDB found every pending task locked and answered "queue-empty" with
# hundreds pending (test_dispatch_live.py::test_no_one_is_told_the_queue...).
_URGENT_HEAD = (sa.select(_tasks).where(_tasks.c.status == PENDING,
                                        _tasks.c.priority == _TOP_PRIORITY,
                                        _tasks.c.deadline > _param("now"),
                                        _tasks.c.deadline <= _param("soon"))
                .order_by(_tasks.c.deadline, _tasks.c.id)
                .limit(1).with_for_update(skip_locked=True))
_LOCK_TASK_ROW = sa.select(_tasks).where(_tasks.c.id == _param("task_id")).with_for_update()
_LOCK_REVIEWER_ROW = (sa.select(_users.c.id, _users.c.role, _users.c.active, _users.c.available)
                      .where(_users.c.id == _param("reviewer_id")).with_for_update())
_ASSIGN = (sa.update(_tasks).where(_tasks.c.id == _param("task_id"))
           .values(status=ASSIGNED, assignee_id=_param("reviewer_id"),
                   holder_id=_param("reviewer_id"), assigned_at=_param("now"), acked_at=None,
                   updated_at=_param("now")))
_FINISH = (sa.update(_tasks).where(_tasks.c.id == _param("task_id"))
           .values(status=TaskStatus.COMPLETED.value, holder_id=None,
                   completed_at=_param("now"), outcome=_param("outcome"), note=_param("note"),
                   updated_at=_param("now")))
_IDLE_SINCE = (sa.update(_users).where(_users.c.id == _param("reviewer_id"))
               .values(idle_since=_param("now")))
_ADD_EVENTS = sa.insert(_events)
# By primary key only: MariaDB would otherwise find the row through the UNIQUE
# holder_id index, locking that index entry before the row, the reverse of a
# completion (row, then the holder_id entry it clears): a deadlock (seen).
_ACK = (sa.update(_tasks).where(_tasks.c.id == _param("task_id"),
                                _tasks.c.holder_id == _param("reviewer_id"),
                                _tasks.c.acked_at.is_(None))
        .values(acked_at=_param("now"))
        .with_hint("FORCE INDEX (PRIMARY)", dialect_name="mysql")
        .with_hint("FORCE INDEX (PRIMARY)", dialect_name="mariadb"))


def _task_dict(values, **changes) -> dict:
    """What Task.to_dict() gives, from the column values of a `tasks` row (a
    mapping: a Core row's `_mapping`, or the dict just inserted) plus the
    changes just written to it."""
    task = {**values, **changes}
    return {
        "id": task["id"],
        "external_id": task["external_id"],
        "name": task["name"],
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
    }


def _event(task_id: int, kind: str, now, reviewer_id=None, actor_id=None, detail=None) -> dict:
    return {"task_id": task_id, "kind": kind, "reviewer_id": reviewer_id,
            "actor_id": actor_id, "at": now, "detail": detail}


def _next_pending_row(session, now):
    """Lock the next pending task in dispatch order, skipping ones others lock.

    Order: highest priority; within it, tasks due within URGENT_WINDOW by
    deadline; then FIFO (created_at, id). Overdue tasks are never handed out
    (the sweep expires them). Two statements (one when a task is urgent), each
    index range reads, no sort.
    """
    conn = session.connection()  # Core statements skip the ORM's execution path
    # Urgent first: locking the FIFO head before knowing it loses to an urgent
    # task would hide it from concurrent claims for nothing.
    urgent = conn.execute(_URGENT_HEAD, {"now": now, "soon": now + URGENT_WINDOW}).first()
    if urgent is not None:
        return urgent
    return conn.execute(_QUEUE_HEAD, {"now": now}).first()


def _queue_head(session, now, n: int) -> list[int]:
    """The ids of the first `n` pending tasks in the order `_next_pending_row`
    would hand them out one by one (no locks: the caller locks and re-checks).

    Two index reads of at most `n` rows each: the urgent ones (due within
    URGENT_WINDOW) and the FIFO head. Merged, their first `n` are the queue's
    first `n`: a task missing from the FIFO head has `n` tasks before it in
    FIFO order, and each of those also goes before it in dispatch order
    (higher priority, or same priority and older or urgent); likewise for
    the urgent ones, among which dispatch order is the urgent read's order.
    """
    soon = now + URGENT_WINDOW
    columns = (Task.id, Task.priority, Task.created_at, Task.deadline)
    urgent = session.execute(
        sa.select(*columns).where(Task.status == PENDING, Task.deadline > now,
                                  Task.deadline <= soon)
        .order_by(Task.priority.desc(), Task.deadline, Task.id).limit(n)).all()
    fifo = session.execute(
        sa.select(*columns).where(Task.status == PENDING, _not_overdue)
        .order_by(Task.priority.desc(), Task.created_at, Task.id).limit(n), {"now": now}).all()

    def order(row):
        if row.deadline is not None and now < row.deadline <= soon:
            return (-row.priority, 0, row.deadline, row.id)
        return (-row.priority, 1, row.created_at, row.id)
    rows = {row.id: row for row in (*urgent, *fifo)}.values()
    return [row.id for row in sorted(rows, key=order)[:n]]


def _lock_free_reviewers(session, candidates: list[int]) -> list[int]:
    """Lock those of `candidates` that can work (SKIP LOCKED: one that another
    transaction is serving is left to it) and drop any that holds a task.
    Keeps the order of `candidates`."""
    locked = set(session.scalars(
        sa.select(User.id).where(User.id.in_(candidates), User.role == Role.REVIEWER.value,
                                 User.active.is_(True), User.available.is_(True))
        .with_for_update(skip_locked=True)))
    # Nobody gives a reviewer a task without locking it first, so what they
    # hold cannot change from here to the commit.
    holding = set(session.scalars(sa.select(Task.holder_id)
                                  .where(Task.holder_id.in_(locked)))) if locked else set()
    return [r for r in candidates if r in locked and r not in holding]


def _lock_pending(session, task_ids: list[int], now) -> list:
    """Lock those of the tasks that are still pending and not overdue (SKIP
    LOCKED: one a concurrent claim is taking is left to it), in the given
    order. Core rows: a batch is hundreds of tasks, ORM objects cost."""
    found = {row.id: row for row in session.connection().execute(
        sa.select(_tasks).where(_tasks.c.id.in_(task_ids), _tasks.c.status == PENDING,
                                _not_overdue)
        .with_for_update(skip_locked=True), {"now": now})}
    return [found[i] for i in task_ids if i in found]


def _lock_reviewer(session, reviewer_id: int, skip_locked: bool = False):
    return session.scalars(sa.select(User).where(User.id == reviewer_id)
                           .with_for_update(skip_locked=skip_locked)
                           .execution_options(**_FRESH)).first()


def _lock_task(session, task_id: int):
    return session.scalars(sa.select(Task).where(Task.id == task_id).with_for_update()
                           .execution_options(**_FRESH)).first()


def _held_task(session, reviewer_id: int):
    return session.scalars(sa.select(Task).where(Task.holder_id == reviewer_id)).first()


def _can_work(reviewer) -> bool:
    return (reviewer is not None and reviewer.active and reviewer.available
            and reviewer.role == Role.REVIEWER.value)


def _free_reviewer_ids(session, lease_seconds: float, limit: int = 10) -> list[int]:
    """Online, available reviewers holding nothing, longest idle first (no locks)."""
    holds = sa.exists().where(Task.holder_id == User.id)
    return list(session.scalars(
        sa.select(User.id)
        .where(User.role == Role.REVIEWER.value, User.active.is_(True),
               User.available.is_(True), ~holds, live_socket_exists(User.id, lease_seconds))
        .order_by(User.idle_since, User.id).limit(limit)))


def _record(session, task: Task, kind: str, reviewer_id=None, actor_id=None, detail=None):
    session.add(TaskEvent(task_id=task.id, kind=kind, reviewer_id=reviewer_id,
                          actor_id=actor_id, at=utcnow(), detail=detail))


def _assign(session, task: Task, reviewer: User, actor_id=None) -> Assigned:
    now = utcnow()
    task.status = ASSIGNED
    task.assignee_id = reviewer.id
    task.holder_id = reviewer.id
    task.assigned_at = now
    task.acked_at = None
    _record(session, task, "assigned", reviewer_id=reviewer.id, actor_id=actor_id)
    session.flush()  # the UNIQUE holder_id check happens here, inside the transaction
    return Assigned(reviewer.id, task.to_dict())


def _assign_many(session, pairs: list[tuple[int, object]], now) -> list[Assigned]:
    """`_claim_for` for many (reviewer id, locked pending task row) pairs at
    once: one executemany UPDATE and one INSERT."""
    conn = session.connection()
    conn.execute(_ASSIGN, [{"task_id": t.id, "reviewer_id": r, "now": now} for r, t in pairs])
    conn.execute(_ADD_EVENTS, [_event(t.id, "assigned", now, reviewer_id=r) for r, t in pairs])
    return [Assigned(r, _task_dict(t._mapping, status=ASSIGNED, assignee_id=r, holder_id=r,
                                   assigned_at=now, acked_at=None))
            for r, t in pairs]


def _claim_for(session, reviewer, events: list | None = None) -> Assigned | None:
    """Give the (locked, free) reviewer the next pending task, if there is one.

    With `events`, the `assigned` event is appended there for the caller to
    insert with its own; otherwise it is inserted here."""
    now = utcnow()
    row = _next_pending_row(session, now)
    if row is None:
        return None
    conn = session.connection()
    # The UNIQUE holder_id check happens here, inside the transaction.
    conn.execute(_ASSIGN, {"task_id": row.id, "reviewer_id": reviewer.id, "now": now})
    event = _event(row.id, "assigned", now, reviewer_id=reviewer.id)
    if events is None:
        conn.execute(_ADD_EVENTS, [event])
    else:
        events.append(event)
    task = _task_dict(row._mapping, status=ASSIGNED, assignee_id=reviewer.id,
                      holder_id=reviewer.id, assigned_at=now, acked_at=None)
    return Assigned(reviewer.id, task)


def _return_to_queue(session, task: Task, kind: str, actor_id=None) -> int | None:
    """Put an assigned task back to pending; it keeps its created_at, so its place."""
    holder = task.holder_id
    task.status = PENDING
    task.holder_id = None
    task.assignee_id = None
    task.assigned_at = None
    task.acked_at = None
    _record(session, task, kind, reviewer_id=holder, actor_id=actor_id)
    return holder


def _free_holder(session, reviewer_id: int | None) -> None:
    if reviewer_id is not None:
        session.execute(sa.update(User).where(User.id == reviewer_id)
                        .values(idle_since=utcnow()))


def _ever_held(session, task_id: int, reviewer_id: int) -> bool:
    return session.scalar(sa.select(sa.exists().where(
        TaskEvent.task_id == task_id, TaskEvent.reviewer_id == reviewer_id,
        TaskEvent.kind == "assigned"))) or False


def _get_task(session, task_id: int) -> Task:
    task = session.get(Task, task_id)
    if task is None:
        raise NotFound(f"task {task_id} does not exist", code="task_not_found")
    return task


# --- reading -----------------------------------------------------------------

def current_task(session, reviewer_id: int) -> dict | None:
    """The task the reviewer holds now, as a dict, or None."""
    task = _held_task(session, reviewer_id)
    return task.to_dict() if task else None


def task_for_reader(session, task_id: int, reader: User) -> dict:
    """A task as seen by `reader`: supervisors see all, reviewers only their own."""
    task = _get_task(session, task_id)
    if Role(reader.role).rank >= Role.SUPERVISOR.rank:
        return task.to_dict()
    if task.assignee_id == reader.id or _ever_held(session, task_id, reader.id):
        return task.to_dict()
    raise Forbidden("this task is not yours", code="not_your_task")


# --- transitions -------------------------------------------------------------

def offer_work(session, reviewer_id: int, arriving=None) -> Outcome:
    """On connect: the held task (resent), a newly claimed one, or idle.

    `arriving(session, reviewer)`, if given, records the new socket in the
    same transaction, so no other claim can slip in between the reviewer
    coming online and this one (which would push the same task twice). It gets
    the reviewer row locked already: recording the socket first would take a
    shared lock on that row (the foreign key), and two connects of one
    reviewer, each holding one and asking for the exclusive lock, would
    deadlock."""
    def work(session):
        reviewer = _lock_reviewer(session, reviewer_id)
        if arriving is not None:
            arriving(session, reviewer)
        held = _held_task(session, reviewer_id)
        if held is not None:
            return Outcome(held.to_dict(), [Assigned(reviewer_id, held.to_dict(), resent=True)])
        if not _can_work(reviewer):
            return Outcome(None, [Idle(reviewer_id, "paused")])
        assigned = _claim_for(session, reviewer)
        if assigned is None:
            return Outcome(None, [Idle(reviewer_id, "queue-empty")])
        return Outcome(assigned.task, [assigned])
    return run_write(session, work)


def complete(session, reviewer_id: int, task_id: int, outcome: str | None = None,
             note: str | None = None) -> Outcome:
    """The reviewer finished its task; in the same transaction it claims the next.

    Outcome.value is ``{"task": completed, "next_task": next or None}``.
    Raises NotFound, Forbidden (never the reviewer's) or Conflict (no longer
    the reviewer's, or no longer assigned).

    Completions that arrive together share a transaction on SQLite
    (run_write_shared): every refusal below is raised before the first write.
    """
    def work(session):
        conn = session.connection()  # Core statements skip the ORM's execution path
        reviewer = conn.execute(_LOCK_REVIEWER_ROW, {"reviewer_id": reviewer_id}).first()
        task = conn.execute(_LOCK_TASK_ROW, {"task_id": task_id}).first()
        if task is None:
            raise NotFound(f"task {task_id} does not exist", code="task_not_found")
        if task.status != ASSIGNED or task.holder_id != reviewer_id:
            if task.assignee_id == reviewer_id or _ever_held(session, task_id, reviewer_id):
                raise Conflict(f"task {task_id} is no longer assigned to you "
                               f"(it is {task.status})", code="task_not_assigned")
            raise Forbidden(f"task {task_id} is not yours", code="not_your_task")
        now = utcnow()
        conn.execute(_FINISH, {"task_id": task_id, "now": now, "outcome": outcome,
                                  "note": note})
        done = _task_dict(task._mapping, status=TaskStatus.COMPLETED.value, holder_id=None,
                          completed_at=now, outcome=outcome, note=note)
        events = [_event(task_id, "completed", now, reviewer_id=reviewer_id,
                         detail={"outcome": outcome} if outcome else None)]
        assigned = _claim_for(session, reviewer, events) if _can_work(reviewer) else None
        conn.execute(_ADD_EVENTS, events)
        if assigned is not None:
            return Outcome({"task": done, "next_task": assigned.task}, [assigned])
        # Free now: the longest idle gets work first. (With a next task the
        # reviewer is not free, so idle_since waits until it is.)
        conn.execute(_IDLE_SINCE, {"reviewer_id": reviewer_id, "now": now})
        reason = "queue-empty" if _can_work(reviewer) else "paused"
        return Outcome({"task": done, "next_task": None}, [Idle(reviewer_id, reason)])
    return run_write_shared(session, work, refusals=(QCError,))


def set_availability(session, reviewer_id: int, available: bool, actor_id: int,
                     claim: bool) -> Outcome:
    """Pause or resume a reviewer.

    Pausing keeps the held task (no new one comes after it). Resuming claims a
    task when ``claim`` is true (the reviewer is online or asked in person).
    Outcome.value is ``{"available": bool, "task": held or new task or None}``.
    """
    def work(session):
        reviewer = _lock_reviewer(session, reviewer_id)
        if reviewer is None:
            raise NotFound(f"user {reviewer_id} does not exist", code="user_not_found")
        if reviewer.role != Role.REVIEWER.value:
            raise Invalid(f"user {reviewer_id} is not a reviewer", code="not_a_reviewer")
        was = reviewer.available
        reviewer.available = available
        held = _held_task(session, reviewer_id)
        if held is not None:
            return Outcome({"available": available, "task": held.to_dict()}, [])
        if not available:
            return Outcome({"available": False, "task": None}, [Idle(reviewer_id, "paused")])
        if not was:
            reviewer.idle_since = utcnow()
        assigned = _claim_for(session, reviewer) if claim and _can_work(reviewer) else None
        if assigned is None:
            notices = [Idle(reviewer_id, "queue-empty")] if claim else []
            return Outcome({"available": True, "task": None}, notices)
        return Outcome({"available": True, "task": assigned.task}, [assigned])
    return run_write(session, work)


def create_tasks(session, specs: list[TaskSpec], actor_id: int | None,
                 lease_seconds: float) -> Outcome:
    """Add tasks to the queue and hand them to free reviewers.

    Idempotent on external_id: a spec whose external_id exists already gives
    the existing task. Outcome.value is the list of task dicts, in input order.
    """
    def work(session):
        wanted = [s.external_id for s in specs if s.external_id is not None]
        existing = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            existing.update((t.external_id, t.to_dict()) for t in session.scalars(
                sa.select(Task).where(Task.external_id.in_(chunk))))
        # Core inserts, not ORM objects: intake is mostly the unit of work's
        # bookkeeping otherwise (docs/benchmarks.md, "Where the time goes").
        now = utcnow()
        rows, places, new_ids = [], [], {}
        for spec in specs:
            if spec.external_id in existing:
                places.append(existing[spec.external_id])
                continue
            if spec.external_id in new_ids:  # the same external_id earlier in this list
                places.append(new_ids[spec.external_id])
                continue
            if spec.external_id is not None:
                new_ids[spec.external_id] = len(rows)
            places.append(len(rows))
            rows.append({"name": spec.name, "payload": spec.payload, "priority": spec.priority,
                         "deadline": spec.deadline, "external_id": spec.external_id,
                         "status": PENDING, "created_at": now, "updated_at": now})
        if not rows:
            return places
        ids = _insert_tasks(session, rows)
        session.execute(sa.insert(TaskEvent), [
            {"task_id": task_id, "kind": "created", "reviewer_id": None, "actor_id": actor_id,
             "at": now, "detail": None} for task_id in ids])
        # Task.to_dict of the new rows, without building ORM objects for them
        # (that alone was a fifth of the time); tests compare it with GET /tasks/<id>.
        created = [_task_dict(row, id=task_id, assignee_id=None, assigned_at=None,
                              completed_at=None, outcome=None, note=None)
                   for task_id, row in zip(ids, rows)]
        return [created[p] if isinstance(p, int) else p for p in places]

    try:
        value = run_write(session, work)
    except IntegrityError:
        # Another request created one of these external_ids in the meantime:
        # once more, now finding it.
        value = run_write(session, work)
    return Outcome(value).extend(dispatch_pending(session, lease_seconds))


def _insert_tasks(session, rows: list[dict]) -> list[int]:
    """INSERT the rows; their new ids, in the rows' order."""
    if not is_sqlite(session):
        return session.scalars(sa.insert(Task).returning(Task.id, sort_by_parameter_order=True),
                               rows).all()
    # SQLite cannot promise the order of a multi-row RETURNING, so SQLAlchemy
    # would send one INSERT per row (most of an import's time). Instead: SQLite
    # gives a new row max(rowid) + 1, and this transaction holds the database's
    # only write lock, so one executemany's rows get the next ids, in order.
    conn = session.connection()
    last = conn.execute(sa.select(sa.func.max(_tasks.c.id))).scalar() or 0
    conn.execute(sa.insert(_tasks), rows)
    if conn.execute(sa.select(sa.func.max(_tasks.c.id))).scalar() != last + len(rows):
        raise RuntimeError("new task ids are not consecutive; refusing to guess them")
    return list(range(last + 1, last + 1 + len(rows)))


def dispatch_pending(session, lease_seconds: float, batch: int | None = None) -> Outcome:
    """Hand pending tasks to free online reviewers: the first task in dispatch
    order to the longest-idle reviewer, the second to the next, and so on.

    Set-based, up to `batch` (default DISPATCH_BATCH) tasks per transaction:
    the free reviewers are read once and locked, then as many tasks from the
    head of the queue, and the pairs are written in one UPDATE and one INSERT. Between
    transactions the event loop runs (`database.yield_to_loop`), so a large
    import does not stall sockets, acks or the heartbeat. Reviewers or tasks
    locked by a concurrent transaction are skipped; that transaction will give
    them work itself, and the periodic sweep catches anything left.
    """
    size = batch or DISPATCH_BATCH

    def hand_out(session):
        now = utcnow()
        # Cheap first: on a busy floor the queue is long and nobody is free.
        if session.scalar(sa.select(Task.id).where(Task.status == PENDING, _not_overdue)
                          .limit(1), {"now": now}) is None:
            return [], False
        candidates = _free_reviewer_ids(session, lease_seconds, size)
        free = _lock_free_reviewers(session, candidates) if candidates else []
        if not free:
            return [], False
        head = _queue_head(session, now, len(free))
        tasks = _lock_pending(session, head, now)
        if len(tasks) < len(free) and len(head) == len(free):
            # Concurrent claims are taking some of these: look once past them,
            # or the reviewers left over would wait for the next sweep.
            seen = set(head)
            further = [i for i in _queue_head(session, now, 2 * len(free)) if i not in seen]
            tasks += _lock_pending(session, further, now)[:len(free) - len(tasks)]
        pairs = list(zip(free, tasks))
        notices = _assign_many(session, pairs, now) if pairs else []
        # Go on if there may be more free reviewers and there were tasks for
        # all of these, or if a concurrent claim took some of these tasks
        # (the reviewers left over may still get the ones after them).
        full = len(candidates) == size and len(head) == len(free)
        return notices, bool(pairs) and (full or len(tasks) < len(head))

    outcome = Outcome()
    while True:
        notices, more = run_write(session, hand_out)
        outcome.notices.extend(notices)
        if not more:
            return outcome
        yield_to_loop()


def assign_task(session, task_id: int, actor_id: int, lease_seconds: float) -> Outcome:
    """A supervisor asks for this task to go out now: to the longest-idle free
    reviewer, or it stays pending if nobody is free. Outcome.value is the task."""
    task = _get_task(session, task_id)
    if task.status != PENDING:
        raise Conflict(f"task {task_id} is {task.status}, not pending", code="task_not_pending")

    def work(session):
        for reviewer_id in _free_reviewer_ids(session, lease_seconds):
            reviewer = _lock_reviewer(session, reviewer_id, skip_locked=True)
            if not _can_work(reviewer) or _held_task(session, reviewer_id) is not None:
                continue
            task = _lock_task(session, task_id)
            if task.status != PENDING:
                raise Conflict(f"task {task_id} is {task.status}, not pending",
                               code="task_not_pending")
            assigned = _assign(session, task, reviewer, actor_id=actor_id)
            return Outcome(assigned.task, [assigned])
        return Outcome(_lock_task(session, task_id).to_dict(), [])
    return run_write(session, work)


def release(session, task_id: int, actor_id: int | None, lease_seconds: float,
            reason: str = "released") -> Outcome:
    """Take an assigned task away from its holder and put it back in the queue
    (keeping its place). The holder is told; the queue is then dispatched."""
    def work(session):
        task = _get_task(session, task_id)
        if task.status != ASSIGNED:
            raise Conflict(f"task {task_id} is {task.status}, not assigned",
                           code="task_not_assigned")
        holder_id = task.holder_id
        _lock_reviewer(session, holder_id)
        task = _lock_task(session, task_id)
        if task.status != ASSIGNED or task.holder_id != holder_id:
            raise Conflict(f"task {task_id} changed hands meanwhile; try again",
                           code="task_changed")
        _return_to_queue(session, task, "released", actor_id=actor_id)
        _free_holder(session, holder_id)
        session.flush()
        return Outcome(task.to_dict(), [Revoked(holder_id, task_id, reason)])
    return run_write(session, work).extend(dispatch_pending(session, lease_seconds))


def cancel(session, task_id: int, actor_id: int | None, lease_seconds: float) -> Outcome:
    """Cancel a pending or assigned task; its holder (if any) is told and freed."""
    def work(session):
        task = _get_task(session, task_id)
        if task.status in FINAL_STATUSES:
            raise Conflict(f"task {task_id} is already {task.status}", code="task_final")
        holder_id = task.holder_id
        if holder_id is not None:
            _lock_reviewer(session, holder_id)
        task = _lock_task(session, task_id)
        if task.holder_id != holder_id or task.status in FINAL_STATUSES:
            raise Conflict(f"task {task_id} changed meanwhile; try again", code="task_changed")
        task.status = TaskStatus.CANCELLED.value
        task.holder_id = None
        _record(session, task, "cancelled", reviewer_id=holder_id, actor_id=actor_id)
        _free_holder(session, holder_id)
        session.flush()
        notices = [Revoked(holder_id, task_id, "cancelled")] if holder_id else []
        return Outcome(task.to_dict(), notices)
    return run_write(session, work).extend(dispatch_pending(session, lease_seconds))


def requeue_abandoned(session, grace_seconds: float, lease_seconds: float) -> Outcome:
    """Tasks whose holder has had no live socket for the grace period go back
    to the queue, keeping their place (`task-revoked`, reason 'abandoned');
    the queue is then dispatched. Outcome.value is the list of task ids."""
    def work(session):
        cutoff = ago(grace_seconds)
        candidates = session.execute(
            sa.select(Task.id, Task.holder_id).join(User, User.id == Task.holder_id)
            .where(Task.status == ASSIGNED, User.offline_since.is_not(None),
                   User.offline_since <= cutoff,
                   ~live_socket_exists(User.id, lease_seconds))).all()
        requeued = []
        for task_id, holder_id in candidates:
            reviewer = _lock_reviewer(session, holder_id, skip_locked=True)
            if reviewer is None or reviewer.offline_since is None \
                    or reviewer.offline_since > cutoff:
                continue
            task = _lock_task(session, task_id)
            if task.status != ASSIGNED or task.holder_id != holder_id:
                continue
            _return_to_queue(session, task, "requeued")
            requeued.append((holder_id, task_id))
        return requeued

    requeued = run_write(session, work)
    # Normally nobody hears this; a socket we wrongly took for gone does.
    outcome = Outcome([t for _, t in requeued],
                      [Revoked(holder, t, "abandoned") for holder, t in requeued])
    return outcome.extend(dispatch_pending(session, lease_seconds))


def expire_overdue(session, lease_seconds: float, batch: int = 500) -> Outcome:
    """Tasks past their deadline, pending or assigned, become expired; holders
    are told (`task-revoked`, reason 'expired') and get their next task.
    Outcome.value is the list of expired task ids."""
    def work(session):
        now = utcnow()
        due = session.execute(
            sa.select(Task.id, Task.holder_id)
            .where(Task.status.in_([PENDING, ASSIGNED]), Task.deadline.is_not(None),
                   Task.deadline <= now)
            .order_by(Task.deadline).limit(batch)).all()
        expired, notices = [], []
        for task_id, holder_id in due:
            if holder_id is not None and _lock_reviewer(session, holder_id,
                                                        skip_locked=True) is None:
                continue  # busy right now; the next sweep gets it
            task = _lock_task(session, task_id)
            if task.status not in (PENDING, ASSIGNED) or task.holder_id != holder_id:
                continue
            task.status = TaskStatus.EXPIRED.value
            task.holder_id = None
            _record(session, task, "expired", reviewer_id=holder_id)
            _free_holder(session, holder_id)
            expired.append(task_id)
            if holder_id is not None:
                notices.append(Revoked(holder_id, task_id, "expired"))
        return Outcome(expired, notices)

    outcome = run_write(session, work)
    if outcome.notices:
        outcome.extend(dispatch_pending(session, lease_seconds))
    return outcome


def acknowledge(session, reviewer_id: int, task_id: int) -> bool:
    """The reviewer has the task on screen (a socket's ack of `task-assigned`,
    or a REST answer that carried it). True if this was the first word of it."""
    return acknowledge_many(session, [(task_id, reviewer_id)]) == 1


def acknowledge_many(session, acks) -> int:
    """Record several (task_id, reviewer_id) acks in one transaction; an ack
    counts only while that reviewer still holds the task. Rows are updated one
    by one in id order, each by primary key, so a batch locks only the rows it
    marks, in the order every other batch does, and in the order a completion
    does (row first): a single multi-row UPDATE deadlocked against concurrent
    completions on MariaDB. Returns how many offers were acknowledged for the
    first time."""
    now = utcnow()
    rows = [{"task_id": task_id, "reviewer_id": reviewer_id, "now": now}
            for task_id, reviewer_id in sorted(set(acks))]
    # executemany: still one UPDATE per row, in this order, but the driver
    # loops (in C on SQLite), not SQLAlchemy; its rowcount is the sum.
    return session.connection().execute(_ACK, rows).rowcount if rows else 0


def unacknowledged_offers(session) -> list[tuple[int, int, object]]:
    """(task id, holder id, assigned_at) of every assigned task no socket or
    REST answer has acknowledged yet. At most one per reviewer."""
    return [tuple(row) for row in session.execute(
        sa.select(Task.id, Task.holder_id, Task.assigned_at)
        .where(Task.status == ASSIGNED, Task.acked_at.is_(None)))]


def take_back_unacknowledged(session, offers, lease_seconds: float) -> Outcome:
    """Offers their reviewer left unanswered (a frozen tab) go back to the
    queue, keeping their place, and on to the next free reviewer. The silent
    reviewer is paused, like a missed call, and told why.

    `offers` are (task id, holder id, assigned_at): which offers were left
    unanswered is for the caller to say, the process that put each on the
    reviewer's socket (see runtime.Runtime.follow_up_offers). One that is no
    longer that reviewer's, was acknowledged meanwhile, or was made anew since
    is left alone. Outcome.value is the list of task ids taken back."""
    def work(session):
        taken, notices = [], []
        for task_id, holder_id, assigned_at in offers:
            reviewer = _lock_reviewer(session, holder_id, skip_locked=True)
            if reviewer is None:
                continue  # busy right now; the next sweep decides
            task = _lock_task(session, task_id)
            if task is None or task.status != ASSIGNED or task.holder_id != holder_id \
                    or task.acked_at is not None or task.assigned_at != assigned_at:
                continue
            _return_to_queue(session, task, "unacknowledged")
            reviewer.available = False
            reviewer.idle_since = utcnow()
            taken.append(task_id)
            notices += [Revoked(holder_id, task_id, "unacknowledged"),
                        Idle(holder_id, "paused")]
        return Outcome(taken, notices)

    outcome = run_write(session, work)
    if outcome.value:
        outcome.extend(dispatch_pending(session, lease_seconds))
    return outcome


EDITABLE = ("name", "payload", "priority", "deadline")


def update_task(session, task_id: int, changes: dict, actor_id: int | None,
                lease_seconds: float) -> Outcome:
    """Rename, re-prioritise, change the payload or deadline of a live task, or
    cancel it (``{"status": "cancelled"}``). A holder sees the new version at
    once (`task-assigned` again, same id). Finished tasks are 409."""
    if changes.get("status") == TaskStatus.CANCELLED.value:
        return cancel(session, task_id, actor_id, lease_seconds)  # nothing else to edit then

    def work(session):
        task = _get_task(session, task_id)
        holder_id = task.holder_id
        if holder_id is not None:
            _lock_reviewer(session, holder_id)
        task = _lock_task(session, task_id)
        if task.status in FINAL_STATUSES:
            raise Conflict(f"task {task_id} is {task.status} and can no longer change",
                           code="task_final")
        if task.holder_id != holder_id:
            raise Conflict(f"task {task_id} changed hands meanwhile; try again",
                           code="task_changed")
        changed = {k: v for k, v in changes.items()
                   if k in EDITABLE and getattr(task, k) != v}
        for key, value in changed.items():
            setattr(task, key, value)
        if changed:
            _record(session, task, "updated", reviewer_id=holder_id, actor_id=actor_id,
                    detail={"fields": sorted(changed)})
        session.flush()
        notices = [Assigned(holder_id, task.to_dict(), resent=True)] \
            if changed and holder_id is not None else []
        return Outcome(task.to_dict(), notices)
    return run_write(session, work)


def sign_out(session, user_id: int, actor_id: int | None, lease_seconds: float,
             grace_seconds: float, deactivate: bool = False) -> Outcome:
    """Log a user out everywhere (logout, a supervisor forcing a reviewer
    offline, or deactivation): every token dies, the user's sockets stop
    counting as presence, and a held task goes back to the queue at once,
    keeping its place (no grace: this was on purpose). The user shows as
    offline at once too, and coming back it joins the end of the idle line.
    Outcome.value: {"task": the returned task or None, "sockets": [(sid,
    namespace)]} — the caller disconnects those after the commit."""
    def work(session):
        user = _lock_reviewer(session, user_id)
        if user is None:
            raise NotFound(f"user {user_id} does not exist", code="user_not_found")
        user.token_version += 1
        if deactivate:
            user.active = False
        sockets = forget_sockets(session, user_id)
        held = _held_task(session, user_id)
        notices = []
        if held is not None:
            held = _lock_task(session, held.id)
            _return_to_queue(session, held, "signed_out", actor_id=actor_id)
            notices.append(Revoked(user_id, held.id, "released"))
        # Offline for a whole grace period already: "online" includes the
        # grace after a dropped socket (a reload), which a sign-out must not get.
        user.offline_since = ago(grace_seconds)
        session.flush()
        return Outcome({"task": held.to_dict() if held else None, "sockets": sockets},
                       notices)
    return run_write(session, work).extend(dispatch_pending(session, lease_seconds))
