"""Dispatch order: which pending task goes next, and which free reviewer gets it.

The queue's order: higher `priority` first; within a priority, a task due
within URGENT_WINDOW goes first, earliest deadline first; then FIFO
(`created_at`, then id). A task that goes back to the queue keeps its
`created_at`, so its place. Overdue tasks are never handed out (the sweep
expires them). Among free reviewers, the one idle longest (`idle_since`)
gets work first.

Routing (queues and skills): every task is in one queue, and a reviewer
qualifies for it when its skill level for that queue is at least the queue's
`min_level`, or at least 1 once the task has waited longer than the queue's
`relax_after_s` (created_at before now - relax_after_s). So for one queue
there are two kinds of qualified reviewer: those who may take any of its
tasks (`Reach.ALL`) and those who may take the tasks created before a cutoff.
A reviewer's claim reads its skills (one small query), then the head of each
queue it qualifies for (one indexed read per queue, ix_tasks_queue_head and
ix_tasks_queue_due, sent as one UNION per QUEUES_PER_READ queues), and locks
the best of those heads (`_lock_head`: SKIP LOCKED, re-checked by the locking
read itself); a head another claim holds gives way to the next in that
queue, or to the next queue. All of it is SQL: nothing is filtered in Python after the fact.

Reads here take no locks; the `lock_` functions lock what was read, skipping
rows another transaction holds (SKIP LOCKED), and re-check it. All are called
inside a write transaction (lifecycle.Work) except `free_reviewers`.
"""
import functools
from datetime import timedelta

import sqlalchemy as sa

from . import sql
from .clock import utcnow
from .lifecycle import Work
from .models import Role, Skill, User
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


ALL = None  # a reach: every task of the queue


def reach(level: int | None, min_level: int, relax_after_s: int | None, now):
    """Which tasks of a queue a reviewer with this skill `level` (None: no
    skill) qualifies for now: ALL, the tasks created before a cutoff (a
    datetime), or False (none)."""
    if level is None or level < 1:
        return False
    if level >= min_level:
        return ALL
    if relax_after_s is None:
        return False
    return now - timedelta(seconds=relax_after_s)


def qualifies(reach_, created_at) -> bool:
    """A task created at `created_at` is within `reach_` (see `reach`)."""
    return reach_ is ALL or (reach_ is not False and created_at < reach_)


def reaches_of(w: Work, reviewer_id: int) -> dict:
    """{queue: reach} of the queues the reviewer qualifies for now (its
    skills, read in the claim's transaction: a changed skill counts from the
    next claim)."""
    found = {}
    for row in w.conn.execute(sql.SKILLS_OF, {"reviewer_id": reviewer_id}):
        r = reach(row.level, row.min_level, row.relax_after_s, w.now)
        if r is not False:
            found[row.queue] = r
    return found


def dispatch_key(row, now):
    """Sort key of a pending task in dispatch order (urgent within its priority first)."""
    if row.deadline is not None and now < row.deadline <= now + URGENT_WINDOW:
        return (-row.priority, 0, row.deadline, row.id)
    return (-row.priority, 1, row.created_at, row.id)


def _in_queue(table, i: int, cutoff: bool, mine: bool = False):
    """Conditions: pending, not overdue, in queue :q<i> (and created before
    :c<i>; with `mine`, not an audit of reviewer :me's own work)."""
    conditions = [table.c.queue == sa.bindparam(f"q{i}"), table.c.status == sql.PENDING,
                  sql.not_overdue(table)]
    if mine:
        conditions.append(sql.not_excluded(table))
    if cutoff:
        conditions.append(table.c.created_at < sa.bindparam(f"c{i}"))
    return conditions


