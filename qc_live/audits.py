"""Second reviews and gold tasks: who gets audited, how often, and how each
reviewer measures up (docs/api.md "Second reviews and gold tasks").

The edges themselves (an audit created with its original's completion, an
original settled by its audit's, a dispute resolved, a verdict made final)
are lifecycle.py's; this module holds the rules they ask about and the
figures supervisors read.

Adaptive sampling. A reviewer's quality is a smoothed share of checks
passed:

    quality = (agreed + gold_correct + PRIOR) / (audited + gold_done + PRIOR)

where `audited` counts their completed tasks whose audit is in (agreed or
disputed) and `gold_done` their completed gold tasks; PRIOR pseudo-checks,
all passed, keep a newcomer's first result from swinging it. The chance
that a completion of theirs in a queue with `audit_rate` r > 0 is audited:

    p = r + (1 - r) * (1 - quality)

never below the queue's rate (the floor), 1 for someone who fails every
check in the long run. A queue at rate 0 is never audited. Gold tasks and
audits are never audited themselves (a gold task's answer is known; an
audit is the second opinion), nor are completions without an outcome.
"""
import random
from collections import defaultdict
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.orm import aliased

from . import sql
from .clock import iso, utcnow
from .models import KIND_AUDIT, KIND_REVIEW, Role, Task, TaskStatus, User
from .schemas.fields import OUTCOMES

PRIOR = 2
AGREED, DISPUTED = "agreed", "disputed"
FINDINGS = (AGREED, DISPUTED)
TREND_DAYS = 7

_t = sql.tasks
_COMPLETED = TaskStatus.COMPLETED.value

# A reviewer's audited work, by finding. :reviewer_id (ix_tasks_assignee_audit)
AUDITED = (sa.select(_t.c.audit, sa.func.count())
           .where(_t.c.assignee_id == sa.bindparam("reviewer_id"), _t.c.audit.is_not(None))
           .group_by(_t.c.audit))
# A reviewer's completed gold tasks: (done, correct). :reviewer_id (ix_tasks_assignee_gold)
GOLD = (sa.select(sa.func.count(),
                  sa.func.sum(sa.case((_t.c.outcome == _t.c.expected_outcome, 1), else_=0)))
        .where(_t.c.assignee_id == sa.bindparam("reviewer_id"),
               _t.c.expected_outcome.is_not(None), _t.c.outcome.is_not(None)))
AUDIT_RATE = sa.select(sql.queues.c.audit_rate).where(sql.queues.c.name == sa.bindparam("queue"))


def probability(floor: float, agreed: int, audited: int, gold_correct: int,
                gold_done: int) -> float:
    """The rule above: a reviewer's audit probability in a queue at `floor`."""
    if floor <= 0:
        return 0.0
    quality = (agreed + gold_correct + PRIOR) / (audited + gold_done + PRIOR)
    return min(1.0, floor + (1.0 - floor) * (1.0 - quality))


def checks_of(conn, reviewer_id: int) -> dict:
    """The reviewer's checks so far: agreed, disputed, audited, gold_done, gold_correct."""
    found = dict(conn.execute(AUDITED, {"reviewer_id": reviewer_id}).all())
    done, correct = conn.execute(GOLD, {"reviewer_id": reviewer_id}).one()
    agreed, disputed = found.get(AGREED, 0), found.get(DISPUTED, 0)
    return {"agreed": agreed, "disputed": disputed, "audited": agreed + disputed,
            "gold_done": done or 0, "gold_correct": int(correct or 0)}


def audit_probability(conn, reviewer_id: int, floor: float) -> float:
    if floor <= 0:
        return 0.0
    c = checks_of(conn, reviewer_id)
    return probability(floor, c["agreed"], c["audited"], c["gold_correct"], c["gold_done"])


