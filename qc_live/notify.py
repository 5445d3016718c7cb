"""Turning what dispatch decided into Socket.IO messages — always after the commit.

Every reviewer's sockets (tabs, devices, other server processes) share the
room ``reviewer:<id>``; emitting to the room reaches all of them, through the
message queue when several processes run.
"""
import logging

from .board import broadcaster
from .dispatch import Assigned, Idle, Outcome, Revoked
from .extensions import socketio
from .presence import REVIEWER_NAMESPACE, sockets_of

log = logging.getLogger(__name__)


def reviewer_room(reviewer_id: int) -> str:
    return f"reviewer:{reviewer_id}"


def push(outcome: Outcome | list, sid: str | None = None) -> None:
    """Emit the notices of an outcome, in order, to all the reviewer's sockets.

    With `sid` (a socket that just connected), what only restates the
    reviewer's state (`idle`, a resent task) goes to that socket alone: the
    other tabs already show it.
    """
    broadcaster.changed()
    notices = outcome.notices if isinstance(outcome, Outcome) else outcome
    for notice in notices:
        restates = isinstance(notice, Idle) or getattr(notice, "resent", False)
        room = sid if sid and restates else reviewer_room(notice.reviewer_id)
        if isinstance(notice, Assigned):
            socketio.emit("task-assigned", {"task": notice.task}, to=room,
                          namespace=REVIEWER_NAMESPACE)
        elif isinstance(notice, Idle):
            socketio.emit("idle", {"reason": notice.reason}, to=room,
                          namespace=REVIEWER_NAMESPACE)
        elif isinstance(notice, Revoked):
            socketio.emit("task-revoked", {"task_id": notice.task_id, "reason": notice.reason},
                          to=room, namespace=REVIEWER_NAMESPACE)


def push_later(outcome: Outcome | list, sid: str | None = None) -> None:
    """Push once the current handler has returned, so a socket's ack (or the
    CONNECT packet) goes out before the messages that follow from it."""
    if outcome.notices if isinstance(outcome, Outcome) else outcome:
        socketio.start_background_task(_push_safely, outcome, sid)


def _push_safely(outcome, sid) -> None:
    try:
        push(outcome, sid)
    except Exception:
        log.exception("push failed")


def disconnect_user(session, user_id: int) -> None:
    """Disconnect every socket of the user, on whichever process holds it."""
    for sid, namespace in sockets_of(session, user_id):
        socketio.server.disconnect(sid, namespace=namespace)
