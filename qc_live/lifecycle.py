"""The task state machine: the only code that writes a task's status and holder.

    (new) --create--> pending --assign--> assigned --finish--> completed
                         ^                   |
                         +-----requeue-------+    keeps created_at: its place
    pending|assigned --cancel--> cancelled
    pending|assigned --expire--> expired
    pending|assigned --edit--> the same status, new name/payload/priority/deadline
    pending --edit--> pending, in another queue (keeping created_at)

Second reviews (audits.py decides who and how often): `finish` of a review
either makes its verdict final at once or creates its audit task (kind
'audit', review_of the original, not for the original's reviewer); `finish`
of an audit marks the original agreed (final) or disputed; `resolve` settles
a dispute; an audit cancelled or expired leaves the original's verdict
final. `finalize` is the one place a verdict becomes final, and writes
task.finalized only if its guarded UPDATE (finalized_at IS NULL) changed
the row: exactly once.

Each edge is a function over a `Work` (one write transaction): it writes the
task's row, records its event in the history (`task_events`, written once per
transaction, before the commit) and returns the task as the wire's task
object. The final edges (finish, cancel, expire) also announce a webhook
event, written to the outbox in the same place and transaction (outbox.py).
Callers (dispatch.py, sweep.py, accounts.py) decide what moves and
when; `run` gives them the transaction.

Invariants the database keeps whatever this code does: `holder_id` is UNIQUE
(a reviewer holds at most one task) and is one column (a task has at most one
holder); `review_of` is UNIQUE (one audit per original). This module keeps the rest: `holder_id` is set exactly while the
task is assigned, then equal to `assignee_id`; a final status never changes.
"""
from dataclasses import dataclass

import sqlalchemy as sa
from flask import current_app

from . import audits, forms, outbox, sql
from .clock import utcnow
from .database import is_sqlite, run_write
from .errors import Conflict, Invalid, NotFound
from .group_commit import run_write_shared
from .models import DEFAULT_QUEUE, KIND_AUDIT, supervised_task_dict, task_dict
from .notices import Assigned

__all__ = ["Work", "run", "task_dict", "TaskSpec"]

ASSIGNED, PENDING, CANCELLED = sql.ASSIGNED, sql.PENDING, sql.CANCELLED
LIVE = sql.LIVE  # the statuses a task can leave
FINAL = (sql.COMPLETED, sql.CANCELLED, sql.EXPIRED)
EDITABLE = ("name", "payload", "priority", "deadline", "queue", "expected_outcome")


@dataclass(frozen=True)
class TaskSpec:
    """A task to create, already checked (schemas.py / importer.py)."""
    name: str
    payload: dict
    priority: int = 0
    deadline: object = None
    external_id: str | None = None
    queue: str = DEFAULT_QUEUE
    expected_outcome: str | None = None  # a gold task's answer


class Work:
    """One write transaction: its session, its moment (`now`, one timestamp
    for everything it writes), and the history rows and webhook events it
    writes before commit."""

    __slots__ = ("session", "conn", "now", "_events", "_announced", "audits_created")

    def __init__(self, session):
        self.session = session
        self.conn = session.connection()  # Core statements skip the ORM's execution path
        self.now = utcnow()
        self._events = []
        self._announced = []
        # Audit tasks this transaction created: new work for reviewers other
        # than the one who just completed (Dispatcher.complete hands them out).
        self.audits_created = []

    def event(self, task_id: int, kind: str, reviewer_id=None, actor_id=None,
              detail=None) -> None:
        self._events.append({"task_id": task_id, "kind": kind, "reviewer_id": reviewer_id,
                             "actor_id": actor_id, "at": self.now, "detail": detail})

    def announce(self, kind: str, task: dict) -> None:
        """A webhook event (outbox.ANNOUNCES) of this transaction's."""
        self._announced.append((kind, task))

    def write_events(self) -> None:
        if self._events:
            self.conn.execute(sql.ADD_EVENTS, self._events)
            self._events = []
        if self._announced:
            give_up = current_app.extensions["qc_config"].webhook_give_up_seconds
            outbox.record(self.conn, self.now, self._announced, give_up)
            self._announced = []


