"""Queues and skills: the queues' rules and figures, reviewers' skills, and
why a pending task is waiting.

Who may take which task is decided in the claim itself (queue.py: `reach`,
`next_task`, `match`); this module keeps the data it reads (queues, skills)
and answers the questions around it: a queue's figures for the board, which
level a task asks for now, whether a named reviewer qualifies (and why not),
why a task is not on anybody's screen. Plain functions over a session; the
writes go through database.run_write.
"""
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa

from . import sql
from .clock import utcnow
from .database import run_write
from .errors import Conflict, Invalid, NotFound
from .models import DEFAULT_QUEUE, LEVELS, Queue, Role, Skill, User
from .presence import live_socket_exists
from .queue import ALL, qualifies, reach

_t, _q, _s = sql.tasks, sql.queues, sql.skills


@dataclass(frozen=True)
class Rules:
    """A queue's routing rules."""
    name: str
    min_level: int
    relax_after_s: int | None


def rules(session, queue: str) -> Rules:
    row = session.execute(sql.QUEUE_RULES, {"queue": queue}).first()
    if row is None:
        raise NotFound(f"queue {queue!r} does not exist", code="queue_not_found")
    return Rules(row.name, row.min_level, row.relax_after_s)


def level_needed(queue: Rules, created_at, now) -> int:
    """The skill level a task of `queue` created at `created_at` asks for now."""
    if queue.relax_after_s is not None and \
            created_at < now - timedelta(seconds=queue.relax_after_s):
        return 1
    return queue.min_level


def relax_in(queue: Rules, created_at, now) -> float | None:
    """Seconds until a task of `queue` asks only for level 1 (None: never, or already)."""
    if queue.relax_after_s is None:
        return None
    left = (created_at + timedelta(seconds=queue.relax_after_s) - now).total_seconds()
    return round(left, 1) if left >= 0 else None


def skill_level(session, reviewer_id: int, queue: str) -> int | None:
    return session.scalar(sa.select(_s.c.level).where(_s.c.user_id == reviewer_id,
                                                      _s.c.queue == queue))


def qualification(session, reviewer_id: int, task_row, now=None) -> tuple[bool, str]:
    """Whether the reviewer qualifies for the task now, and why (for a person)."""
    now = now or utcnow()
    queue = rules(session, task_row.queue)
    level = skill_level(session, reviewer_id, queue.name)
    r = reach(level, queue.min_level, queue.relax_after_s, now)
    if qualifies(r, task_row.created_at):
        why = "" if r is ALL else f" (the task waited longer than {queue.relax_after_s} s)"
        return True, f"reviewer {reviewer_id} has level {level} for queue {queue.name!r}{why}"
    if level is None:
        return False, f"reviewer {reviewer_id} has no skill for queue {queue.name!r}"
    why = (f"reviewer {reviewer_id} has level {level} for queue {queue.name!r}, which asks "
           f"for {queue.min_level}")
    wait = relax_in(queue, task_row.created_at, now)
    if wait is not None:
        why += f" until the task has waited {queue.relax_after_s} s (in {wait:g} s)"
    return False, why


# --- queues ------------------------------------------------------------------------

FIELDS = ("name", "description", "min_level", "relax_after_s", "form", "audit_rate")


def queue_figures(session, config, name: str | None = None) -> list[dict]:
    """Queue objects (docs/api.md): the rules, plus pending and assigned
    counts, the oldest pending task's age and how many reviewers are online
    with at least the queue's min_level for it (`online_qualified`). Sorted
    by name. Two grouped reads and one per-queue count, whatever the size."""
    now = utcnow()
    query = sa.select(_q).order_by(_q.c.name)
    if name is not None:
        query = query.where(_q.c.name == name)
    queues = session.execute(query).all()
    counts = {}
    for queue, status, count, oldest in session.execute(
            sa.select(_t.c.queue, _t.c.status, sa.func.count(), sa.func.min(_t.c.created_at))
            .where(_t.c.status.in_(sql.LIVE)).group_by(_t.c.queue, _t.c.status)):
        counts[(queue, status)] = (count, oldest)
    online = dict(session.execute(
        sa.select(_s.c.queue, sa.func.count())
        .join(_q, _q.c.name == _s.c.queue).join(User, User.id == _s.c.user_id)
        .where(_s.c.level >= _q.c.min_level, User.role == Role.REVIEWER.value,
               User.active.is_(True), live_socket_exists(User.id, config.lease_seconds))
        .group_by(_s.c.queue)).all())
    session.rollback()
    result = []
    for q in queues:
        pending, oldest = counts.get((q.name, sql.PENDING), (0, None))
        result.append({"name": q.name, "description": q.description, "min_level": q.min_level,
                       "relax_after_s": q.relax_after_s, "audit_rate": q.audit_rate,
                       "pending": pending,
                       "assigned": counts.get((q.name, sql.ASSIGNED), (0, None))[0],
                       "oldest_pending_age_s": round((now - oldest).total_seconds(), 1)
                       if oldest else None,
                       "online_qualified": online.get(q.name, 0), "form": q.form})
    return result


def queue_names(session) -> set[str]:
    names = set(session.scalars(sa.select(_q.c.name)))
    session.rollback()
    return names


def create_queue(session, fields: dict) -> None:
    """A new queue; Conflict `conflict` if the name exists."""
    fields = {k: v for k, v in fields.items() if k != "form" or v is not None}

    def work(session):
        if session.get(Queue, fields["name"]) is not None:
            raise Conflict(f"queue {fields['name']!r} exists", code="conflict")
        session.add(Queue(**{"description": "", "min_level": 1, "relax_after_s": None,
                             "audit_rate": 0.0, **fields}))
        session.flush()
    try:
        run_write(session, work)
    except sa.exc.IntegrityError:
        raise Conflict(f"queue {fields['name']!r} exists", code="conflict") from None