def _by_index(statement, table):
    """Tell MariaDB/MySQL to read `table` by ix_tasks_queue_head, one queue's
    head. Left alone, with many queues it reads a queue's FIFO head by walking
    ix_tasks_queue (every queue) in order until a row of that queue turns up
    (~1 row in the number of queues, and with FOR UPDATE every claim of the
    floor walks and locks the same global head), and with a created_at cutoff
    a range of ix_tasks_queue or ix_tasks_due over every queue
    (bench/claim_plan.py, bench/routing.py). The urgent head's outer read is
    left to the optimizer: ix_tasks_deadline (the few tasks due soon, of every
    queue) beats ix_tasks_queue_due, whose priority bound comes from a
    subquery and so is not a range key (it would read the whole top priority
    of the queue)."""
    hint = "FORCE INDEX (ix_tasks_queue_head)"
    return statement.with_hint(table, hint, "mysql").with_hint(table, hint, "mariadb")


def _fifo(i: int, cutoff: bool, n: int = 1, lock: bool = False, mine: bool = False):
    """A queue's head, FIFO within the highest priority (ix_tasks_queue_head:
    an index walk from the top that stops at the first row, or, with a
    cutoff, at the first old enough)."""
    t = sql.tasks
    statement = sa.select(t).where(*_in_queue(t, i, cutoff, mine)) \
        .order_by(t.c.priority.desc(), t.c.created_at, t.c.id).limit(n)
    statement = _by_index(statement, t)
    return statement.with_for_update(skip_locked=True) if lock else statement


def _urgent(i: int, cutoff: bool, n: int = 1, lock: bool = False, mine: bool = False):
    """A queue's urgent head: due within the window, in the queue's top
    priority (one row of ix_tasks_queue_head), earliest deadline first
    (ix_tasks_queue_due). With n > 1, the first n urgent ones of any priority."""
    t, top = sql.tasks, sql.tasks.alias(f"top{i}")
    due = [t.c.deadline > sa.bindparam("now"), t.c.deadline <= sa.bindparam("soon")]
    if n == 1:
        top_priority = _by_index(sa.select(top.c.priority)
                                 .where(*_in_queue(top, i, cutoff, mine))
                                 .order_by(top.c.priority.desc()).limit(1), top) \
            .scalar_subquery()
        statement = sa.select(t).where(*_in_queue(t, i, cutoff, mine), *due,
                                       t.c.priority == top_priority) \
            .order_by(t.c.deadline, t.c.id).limit(1)
    else:
        statement = sa.select(t).where(*_in_queue(t, i, cutoff, mine), *due) \
            .order_by(t.c.priority.desc(), t.c.deadline, t.c.id).limit(n)
    return statement.with_for_update(skip_locked=True) if lock else statement


@functools.lru_cache(maxsize=256)
def _heads(shape: tuple, n: int = 1, mine: bool = False):
    """One statement: the FIFO and urgent heads (`n` of each) of every queue
    in `shape` (one flag per queue: whether its reach has a cutoff), as a
    UNION ALL of small indexed reads (`mine`: for reviewer :me, past audits
    of its own work). Cached per shape, so compiled once."""
    t = sql.tasks
    columns = (t.c.id, t.c.queue, t.c.priority, t.c.created_at, t.c.deadline,
               t.c.excluded_reviewer_id)
    parts = []
    for i, cutoff in enumerate(shape):
        for read in (_fifo(i, cutoff, n, mine=mine), _urgent(i, cutoff, n, mine=mine)):
            sub = read.with_only_columns(*columns).subquery()
            parts.append(sa.select(*sub.c))
    return sa.union_all(*parts) if len(parts) > 1 else parts[0]


@functools.lru_cache(maxsize=64)
def _locking_heads(cutoff: bool):
    return _urgent(0, cutoff, lock=True, mine=True), _fifo(0, cutoff, lock=True, mine=True)


# Queues read per UNION: a bounded statement, however many queues a reviewer
# has skills for (SQLite refuses a compound SELECT of more than 500 terms).
QUEUES_PER_READ = 50


def _parts(reaches: list) -> list[list]:
    return [reaches[i:i + QUEUES_PER_READ] for i in range(0, len(reaches), QUEUES_PER_READ)]


