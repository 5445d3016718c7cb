"""The supervisors' live board: one snapshot of the floor, pushed as it changes.

Each process sends the snapshot to its own board sockets only. It refreshes
at once (within `FAST`) after a change made in this process, and at least
every `SLOW` seconds otherwise, which is how changes made by other processes
arrive, since they share the database. A board therefore gets at most
1/FAST = 10 messages a second, however busy the floor and however many
processes there are, and sees any change within about SLOW seconds.
"""
import logging
import statistics
import time
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.orm import aliased

from . import audits
from .clock import iso, utcnow
from .extensions import db, socketio
from .models import Role, Task, TaskStatus, User
from .presence import live_socket_exists, logged_in
from .stats import reviewer_stats

log = logging.getLogger(__name__)

# Each reviewer's audit figures on the board (audits.reviewer_figures).
QUALITY = ("agreement_rate", "gold_accuracy", "audits_done", "disputes_open",
           "audit_probability")
NAMESPACE = "/board"
ROOM = "board"
FAST = 0.1
SLOW = 0.5


def snapshot(session, config) -> dict:
    """The board as one JSON-able dict: the shape of contract.md (with
    `queues`, the queue objects of routing.queue_figures, and each reviewer's
    `skills`), plus `at` (server time), `stats.reviewers` (see
    stats.reviewer_stats), `disputes` (audits.open_disputes), per reviewer
    the audit figures of QUALITY and `connected` (a socket right now;
    `online` stays true through the grace period, as a page reload is not a
    logout)."""
    from .routing import queue_figures, skills_of  # board is imported by database.py
    now = utcnow()
    done = (sa.select(sa.func.count(Task.id))
            .where(Task.assignee_id == User.id, Task.status == TaskStatus.COMPLETED.value)
            .scalar_subquery())
    held = aliased(Task)
    rows = session.execute(
        sa.select(User.id, User.username, User.available, held.id, held.assigned_at,
                  logged_in(config.lease_seconds, config.grace_seconds),
                  live_socket_exists(User.id, config.lease_seconds), done)
        .outerjoin(held, held.holder_id == User.id)
        .where(User.role == Role.REVIEWER.value, User.active.is_(True))
        .order_by(User.username)).all()
    skills = skills_of(session, [row[0] for row in rows])
    reviewers = [{"id": uid, "username": name, "online": bool(online), "available": available,
                  "task_id": task_id, "task_since": iso(since), "completed_count": count or 0,
                  "connected": bool(connected), "skills": skills.get(uid, {})}
                 for uid, name, available, task_id, since, online, connected, count in rows]

    counts = session.execute(
        sa.select(Task.status, Task.priority, sa.func.count(Task.id))
        .where(Task.status.in_([TaskStatus.PENDING.value, TaskStatus.ASSIGNED.value]))
        .group_by(Task.status, Task.priority)).all()
    by_priority = {str(p): n for status, p, n in sorted(counts, key=lambda r: -r[1])
                   if status == TaskStatus.PENDING.value}
    oldest = session.scalar(sa.select(sa.func.min(Task.created_at))
                            .where(Task.status == TaskStatus.PENDING.value))

    hour_ago = now - timedelta(hours=1)
    handled = session.execute(
        sa.select(Task.assigned_at, Task.completed_at)
        .where(Task.status == TaskStatus.COMPLETED.value, Task.completed_at >= hour_ago)).all()
    durations = [(end - start).total_seconds() for start, end in handled if start and end]
    per_reviewer = reviewer_stats(session)
    session.rollback()
    quality = {row["id"]: row for row in audits.reviewer_figures(session, now, trend=False)}
    for reviewer in reviewers:
        figures = quality.get(reviewer["id"], {})
        reviewer.update({key: figures.get(key) for key in QUALITY})
    disputes = audits.open_disputes(session)
    queues = queue_figures(session, config)
    return {
        "reviewers": reviewers,
        "queues": queues,
        "queue": {
            "pending": sum(by_priority.values()),
            "assigned": sum(n for status, _, n in counts if status == TaskStatus.ASSIGNED.value),
            "by_priority": by_priority,
            "oldest_pending_age_s": round((now - oldest).total_seconds(), 1) if oldest else None,
        },
        "stats": {
            "completed_last_hour": len(handled),
            "median_handle_s": round(statistics.median(durations), 2) if durations else None,
            "reviewers": per_reviewer,
        },
        "disputes": disputes,
        "at": iso(now),
    }


class Broadcaster:
    """Sends the snapshot to this process's board sockets, coalesced (one per
    app: state.board())."""

    def __init__(self, app, config):
        self.app, self.config = app, config
        self.viewers = set()  # sids of board sockets on this process
        self._dirty = False
        self._running = False

    def changed(self) -> None:
        """Something on the floor changed here: refresh within FAST seconds."""
        self._dirty = True

    def start(self) -> None:
        if not self._running:
            self._running = True
            socketio.start_background_task(self._loop)

    def stop(self) -> None:
        self._running = False

    def _loop(self) -> None:
        last_sent, failing = 0.0, False
        while self._running:
            socketio.sleep(FAST)
            if not self.viewers:
                continue
            if not self._dirty and time.monotonic() - last_sent < SLOW:
                continue
            self._dirty = False
            last_sent = time.monotonic()
            with self.app.app_context():
                try:
                    data = snapshot(db.session, self.config)
                    failing = False
                except Exception as exc:
                    db.session.rollback()
                    if not failing:  # once per outage, not twice a second
                        log.warning("board snapshot failed: %s", exc)
                    failing = True
                    continue
                finally:
                    db.session.remove()
            # Local sockets only: every process serves its own boards.
            socketio.emit("board", data, to=ROOM, namespace=NAMESPACE, ignore_queue=True)
