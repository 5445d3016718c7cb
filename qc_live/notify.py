"""Turning what dispatch decided into Socket.IO messages — always after the commit.

Every reviewer's sockets (tabs, devices, other server processes) share the
room ``reviewer:<id>``; emitting to the room reaches all of them, through the
message queue when several processes run.
"""
import logging
from functools import partial

from . import dispatch
from .board import broadcaster
from .database import run_write, yield_to_loop
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


def _offer(notice: Assigned, only_sid: str | None) -> None:
    """`task-assigned` to each socket of the reviewer (or to one), each asking
    for the Socket.IO ack; the first ack marks the task acknowledged."""
    if only_sid:
        sids = [only_sid]
    else:
        sids = [s for s, ns in sockets_of(db.session, notice.reviewer_id)
                if ns == REVIEWER_NAMESPACE]
        db.session.rollback()  # end the read: nothing may stay open across emits
    on_ack = partial(_acknowledged, notice.reviewer_id, notice.task["id"])
    for target in sids:
        socketio.emit("task-assigned", {"task": notice.task}, to=target,
                      namespace=REVIEWER_NAMESPACE, callback=on_ack)


def _acknowledged(reviewer_id: int, task_id: int, *_payload) -> None:
    with _app.app_context():
        try:
            run_write(db.session, dispatch.acknowledge, reviewer_id, task_id)
        except Exception:
            # Not fatal: at worst the offer times out and is handed on.
            log.exception("could not record the ack of task %s", task_id)
        finally:
            db.session.remove()


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
