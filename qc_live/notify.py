"""Turning what dispatch decided into Socket.IO messages — always after the commit.

Every reviewer's sockets (tabs, devices, other server processes) share the
room ``reviewer:<id>``; emitting to the room reaches all of them, through the
message queue when several processes run.
"""
import logging
import threading
from functools import partial

from . import dispatch, metrics
from .board import broadcaster
from .database import is_unavailable, run_write, yield_to_loop
from .dispatch import Assigned, Idle, Outcome, Revoked
from .extensions import db, socketio
from .presence import REVIEWER_NAMESPACE, sockets_of

log = logging.getLogger(__name__)
_app = None

# A push of a large dispatch (an import handed to thousands of reviewers) lets
# the event loop run after this many notices, so other sockets are not starved.
PUSH_SLICE = 200


def init_app(app) -> None:
    global _app
    _app = app


def reviewer_room(reviewer_id: int) -> str:
    return f"reviewer:{reviewer_id}"


def push(outcome: Outcome | list, sid: str | None = None) -> None:
    """Emit the notices of an outcome, in order, to all the reviewer's sockets.

    With `sid` (a socket that just connected), what only restates the
    reviewer's state (`idle`, a resent task) goes to that socket alone: the
    other tabs already show it. Every PUSH_SLICE notices it yields to the
    event loop, so call it after the commit, never inside a transaction.
    """
    broadcaster.changed()
    notices = outcome.notices if isinstance(outcome, Outcome) else outcome
    for count, notice in enumerate(notices):
        if count and count % PUSH_SLICE == 0:
            yield_to_loop()
        restates = isinstance(notice, Idle) or getattr(notice, "resent", False)
        room = sid if sid and restates else reviewer_room(notice.reviewer_id)
        if isinstance(notice, Assigned):
            _offer(notice, sid if sid and restates else None)
        elif isinstance(notice, Idle):
            socketio.emit("idle", {"reason": notice.reason}, to=room,
                          namespace=REVIEWER_NAMESPACE)
        elif isinstance(notice, Revoked):
            socketio.emit("task-revoked", {"task_id": notice.task_id, "reason": notice.reason},
                          to=room, namespace=REVIEWER_NAMESPACE)
        metrics.pushed(notice)


def _offer(notice: Assigned, only_sid: str | None) -> None:
    """`task-assigned` to each socket of the reviewer (or to one), each asking
    for the Socket.IO ack; the first ack marks the task acknowledged."""
    on_ack = partial(acks.add, notice.task["id"], notice.reviewer_id)
    for target in [only_sid] if only_sid else _reviewer_sockets(notice.reviewer_id):
        socketio.emit("task-assigned", {"task": notice.task}, to=target,
                      namespace=REVIEWER_NAMESPACE, callback=on_ack)


def _reviewer_sockets(reviewer_id: int) -> list[str]:
    """The sids of the reviewer's /reviewer sockets, wherever they are connected.

    Each socket is asked for its own ack, so the offer needs sids, not the
    room. One process knows them all from its room (sockets join it on
    connect and leave it on disconnect); with a message queue some may be on
    other processes, and only the database knows those."""
    if not _app.extensions["qc_config"].message_queue:
        return [sid for sid, _ in socketio.server.manager.get_participants(
            REVIEWER_NAMESPACE, reviewer_room(reviewer_id))]
    try:
        return [s for s, ns in sockets_of(db.session, reviewer_id) if ns == REVIEWER_NAMESPACE]
    finally:
        db.session.rollback()  # end the read: nothing may stay open across emits


class AckRecorder:
    """Writes the acks of `task-assigned` to the database in batches.

    An ack only has to land before QC_ACK_TIMEOUT (30 s) runs out, so instead
    of a write transaction per ack, the acks that arrive within `delay`
    seconds share one. A crash loses at most that much: those offers are taken
    back by the sweep after the timeout, as if the ack never came."""

    def __init__(self, delay: float = 0.05):
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
        with _app.app_context():
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
            run_write(db.session, dispatch.acknowledge_many, batch)
            return None
        except Exception as exc:
            # Not fatal: at worst these offers time out and are handed on.
            log.exception("could not record %d acks", len(batch))
            return exc


acks = AckRecorder()


def push_later(outcome: Outcome | list, sid: str | None = None) -> None:
    """Push once the current handler has returned, so a socket's ack (or the
    CONNECT packet) goes out before the messages that follow from it."""
    if outcome.notices if isinstance(outcome, Outcome) else outcome:
        socketio.start_background_task(_push_safely, outcome, sid)


def _push_safely(outcome, sid) -> None:
    with _app.app_context():
        try:
            push(outcome, sid)
        except Exception:
            log.exception("push failed")
        finally:
            db.session.remove()


def disconnect(sockets: list[tuple[str, str]]) -> None:
    """Disconnect these (sid, namespace) sockets, on whichever process holds them."""
    for sid, namespace in sockets:
        socketio.server.disconnect(sid, namespace=namespace)