def run(session, work, *, shared: bool = False, refusals: tuple = ()):
    """`work(w)` in one write transaction (database.run_write), its history
    written before the commit; returns what `work` returns. `shared`: on
    SQLite, concurrent callers share a transaction (group_commit), and `work`
    may raise one of `refusals` only before it writes anything."""
    def body(session):
        w = Work(session)
        result = work(w)
        w.write_events()
        return result
    if shared:
        return run_write_shared(session, body, refusals=refusals)
    return run_write(session, body)


# --- locks ---------------------------------------------------------------------

def lock_reviewer(w: Work, reviewer_id: int, wait: bool = True):
    """The reviewer's row, locked (None if there is none, or if `wait` is
    false and another transaction holds it)."""
    statement = sql.LOCK_USER if wait else sql.TRY_LOCK_USER
    return w.conn.execute(statement, {"user_id": reviewer_id}).first()


def held_task(w: Work, reviewer_id: int):
    """The row of the task the reviewer holds, or None. Under the reviewer's
    lock it cannot change: nobody hands a reviewer a task without that lock."""
    return w.conn.execute(sql.HELD_TASK, {"reviewer_id": reviewer_id}).first()


def lock(w: Work, task_id: int, allowed: tuple, refusal: str, sweeping: bool = False):
    """The task's row, locked in the one order (its holder's row first, then
    the task's), and checked afresh: still in one of the `allowed` statuses,
    still with the holder it had when first read.

    Refusals: NotFound `task_not_found`; Conflict `task_changed` (another
    transaction moved it between the read and the lock: try again); Conflict
    `refusal` (it is in another status). `sweeping`: a periodic sweep asks,
    which skips what is busy or changed instead (None), to look again next
    time."""
    row = w.conn.execute(sql.READ_TASK, {"task_id": task_id}).first()
    if row is None:
        if sweeping:
            return None
        raise NotFound(f"task {task_id} does not exist", code="task_not_found")
    holder = row.holder_id
    if holder is not None and lock_reviewer(w, holder, wait=not sweeping) is None:
        return None  # sweeping, and the holder is busy right now
    row = w.conn.execute(sql.LOCK_TASK, {"task_id": task_id}).first()
    if row.holder_id != holder:
        if sweeping:
            return None
        raise Conflict(f"task {task_id} changed hands meanwhile; try again",
                       code="task_changed")
    if row.status not in allowed:
        if sweeping:
            return None
        raise Conflict(f"task {task_id} is {row.status}, not {' or '.join(allowed)}",
                       code=refusal)
    return row


# --- the edges -------------------------------------------------------------------

def create(w: Work, specs: list[TaskSpec], actor_id: int | None) -> list[dict]:
    """(new) -> pending, in input order. Idempotent on external_id: a spec
    whose external_id exists (or came earlier in `specs`) gives that task."""
    wanted = [s.external_id for s in specs if s.external_id is not None]
    existing = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start:start + 500]
        existing.update((row.external_id, supervised_task_dict(row)) for row in w.conn.execute(
            sa.select(sql.tasks).where(sql.tasks.c.external_id.in_(chunk))))
    rows, places, new_ids = [], [], {}
    for spec in specs:
        if spec.external_id in existing:
            places.append(existing[spec.external_id])
        elif spec.external_id in new_ids:
            places.append(new_ids[spec.external_id])
        else:
            if spec.external_id is not None:
                new_ids[spec.external_id] = len(rows)
            places.append(len(rows))
            rows.append({"name": spec.name, "payload": spec.payload,
                         "priority": spec.priority, "deadline": spec.deadline,
                         "external_id": spec.external_id, "queue": spec.queue,
                         "expected_outcome": spec.expected_outcome, "status": PENDING,
                         "created_at": w.now, "updated_at": w.now})
    if not rows:
        return places
    ids = _insert(w, rows)
    for task_id in ids:
        w.event(task_id, "created", actor_id=actor_id)
    created = [supervised_task_dict(row, id=task_id, assignee_id=None, assigned_at=None,
                                    completed_at=None, outcome=None, note=None)
               for task_id, row in zip(ids, rows)]
    return [created[p] if isinstance(p, int) else p for p in places]


