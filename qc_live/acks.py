"""Acknowledgements: a reviewer's screen (or an HTTP answer) has the task.

An offer (`task-assigned`) asks each of the reviewer's sockets for the
Socket.IO ack; the first ack, or an HTTP answer that carried the task, sets
`tasks.acked_at`. An offer left unanswered is taken back by the sweep
(sweep.take_back_unacknowledged): that is what acks are for.
"""
import logging
import threading

from . import sql
from .database import is_unavailable, run_write
from .extensions import db, socketio

log = logging.getLogger(__name__)


def acknowledge_many(session, acks) -> int:
    """Record (task_id, reviewer_id) acks; one counts only while that reviewer
    still holds the task. Rows are updated one by one in id order, each by
    primary key: a batch locks only the rows it marks, in the order every
    other batch and every completion does (a single multi-row UPDATE
    deadlocked against completions on MariaDB). Returns how many offers were
    acknowledged for the first time."""
    from .clock import utcnow
    now = utcnow()
    rows = [{"task_id": task_id, "reviewer_id": reviewer_id, "now": now}
            for task_id, reviewer_id in sorted(set(acks))]
    # executemany: one UPDATE per row, in this order, looped by the driver.
    return session.connection().execute(sql.ACK, rows).rowcount if rows else 0


def record(w, acks) -> int:
    """The same inside a write transaction of the dispatch core (lifecycle.Work)."""
    return acknowledge_many(w.session, acks)


class AckRecorder:
    """Writes the acks of `task-assigned` to the database in batches.

    An ack only has to land before the ack timeout (QC_ACK_TIMEOUT) runs out,
    so instead of a write transaction per ack, the acks that arrive within
    `delay` seconds share one. A crash loses at most that much: those offers
    are followed up by the sweep as if the ack never came."""

    def __init__(self, app, delay: float = 0.05):
        self.app = app
        self.delay = delay
        self._waiting = []
        self._scheduled = False
        # Only the threading mode needs it; never held across a yield.
        self._lock = threading.Lock()

    def add(self, task_id: int, reviewer_id: int, *_payload) -> None:
        with self._lock:
            self._waiting.append((task_id, reviewer_id))
            start, self._scheduled = not self._scheduled, True
        if start:
            socketio.start_background_task(self._flush_later)

    def _flush_later(self) -> None:
        socketio.sleep(self.delay)
        with self._lock:
            batch, self._waiting, self._scheduled = self._waiting, [], False
        with self.app.app_context():
            try:
                failed = self._write(batch)
                if failed and len(batch) > 1 and not is_unavailable(failed):
                    # One ack that cannot be written must not cost the others theirs.
                    for ack in batch:
                        self._write([ack])
            finally:
                db.session.remove()

    @staticmethod
    def _write(batch) -> Exception | None:
        try:
            run_write(db.session, acknowledge_many, batch)
            return None
        except Exception as exc:
            # Not fatal: at worst these offers time out and are handed on.
            log.exception("could not record %d acks", len(batch))
            return exc