def sampled(conn, row, outcome: str | None, draw=random.random) -> bool:
    """Whether this completion of a review task (its row, before the
    completion) gets an audit: the rule above, drawn once."""
    if row.kind != KIND_REVIEW or row.expected_outcome is not None or outcome is None:
        return False
    floor = conn.execute(AUDIT_RATE, {"queue": row.queue}).scalar() or 0.0
    if floor <= 0:
        return False
    return floor >= 1 or draw() < audit_probability(conn, row.holder_id, floor)


# --- the figures (GET /stats/reviewers, the board) ------------------------------------

# Left alone, both databases read every reviewer's audited or gold tasks
# through the assignee-first indexes, for their GROUP BY assignee_id: every
# task (a skip-scan on SQLite, the whole index on MariaDB). The indexes of
# 0007_quality_indexes cover those reads and hold only the audited or gold
# tasks: MariaDB is told (FORCE INDEX), SQLite grouping by assignee_id + 0,
# which no index orders.
_BY_ASSIGNEE = (Task.assignee_id + 0).label("assignee_id")


def _by_index(statement, name: str):
    """`statement`, reading Task by index `name` on MySQL/MariaDB."""
    hint = f"FORCE INDEX ({name})"
    return statement.with_hint(Task, hint, "mysql").with_hint(Task, hint, "mariadb")


# Every reviewer's audited work: (reviewer, finding, not final yet, n).
AUDITED_BY_REVIEWER = _by_index(
    sa.select(_BY_ASSIGNEE, Task.audit, Task.finalized_at.is_(None), sa.func.count())
    .where(Task.audit.in_(FINDINGS))
    .group_by(_BY_ASSIGNEE, Task.audit, Task.finalized_at.is_(None)),
    "ix_tasks_audit_assignee")
# Every reviewer's completed gold tasks: (reviewer, done, correct).
GOLD_BY_REVIEWER = _by_index(
    sa.select(_BY_ASSIGNEE, sa.func.count(),
              sa.func.sum(sa.case((Task.outcome == Task.expected_outcome, 1), else_=0)))
    .where(Task.expected_outcome.in_(OUTCOMES), Task.outcome.is_not(None))
    .group_by(_BY_ASSIGNEE),
    "ix_tasks_gold_assignee")


def reviewer_figures(session, now=None, trend: bool = True) -> list[dict]:
    """Per active reviewer: completed, agreement_rate, gold_accuracy,
    audits_done, disputes_open, audit_probability (at the floor of the
    highest audit_rate among the queues it has skills for; 0 if none is
    audited) and `trend`: the last TREND_DAYS UTC days, oldest first, each
    {"day", "audits", "agreed", "agreement_rate", "gold_done", "gold_correct",
    "gold_accuracy"} by when the check happened (the audit's or the gold
    task's completion). `trend=False` (the board): without `trend`, and
    `completed` left at 0 (the board counts completions itself)."""
    now = now or utcnow()
    first_day = (now - timedelta(days=TREND_DAYS - 1)).replace(hour=0, minute=0, second=0,
                                                               microsecond=0)
    reviewers = session.execute(
        sa.select(User.id, User.username).where(User.role == Role.REVIEWER.value,
                                                User.active.is_(True))
        .order_by(User.username)).all()
    completed = {} if not trend else dict(session.execute(  # the board has its own count
        sa.select(Task.assignee_id, sa.func.count()).where(Task.status == _COMPLETED)
        .group_by(Task.assignee_id)).all())
    audits = defaultdict(lambda: defaultdict(int))
    for rid, audit, open_, n in session.execute(AUDITED_BY_REVIEWER):
        audits[rid][audit] += n
        if audit == DISPUTED and open_:
            audits[rid]["open"] += n
    gold = {rid: (n, int(c or 0))
            for rid, n, c in session.execute(GOLD_BY_REVIEWER)}
    floors = defaultdict(float)
    for rid, rate in session.execute(
            sa.select(sql.skills.c.user_id, sa.func.max(sql.queues.c.audit_rate))
            .join(sql.queues, sql.queues.c.name == sql.skills.c.queue)
            .group_by(sql.skills.c.user_id)):
        floors[rid] = float(rate or 0)
    days_of = _trend(session, first_day) if trend else {}
    session.rollback()
    days = [(first_day + timedelta(days=i)).date().isoformat() for i in range(TREND_DAYS)]
    rows = []
    for rid, name in reviewers:
        a, (gold_done, gold_correct) = audits.get(rid, {}), gold.get(rid, (0, 0))
        agreed, disputed = a.get(AGREED, 0), a.get(DISPUTED, 0)
        row = {
            "id": rid, "username": name, "completed": completed.get(rid, 0),
            "audits_done": agreed + disputed, "agreed": agreed, "disputed": disputed,
            "disputes_open": a.get("open", 0),
            "agreement_rate": _rate(agreed, agreed + disputed),
            "gold_done": gold_done, "gold_correct": gold_correct,
            "gold_accuracy": _rate(gold_correct, gold_done),
            "audit_probability": round(probability(floors[rid], agreed, agreed + disputed,
                                                   gold_correct, gold_done), 4),
        }
        if trend:
            row["trend"] = [_day(d, days_of[rid][d]) if rid in days_of else _day(d, {})
                            for d in days]
        rows.append(row)
    return rows