def _insert(w: Work, rows: list[dict]) -> list[int]:
    """INSERT the rows; their new ids, in the rows' order."""
    if not is_sqlite(w.session):
        return list(w.conn.execute(
            sa.insert(sql.tasks).returning(sql.tasks.c.id, sort_by_parameter_order=True),
            rows).scalars())
    # SQLite cannot promise the order of a multi-row RETURNING, so SQLAlchemy
    # would send one INSERT per row. Instead: a new row gets max(rowid) + 1,
    # and this transaction holds the only write lock, so one executemany's
    # rows get the next ids, in order (checked).
    last = w.conn.execute(sa.select(sa.func.max(sql.tasks.c.id))).scalar() or 0
    w.conn.execute(sa.insert(sql.tasks), rows)
    if w.conn.execute(sa.select(sa.func.max(sql.tasks.c.id))).scalar() != last + len(rows):
        raise RuntimeError("new task ids are not consecutive; refusing to guess them")
    return list(range(last + 1, last + 1 + len(rows)))


def assign(w: Work, pairs: list[tuple[int, object]], actor_id: int | None = None) \
        -> list[Assigned]:
    """pending -> assigned, for each (reviewer id, locked pending row): the
    reviewer holds the task from now, unacknowledged until a socket (or a REST
    answer) confirms it. One UPDATE per row, sent as one executemany."""
    params = [{"task_id": row.id, "reviewer_id": reviewer_id, "now": w.now}
              for reviewer_id, row in pairs]
    w.conn.execute(sql.ASSIGN, params[0] if len(params) == 1 else params)
    for reviewer_id, row in pairs:
        w.event(row.id, "assigned", reviewer_id=reviewer_id, actor_id=actor_id)
    return [Assigned(reviewer_id, task_dict(row, status=ASSIGNED, assignee_id=reviewer_id,
                                            holder_id=reviewer_id, assigned_at=w.now,
                                            acked_at=None))
            for reviewer_id, row in pairs]


def finish(w: Work, row, outcome: str | None, note: str | None, reasons: list | None = None,
           checklist: dict | None = None) -> dict:
    """assigned -> completed, with the reviewer's verdict. The reviewer stays
    its assignee (the record of who did it).

    The verdict is checked first against the form of the task's queue as
    this transaction reads it (forms.check_verdict; Invalid
    `invalid_verdict`, nothing written). No lock on the queue: a form
    changed after the read and committed first orders this completion
    before the change, which is what it then was. A pass without reasons
    or checklist is valid whatever the form, so it reads nothing. Empty
    reasons or checklist are stored as not given (null).

    In the same transaction: a review is sampled for an audit
    (audits.sampled: one audit task, kind 'audit', review_of this task,
    which its reviewer never gets) or made final at once; an audit settles
    its original (`_settle`)."""
    reasons, checklist = reasons or None, checklist or None
    if forms.verdict_needs_form(outcome, reasons, checklist):
        forms.check_verdict(forms.form_of(w.conn, row.queue), outcome, note, reasons,
                            checklist)
    final_now = row.kind != KIND_AUDIT and not audits.sampled(w.conn, row, outcome)
    params = {"task_id": row.id, "now": w.now, "outcome": outcome, "note": note,
              "reasons": reasons, "checklist": checklist}
    changes = dict(status=sql.COMPLETED, holder_id=None, completed_at=w.now,
                   outcome=outcome, note=note, reasons=reasons, checklist=checklist)
    if final_now and w.conn.execute(sql.FINISH_FINAL, params).rowcount == 1:
        # Final at once, in the same statement (finalized_at was NULL: a
        # review is completed once).
        done = supervised_task_dict(row, **changes, final_outcome=outcome, final_note=note,
                                    finalized_at=w.now)
        w.announce(outbox.COMPLETED, {**done, "final_outcome": None, "final_note": None,
                                      "finalized_at": None})
        w.announce(outbox.FINALIZED, done)
    else:
        w.conn.execute(sql.FINISH, params)
        w.announce(outbox.COMPLETED, supervised_task_dict(row, **changes))
        if row.kind == KIND_AUDIT:
            _settle(w, row, outcome)
        elif not final_now:
            _create_audit(w, row)
    detail = {key: value for key, value in (("outcome", outcome), ("reasons", reasons),
                                            ("checklist", checklist)) if value is not None}
    w.event(row.id, "completed", reviewer_id=row.holder_id, detail=detail or None)
    return task_dict(row, **changes)