def _params(w: Work, reaches: list, me: int | None = None) -> dict:
    params = {"now": w.now, "soon": w.now + URGENT_WINDOW, "me": me}
    for i, (queue, r) in enumerate(reaches):
        params[f"q{i}"] = queue
        if r is not ALL:
            params[f"c{i}"] = r
    return params


def _lock_head(w: Work, queue: str, r, me: int):
    """Lock the head of one queue within reach `r` (urgent first, as the
    order says) for reviewer `me`, skipping what concurrent claims hold and
    audits of `me`'s own work; its row, or None. The locking read is the
    re-check: it sees the row as committed."""
    params = _params(w, [(queue, r)], me)
    for statement in _locking_heads(r is not ALL):
        row = w.conn.execute(statement, params).first()
        if row is not None:
            return row
    return None


def next_task(w: Work, reviewer_id: int):
    """Lock the best pending task the reviewer qualifies for (skipping those
    other transactions hold); its row, or None. One read of its skills; with
    one qualified queue, its head is locked straight away (one or two index
    range reads, as without queues); with several, one UNION (per
    QUEUES_PER_READ queues) reads every queue's heads and the best is locked by its id, re-checked; if a
    concurrent claim has it, each queue's head is locked in turn, best first."""
    reaches = sorted(reaches_of(w, reviewer_id).items())
    if len(reaches) > 1:
        rows = sorted((row for part in _parts(reaches)
                       for row in w.conn.execute(
                           _heads(tuple(r is not ALL for _, r in part), mine=True),
                           _params(w, part, reviewer_id))),
                      key=lambda row: dispatch_key(row, w.now))
        if rows:
            row = w.conn.execute(sql.LOCK_IF_PENDING, {"task_id": rows[0].id,
                                                       "queue": rows[0].queue,
                                                       "now": w.now, "me": reviewer_id}).first()
            if row is not None:
                return row
        best = {}
        for row in rows:
            best.setdefault(row.queue, len(best))
        reaches = sorted((item for item in reaches if item[0] in best),
                         key=lambda item: best[item[0]])
    for queue, r in reaches:
        row = _lock_head(w, queue, r, reviewer_id)
        if row is not None:
            return row
    return None


def anything_pending(w: Work) -> bool:
    return w.conn.execute(sql.ANY_PENDING, {"now": w.now}).first() is not None


def match(w: Work, free: list[int], skip=frozenset(), blocked=None) \
        -> list[tuple[int, int, str]]:
    """Pair free reviewers (locked, longest idle first) with pending tasks:
    each task in dispatch order goes to the longest-idle reviewer left who
    qualifies for it. Returns (reviewer id, task id, the task's queue)
    triples, unlocked tasks (`lock_pending` locks and re-checks them).

    One read of the reviewers' skills, then one UNION of the first
    len(free) tasks of each queue and reach some reviewer has (FIFO and
    urgent): a task missing from those has len(free) tasks before it that
    the same reviewers qualify for, so it could not be matched anyway.
    `skip`: tasks concurrent claims hold (looked past). An audit never goes
    to the reviewer of its original; reviewers who were passed over for that
    alone are added to `blocked` (a set), for a claim of their own
    (next_task reads past those audits in SQL)."""
    n = len(free) + len(skip)
    reaches = {}  # reviewer -> {queue: reach}
    for row in w.conn.execute(
            sa.select(sql.skills.c.user_id, sql.skills.c.queue, sql.skills.c.level,
                      sql.queues.c.min_level, sql.queues.c.relax_after_s)
            .join(sql.queues, sql.queues.c.name == sql.skills.c.queue)
            .where(sql.skills.c.user_id.in_(free))):
        r = reach(row.level, row.min_level, row.relax_after_s, w.now)
        if r is not False:
            reaches.setdefault(row.user_id, {})[row.queue] = r
    wanted = sorted({item for mine in reaches.values() for item in mine.items()},
                    key=lambda item: (item[0], item[1] is not ALL))
    if not wanted:
        return []
    rows = {}
    for part in _parts(wanted):
        for row in w.conn.execute(_heads(tuple(r is not ALL for _, r in part), n),
                                  _params(w, part)):
            if row.id not in skip:
                rows[row.id] = row
    pairs, left = [], list(free)
    for row in sorted(rows.values(), key=lambda row: dispatch_key(row, w.now)):
        for reviewer_id in left:
            if qualifies(reaches.get(reviewer_id, {}).get(row.queue, False), row.created_at):
                if row.excluded_reviewer_id == reviewer_id:
                    if blocked is not None:
                        blocked.add(reviewer_id)
                    continue
                pairs.append((reviewer_id, row.id, row.queue))
                left.remove(reviewer_id)
                break
        if not left:
            break
    return pairs