def update_queue(session, name: str, changes: dict) -> None:
    """Change a queue's description, min_level, relax_after_s or form
    (NotFound `queue_not_found`). Tasks keep their queue; who qualifies
    changes at the next claim; a new form counts from the next offer and
    the next completion (forms.py)."""
    if "form" in changes and changes["form"] is None:
        changes = {**changes, "form": sa.null()}  # SQL NULL, not JSON null

    def work(session):
        found = session.execute(sa.update(Queue).where(Queue.name == name)
                                .values(**changes)).rowcount
        if not found and session.get(Queue, name) is None:
            raise NotFound(f"queue {name!r} does not exist", code="queue_not_found")
    run_write(session, work)


# --- skills --------------------------------------------------------------------------

def check_skills(session, skills: dict) -> dict:
    """{queue: level} with known queues and levels 1..10; Invalid otherwise
    (`unknown_queue`, `bad_level`)."""
    known = queue_names(session)
    unknown = sorted(q for q in skills if q not in known)
    if unknown:
        # A few named: a map of 100,000 made-up queues must not come back whole.
        more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        raise Invalid(f"unknown queue(s) in 'skills': {', '.join(map(repr, unknown[:10]))}"
                      f"{more}", code="unknown_queue")
    for queue, level in skills.items():
        if isinstance(level, bool) or not isinstance(level, int) \
                or not LEVELS[0] <= level <= LEVELS[1]:
            raise Invalid(f"'skills': the level for {queue!r} must be an integer from "
                          f"{LEVELS[0]} to {LEVELS[1]}", code="bad_level")
    return skills


def skills_of(session, user_ids: list[int] | None = None) -> dict[int, dict]:
    """{user id: {queue: level}} (every user with a skill when `user_ids` is None)."""
    query = sa.select(_s.c.user_id, _s.c.queue, _s.c.level).order_by(_s.c.queue)
    if user_ids is not None:
        query = query.where(_s.c.user_id.in_(user_ids))
    found = {}
    for user_id, queue, level in session.execute(query):
        found.setdefault(user_id, {})[queue] = level
    return found


def set_skills(session, user_id: int, skills: dict) -> None:
    """Replace the user's skills (checked: `check_skills`). A held task
    stays; the new skills count from the reviewer's next claim. Two at once
    for one user take turns (its row locked first): on MariaDB the second's
    delete would otherwise pass over rows the first inserted, and its insert
    meet them as a duplicate key."""
    def work(session):
        session.execute(sa.select(User.id).where(User.id == user_id).with_for_update())
        session.execute(sa.delete(Skill).where(Skill.user_id == user_id))
        if skills:
            session.execute(sa.insert(Skill), [{"user_id": user_id, "queue": q, "level": lvl}
                                               for q, lvl in skills.items()])
    run_write(session, work)


DEFAULT_SKILLS = {DEFAULT_QUEUE: 1}


# --- why is it waiting? ------------------------------------------------------------

def waiting(session, config, task_row) -> dict | None:
    """Why a pending task is on nobody's screen, for a supervisor:
    {"reason": code, "message": for a person, ...}; None when not pending.

    Codes: `no_qualified_reviewer_online` (nobody online has the level it
    asks for now; `relax_in_s` says when level 1 will do, when it will),
    `qualified_paused` (those online have paused), `qualified_busy` (they
    all hold a task), `next_in_line` (a qualified reviewer is free: it goes
    out at the next claim or sweep; others may come first in the order)."""
    if task_row.status != sql.PENDING:
        return None
    now = utcnow()
    queue = rules(session, task_row.queue)
    need = level_needed(queue, task_row.created_at, now)
    holds = sa.exists().where(_t.c.holder_id == User.id)
    rows = session.execute(
        sa.select(User.available, holds)
        .join(Skill, Skill.user_id == User.id)
        .where(Skill.queue == queue.name, Skill.level >= need,
               User.role == Role.REVIEWER.value, User.active.is_(True),
               live_socket_exists(User.id, config.lease_seconds),
               # An audit never goes to the original's reviewer (queue.py).
               User.id != (task_row.excluded_reviewer_id or 0))).all()
    session.rollback()
    relax = relax_in(queue, task_row.created_at, now) if need > 1 else None
    extra = {"level_needed": need, "online_qualified": len(rows),
             "relax_in_s": relax}
    if not rows:
        text = f"no reviewer with level {need} or more for queue {queue.name!r} is online"
        if task_row.excluded_reviewer_id is not None:
            text += (f" but the original's reviewer ({task_row.excluded_reviewer_id}), "
                     "who never audits its own work")
        if relax is not None:
            text += f"; from level 1 in {relax:g} s (relax_after_s)"
        return {"reason": "no_qualified_reviewer_online", "message": text, **extra}
    working = [r for r in rows if r.available]
    if not working:
        return {"reason": "qualified_paused", "message": f"the {len(rows)} qualified "
                f"reviewer(s) online for queue {queue.name!r} are paused", **extra}
    if all(busy for _, busy in working):
        return {"reason": "qualified_busy", "message": f"the {len(working)} qualified "
                f"reviewer(s) online and available for queue {queue.name!r} all hold a "
                "task", **extra}
    return {"reason": "next_in_line", "message": "a qualified reviewer is free: the task "
            "goes out at its next claim or the next sweep, unless tasks before it in the "
            "order take that reviewer", **extra}