def _create_audit(w: Work, row) -> int:
    """The audit of a review just completed: the same item (name, payload,
    queue, priority), no deadline, at the back of its queue, never for the
    original's reviewer (excluded_reviewer_id, which the claim passes over).
    UNIQUE review_of: a second audit of one original fails in the database."""
    [audit_id] = _insert(w, [{"name": row.name, "payload": row.payload,
                              "priority": row.priority, "deadline": None, "external_id": None,
                              "queue": row.queue, "status": PENDING, "kind": KIND_AUDIT,
                              "review_of": row.id, "excluded_reviewer_id": row.holder_id,
                              "created_at": w.now, "updated_at": w.now}])
    w.event(audit_id, "created", detail={"audit_of": row.id})
    w.event(row.id, "audit_requested", reviewer_id=row.holder_id, detail={"audit": audit_id})
    w.audits_created.append(audit_id)
    return audit_id


def _settle(w: Work, audit_row, outcome: str | None) -> None:
    """An audit completed: its original is 'agreed' (and final, with its own
    verdict) when the outcomes match, 'disputed' otherwise (a supervisor
    resolves it). Only a still unaudited original changes."""
    original = w.conn.execute(sql.LOCK_TASK, {"task_id": audit_row.review_of}).first()
    if original is None or original.audit is not None or original.finalized_at is not None:
        return
    finding = audits.AGREED if outcome == original.outcome else audits.DISPUTED
    w.conn.execute(sa.update(sql.tasks).where(sql.tasks.c.id == original.id,
                                              sql.tasks.c.audit.is_(None))
                   .values(audit=finding, updated_at=w.now))
    w.event(original.id, finding, reviewer_id=original.assignee_id,
            detail={"audit": audit_row.id, "outcome": outcome})
    if finding == audits.AGREED:
        finalize(w, {**original._mapping, "audit": finding}, original.outcome, original.note)


def finalize(w: Work, task: dict, outcome: str | None, note: str | None,
             actor_id: int | None = None) -> bool:
    """The task's verdict is final: `final_outcome`, `final_note`,
    `finalized_at`, and task.finalized announced, only if this UPDATE is the
    one that sets finalized_at (WHERE finalized_at IS NULL): exactly once,
    whoever else tries. `task`: its columns as they are now. Whether it did."""
    done = w.conn.execute(
        sa.update(sql.tasks).where(sql.tasks.c.id == task["id"],
                                   sql.tasks.c.finalized_at.is_(None))
        .values(final_outcome=outcome, final_note=note, finalized_at=w.now,
                updated_at=w.now)).rowcount
    if done != 1:
        return False
    if actor_id is not None:
        w.event(task["id"], "resolved", actor_id=actor_id, detail={"outcome": outcome})
    w.announce(outbox.FINALIZED, supervised_task_dict(task, final_outcome=outcome,
                                                      final_note=note, finalized_at=w.now))
    return True


