"""Throughput and quality figures for supervisors.

Per reviewer: completed today (UTC day) and in total, passes and fails, and
the median handling time (assigned -> completed) of today's tasks. All read
with indexed queries over `tasks`; nothing is kept in memory. The fail
reasons (review forms) are counted over the same window as passes and
fails, every completed task: per queue and per reviewer (`fail_reasons`).
"""
import math
import statistics
from collections import Counter, defaultdict
from datetime import timedelta

import sqlalchemy as sa

from .clock import utcnow
from .models import Role, Task, TaskStatus, User

COMPLETED = TaskStatus.COMPLETED.value
# MariaDB may prefer a scan on a small table; the range is what keeps this cheap at any size.
INDEX_HINT = "FORCE INDEX (ix_tasks_completed)"


def _median(values):
    return round(statistics.median(values), 2) if values else None


def fail_reasons(session, reviewer_id: int | None = None) -> tuple[dict, dict]:
    """({queue: {code: n}}, {reviewer id: {code: n}}): how often each fail
    reason was given, over every completed fail (of one reviewer's, if
    given), codes sorted. A fail with two reasons counts once for each."""
    query = sa.select(Task.queue, Task.assignee_id, Task.reasons).where(
        Task.status == COMPLETED, Task.outcome == "fail", Task.reasons.is_not(None))
    if reviewer_id is not None:
        query = query.where(Task.assignee_id == reviewer_id)
    by_queue, by_reviewer = defaultdict(Counter), defaultdict(Counter)
    for queue, rid, reasons in session.execute(query):
        for code in reasons or ():  # JSON null reads as None
            by_queue[queue][code] += 1
            by_reviewer[rid][code] += 1

    def plain(counts):
        return {key: dict(sorted(counter.items())) for key, counter in counts.items()}
    return plain(by_queue), plain(by_reviewer)


def reviewer_stats(session, reviewer_id: int | None = None,
                   with_reasons: bool = False) -> list[dict]:
    """Stats of every active reviewer (or of one), ordered by username.
    `with_reasons`: each with its `fail_reasons` ({code: n}; GET /stats and
    /users/<id>/stats: the board's snapshot, ten times a second, goes without)."""
    today = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    users = sa.select(User.id, User.username).where(User.role == Role.REVIEWER.value)
    if reviewer_id is not None:
        users = users.where(User.id == reviewer_id)
    else:
        users = users.where(User.active.is_(True))
    totals = sa.select(
        Task.assignee_id, sa.func.count(Task.id),
        sa.func.sum(sa.case((Task.outcome == "pass", 1), else_=0)),
        sa.func.sum(sa.case((Task.outcome == "fail", 1), else_=0)),
    ).where(Task.status == COMPLETED).group_by(Task.assignee_id)
    todays = sa.select(Task.assignee_id, Task.assigned_at, Task.completed_at).where(
        Task.status == COMPLETED, Task.completed_at >= today)
    if reviewer_id is not None:
        totals = totals.where(Task.assignee_id == reviewer_id)
        todays = todays.where(Task.assignee_id == reviewer_id)
    by_total = {rid: (n, p or 0, f or 0) for rid, n, p, f in session.execute(totals)}
    handled = defaultdict(list)
    for rid, start, end in session.execute(todays):
        handled[rid].append((end - start).total_seconds() if start and end else None)
    reasons = fail_reasons(session, reviewer_id)[1] if with_reasons else {}
    rows = []
    for rid, name in session.execute(users.order_by(User.username)):
        total, passed, failed = by_total.get(rid, (0, 0, 0))
        today_times = handled.get(rid, [])
        rows.append({"id": rid, "username": name, "completed_today": len(today_times),
                     "completed_total": total, "passed": int(passed), "failed": int(failed),
                     "median_handle_s": _median([t for t in today_times if t is not None])})
        if with_reasons:
            rows[-1]["fail_reasons"] = reasons.get(rid, {})
    return rows


def completions(session, since, until, bucket_s: int) -> list[dict]:
    """Completions per bucket of `bucket_s` seconds from `since` (a bucket
    boundary) to `until`: [{"start", "completed", "pass", "fail"}], every
    bucket listed, oldest first. One grouped read of the range
    status = completed AND completed_at in [since, until) of
    ix_tasks_completed."""
    if session.get_bind().dialect.name == "sqlite":  # CAST truncates: offsets are >= 0
        seconds = (sa.func.julianday(Task.completed_at) - sa.func.julianday(since)) * 86400.0
        bucket = sa.cast(seconds / bucket_s, sa.Integer).label("bucket")
    else:
        seconds = sa.func.timestampdiff(sa.text("SECOND"), since, Task.completed_at)
        bucket = sa.func.floor(seconds / bucket_s).label("bucket")
    rows = session.execute(
        sa.select(bucket, sa.func.count(),
                  sa.func.sum(sa.case((Task.outcome == "pass", 1), else_=0)),
                  sa.func.sum(sa.case((Task.outcome == "fail", 1), else_=0)))
        .where(Task.status == COMPLETED, Task.completed_at >= since, Task.completed_at < until)
        .with_hint(Task, INDEX_HINT, "mysql").with_hint(Task, INDEX_HINT, "mariadb")
        .group_by(bucket)).all()
    session.rollback()
    count = max(1, math.ceil((until - since).total_seconds() / bucket_s))  # last: partial
    counted = defaultdict(lambda: [0, 0, 0])
    for index, n, passed, failed in rows:
        # SQLite's julianday() is a double: a completion on a boundary may
        # land a few microseconds early; it belongs to the range read.
        figures = counted[min(max(int(index), 0), count - 1)]
        figures[0] += n
        figures[1] += int(passed or 0)
        figures[2] += int(failed or 0)
    found = []
    for index in range(count):
        n, passed, failed = counted.get(index, (0, 0, 0))
        found.append({"start": since + timedelta(seconds=index * bucket_s), "completed": n,
                      "pass": passed, "fail": failed})
    return found
