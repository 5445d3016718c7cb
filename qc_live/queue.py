"""Dispatch order: which pending task goes next, and which free reviewer gets it.

The queue's order: higher `priority` first; within a priority, a task due
within URGENT_WINDOW goes first, earliest deadline first; then FIFO
(`created_at`, then id). A task that goes back to the queue keeps its
`created_at`, so its place. Overdue tasks are never handed out (the sweep
expires them). Among free reviewers, the one idle longest (`idle_since`)
gets work first.

Reads here take no locks; the `lock_` functions lock what was read, skipping
rows another transaction holds (SKIP LOCKED), and re-check it. All are called
inside a write transaction (lifecycle.Work) except `free_reviewers`.
"""
from datetime import timedelta

import sqlalchemy as sa

from . import sql
from .lifecycle import Work
from .models import Role, User
from .presence import live_socket_exists

URGENT_WINDOW = timedelta(minutes=30)
# At most this many tasks handed out per transaction of a bulk dispatch: a
# 5,000-task import must not hold the event loop (or, on SQLite, every other
# writer) for the whole of it; 500 take ~0.15 s of CPU on the benchmark machine.
DISPATCH_BATCH = 500

_t = sql.tasks


def can_work(reviewer) -> bool:
    """A reviewer's row (a locked one, see lifecycle.lock_reviewer) that may
    be handed work: an active reviewer who is not paused."""
    return (reviewer is not None and reviewer.active and reviewer.available
            and reviewer.role == Role.REVIEWER.value)


def next_task(w: Work):
    """Lock the next pending task in dispatch order (skipping those other
    transactions hold); its row, or None. Two index range reads (one when a
    task is urgent), no sort. The urgent read comes first: locking the FIFO
    head before knowing it loses to an urgent task would hide it from
    concurrent claims for nothing."""
    urgent = w.conn.execute(sql.URGENT_HEAD, {"now": w.now,
                                              "soon": w.now + URGENT_WINDOW}).first()
    if urgent is not None:
        return urgent
    return w.conn.execute(sql.QUEUE_HEAD, {"now": w.now}).first()


def anything_pending(w: Work) -> bool:
    return w.conn.execute(sql.ANY_PENDING, {"now": w.now}).first() is not None


def head(w: Work, n: int) -> list[int]:
    """The ids of the first `n` pending tasks in the order `next_task` would
    take them one by one (no locks: `lock_pending` locks and re-checks).

    Two index reads of at most `n` rows each: the urgent ones and the FIFO
    head. Merged, their first `n` are the queue's first `n`: a task missing
    from the FIFO head has `n` tasks before it in FIFO order, and each of those
    also goes before it in dispatch order; likewise for the urgent ones.
    """
    now, soon = w.now, w.now + URGENT_WINDOW
    columns = (_t.c.id, _t.c.priority, _t.c.created_at, _t.c.deadline)
    urgent = w.conn.execute(
        sa.select(*columns).where(_t.c.status == sql.PENDING, _t.c.deadline > now,
                                  _t.c.deadline <= soon)
        .order_by(_t.c.priority.desc(), _t.c.deadline, _t.c.id).limit(n)).all()
    fifo = w.conn.execute(
        sa.select(*columns).where(_t.c.status == sql.PENDING, sql.not_overdue())
        .order_by(_t.c.priority.desc(), _t.c.created_at, _t.c.id).limit(n), {"now": now}).all()

    def order(row):
        if row.deadline is not None and now < row.deadline <= soon:
            return (-row.priority, 0, row.deadline, row.id)
        return (-row.priority, 1, row.created_at, row.id)
    rows = {row.id: row for row in (*urgent, *fifo)}.values()
    return [row.id for row in sorted(rows, key=order)[:n]]


def lock_pending(w: Work, task_ids: list[int]) -> list:
    """Lock those of the tasks still pending and not overdue (a concurrent
    claim's are skipped), in the given order; their rows."""
    found = {row.id: row for row in w.conn.execute(
        sa.select(_t).where(_t.c.id.in_(task_ids), _t.c.status == sql.PENDING,
                            sql.not_overdue())
        .with_for_update(skip_locked=True), {"now": w.now})}
    return [found[i] for i in task_ids if i in found]


def free_reviewers(session, lease_seconds: float, limit: int = 10) -> list[int]:
    """Online, available reviewers holding nothing, longest idle first (no locks)."""
    holds = sa.exists().where(_t.c.holder_id == User.id)
    return list(session.scalars(
        sa.select(User.id)
        .where(User.role == Role.REVIEWER.value, User.active.is_(True),
               User.available.is_(True), ~holds, live_socket_exists(User.id, lease_seconds))
        .order_by(User.idle_since, User.id).limit(limit)))


def lock_free(w: Work, candidates: list[int]) -> list[int]:
    """Lock those of `candidates` that can work (one another transaction is
    serving is left to it) and drop any that holds a task; in the order of
    `candidates`. Nobody gives a reviewer a task without locking it first, so
    what they hold cannot change until the commit."""
    locked = set(w.conn.execute(
        sa.select(User.id).where(User.id.in_(candidates), User.role == Role.REVIEWER.value,
                                 User.active.is_(True), User.available.is_(True))
        .with_for_update(skip_locked=True)).scalars())
    holding = set(w.conn.execute(sa.select(_t.c.holder_id).where(
        _t.c.holder_id.in_(locked))).scalars()) if locked else set()
    return [r for r in candidates if r in locked and r not in holding]