def resolve(w: Work, task_id: int, outcome: str, note: str | None, actor_id: int) -> dict:
    """A supervisor settles a disputed original: its final verdict. Conflict
    `not_disputed` (no dispute) or `already_resolved`."""
    row = w.conn.execute(sql.LOCK_TASK, {"task_id": task_id}).first()
    if row is None:
        raise NotFound(f"task {task_id} does not exist", code="task_not_found")
    if row.audit != audits.DISPUTED:
        raise Conflict(f"task {task_id} is not disputed", code="not_disputed")
    if row.finalized_at is not None or not finalize(w, row._mapping, outcome, note, actor_id):
        raise Conflict(f"task {task_id} was resolved already", code="already_resolved")
    return supervised_task_dict(row, final_outcome=outcome, final_note=note,
                                finalized_at=w.now)


def requeue(w: Work, row, kind: str, actor_id: int | None = None) -> dict:
    """assigned -> pending, keeping created_at, so its place in the queue.
    `kind` names why in the history: released, requeued (grace period over),
    unacknowledged, signed_out."""
    w.conn.execute(sql.REQUEUE, {"task_id": row.id, "now": w.now})
    w.event(row.id, kind, reviewer_id=row.holder_id, actor_id=actor_id)
    return task_dict(row, status=PENDING, holder_id=None, assignee_id=None, assigned_at=None,
                     acked_at=None)


def cancel(w: Work, row, actor_id: int | None) -> dict:
    """pending|assigned -> cancelled (final)."""
    return _end(w, row, sql.CANCELLED, "cancelled", actor_id, outbox.CANCELLED)


def expire(w: Work, row) -> dict:
    """pending|assigned -> expired (final): its deadline passed."""
    return _end(w, row, sql.EXPIRED, "expired", None, outbox.EXPIRED)


def _end(w: Work, row, status: str, kind: str, actor_id, announced: str) -> dict:
    w.conn.execute(sql.END, {"task_id": row.id, "status": status, "now": w.now})
    w.event(row.id, kind, reviewer_id=row.holder_id, actor_id=actor_id)
    w.announce(announced, supervised_task_dict(row, status=status, holder_id=None))
    if row.kind == KIND_AUDIT:
        # No second opinion after all: the original's own verdict stands.
        original = w.conn.execute(sql.LOCK_TASK, {"task_id": row.review_of}).first()
        if original is not None and original.audit is None:
            finalize(w, original._mapping, original.outcome, original.note)
    return supervised_task_dict(row, status=status, holder_id=None)


def edit(w: Work, row, changes: dict, actor_id: int | None) -> tuple[dict, set]:
    """A live task's name, payload, priority or deadline. Returns the task and
    the names of the fields that changed (an edit that changes nothing
    records nothing)."""
    changed = {k: v for k, v in changes.items() if k in EDITABLE and row._mapping[k] != v}
    if changed.get("expected_outcome") is not None and row.kind == KIND_AUDIT:
        # Its answer is the original's verdict, checked by agreement; as gold it
        # would also settle the original and count twice for its reviewer.
        raise Invalid(f"task {row.id} is an audit; only review tasks can be gold tasks",
                      code="audit_not_gold")
    if not changed:
        return supervised_task_dict(row), set()
    w.conn.execute(sa.update(sql.tasks).where(sql.tasks.c.id == row.id)
                   .values(**changed, updated_at=w.now))
    w.event(row.id, "updated", reviewer_id=row.holder_id, actor_id=actor_id,
            detail={"fields": sorted(changed)})
    return supervised_task_dict(row, **changed), set(changed)


# --- the reviewer's side of an edge ---------------------------------------------

def free(w: Work, reviewer_id: int | None) -> None:
    """The reviewer has no task from now: it joins the end of the idle line."""
    if reviewer_id is not None:
        w.conn.execute(sql.IDLE_SINCE, {"reviewer_id": reviewer_id, "now": w.now})


def pause(w: Work, reviewer_id: int) -> None:
    """The reviewer gets no new task until it resumes (it left an offer unanswered)."""
    w.conn.execute(sql.PAUSE, {"reviewer_id": reviewer_id, "now": w.now})