OPEN_DISPUTES_SHOWN = 20


def open_disputes(session) -> dict:
    """The board's disputes: how many are open, and the oldest OPEN_DISPUTES_SHOWN
    (ix_tasks_audit_created)."""
    where = (Task.audit == DISPUTED, Task.finalized_at.is_(None))
    count = session.scalar(sa.select(sa.func.count()).select_from(Task).where(*where))
    rows = session.execute(
        sa.select(Task.id, Task.name, Task.queue, Task.assignee_id, Task.outcome,
                  Task.completed_at).where(*where)
        .order_by(Task.created_at, Task.id).limit(OPEN_DISPUTES_SHOWN)).all()
    session.rollback()
    return {"open": count, "oldest": [
        {"id": r.id, "name": r.name, "queue": r.queue, "assignee_id": r.assignee_id,
         "outcome": r.outcome, "completed_at": iso(r.completed_at)} for r in rows]}


def _trend(session, first_day) -> dict:
    """{reviewer: {day: counts}} since `first_day`: audits of their work by
    the audit's completion, gold tasks by their own."""
    days_of = defaultdict(lambda: defaultdict(lambda: defaultdict(int)))
    original = aliased(Task)
    for rid, audit, at in session.execute(
            sa.select(original.assignee_id, original.audit, Task.completed_at)
            .join(original, original.id == Task.review_of)
            .where(Task.kind == KIND_AUDIT, Task.status == _COMPLETED,
                   Task.completed_at >= first_day, original.audit.is_not(None))):
        day = days_of[rid][at.date().isoformat()]
        day["audits"] += 1
        day["agreed"] += audit == AGREED
    for rid, correct, at in session.execute(
            sa.select(Task.assignee_id, Task.outcome == Task.expected_outcome, Task.completed_at)
            .where(Task.status == _COMPLETED, Task.expected_outcome.is_not(None),
                   Task.completed_at >= first_day)):
        day = days_of[rid][at.date().isoformat()]
        day["gold_done"] += 1
        day["gold_correct"] += bool(correct)
    return days_of


def _rate(good: int, total: int):
    return round(good / total, 4) if total else None


def _day(day: str, counts) -> dict:
    audits, agreed = counts.get("audits", 0), counts.get("agreed", 0)
    done, correct = counts.get("gold_done", 0), counts.get("gold_correct", 0)
    return {"day": day, "audits": audits, "agreed": agreed,
            "agreement_rate": _rate(agreed, audits), "gold_done": done,
            "gold_correct": correct, "gold_accuracy": _rate(correct, done)}