def lock_pending(w: Work, wanted: dict[int, str]) -> list:
    """Lock those of the tasks ({id: queue}, as `match` read them) still
    pending, not overdue and in that queue (a concurrent claim's are skipped;
    one a supervisor moved to another queue since the read is left: the
    reviewer it was paired with may have no skill there), in the given
    order; their rows."""
    found = {row.id: row for row in w.conn.execute(
        sa.select(_t).where(_t.c.id.in_(list(wanted)), _t.c.status == sql.PENDING,
                            sql.not_overdue())
        .with_for_update(skip_locked=True), {"now": w.now})}
    return [found[i] for i, queue in wanted.items() if i in found and found[i].queue == queue]


def free_reviewers(session, lease_seconds: float, limit: int = 10, queue: str | None = None,
                   level: int = 1, exclude=(), now=None) -> list[int]:
    """Online, available reviewers holding nothing, longest idle first (no
    locks), who are qualified now: with `queue`, those with at least `level`
    for it (the level a task of that queue asks for now: routing.level_needed);
    without, those qualified for some pending task now. `exclude`: ids to
    leave out (a dispatch's reviewers no task could go to)."""
    now = now or utcnow()
    holds = sa.exists().where(_t.c.holder_id == User.id)
    if queue is not None:
        skilled = sa.exists().where(Skill.user_id == User.id, Skill.queue == queue,
                                    Skill.level >= level)
    else:
        skilled = _qualified_for_pending(session, now)
    query = sa.select(User.id).where(
        User.role == Role.REVIEWER.value, User.active.is_(True), User.available.is_(True),
        ~holds, skilled, live_socket_exists(User.id, lease_seconds))
    if exclude:
        query = query.where(User.id.not_in(list(exclude)))
    return list(session.scalars(query.order_by(User.idle_since, User.id).limit(limit),
                                {"now": now}))


def _qualified_for_pending(session, now):
    """SQL over `User`: a skill for a queue with a pending task it qualifies
    for now: the skill's level is the queue's min_level or more, or the task
    was created before that queue's relax cutoff. The cutoffs: one CASE over
    the relax_after_s values in use (read first), a single term however many
    queues relax (an OR per queue: SQLite refuses 1,000)."""
    waiting, q = sql.tasks.alias("waiting"), sql.queues
    relaxing = session.scalars(sa.select(q.c.relax_after_s).distinct()
                               .where(q.c.relax_after_s.is_not(None))).all()
    eligible = Skill.level >= q.c.min_level
    if relaxing:
        cutoff = sa.case({relax: sa.literal(now - timedelta(seconds=relax), sa.DateTime)
                          for relax in relaxing}, value=q.c.relax_after_s)
        eligible = sa.or_(eligible, waiting.c.created_at < cutoff)
    return sa.exists().where(
        Skill.user_id == User.id, q.c.name == Skill.queue,
        sa.exists().where(waiting.c.queue == Skill.queue, waiting.c.status == sql.PENDING,
                          sql.not_overdue(waiting), eligible))


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
