"""Socket.IO handlers. Thin: authenticate, call the dispatcher, answer, push.

Namespace /reviewer: the connection is the reviewer's presence. Connecting
records the socket (and the reviewer's return from offline), then hands over
the held task, a new one, or `idle`. The handlers' acks go out before the
pushes that follow them (`Notifier.push_later`).
"""
import logging

from flask import request, session
from flask_socketio import ConnectionRefusedError, join_room

from . import access_log, board, metrics, presence, state
from .auth import user_from_token
from .database import is_unavailable, run_write
from .errors import (BadRequest, Forbidden, QCError, RateLimited, Unauthorized, Unavailable,
                     as_ack)
from .extensions import db, socketio
from .models import Role
from .notify import reviewer_room
from .schemas.requests import Completion, SocketAvailability

log = logging.getLogger(__name__)
REVIEWER = presence.REVIEWER_NAMESPACE


def _refuse(code: str, message: str):
    """connect_error carries {"code", "message"} at the top level (python
    clients) and under "data" (browser clients read err.data)."""
    refusal = ConnectionRefusedError(message)
    detail = {"code": code, "message": message}
    refusal.error_args = {**detail, "data": detail}
    return refusal


def refusing(connect_handler):
    """A connect handler that never leaves the client hanging: a bad token is
    refused as "unauthorized", a database outage as "unavailable", anything
    else as "internal_error" (and logged)."""
    def wrapper(auth=None):
        try:
            return connect_handler(auth)
        except QCError as error:
            db.session.rollback()
            code = error.code if isinstance(error, (Unavailable, RateLimited)) \
                else "unauthorized"
            raise _refuse(code, error.message) from None
        except Exception as exc:
            db.session.rollback()
            if is_unavailable(exc):
                raise _refuse("unavailable", "the database is not reachable; retry shortly") \
                    from None
            log.exception("connect failed")
            raise _refuse("internal_error", "internal server error") from None
    wrapper.__name__ = connect_handler.__name__
    return wrapper


def authenticate(auth, role: Role, exact: bool):
    token = auth.get("token") if isinstance(auth, dict) else None
    user = user_from_token(token, role, exact=exact)
    access_log.identify(user.id)
    return user


def _admit_board(user) -> None:
    """Record a /board socket (within the per-user cap, presence.admit_socket)."""
    cfg, runtime = state.config(), state.runtime()
    sid, user_id, token_version = request.sid, user.id, user.token_version

    def arriving(session):
        row = presence.lock_user(session, user_id)  # first: see admit_socket
        presence.admit_socket(session, sid, board.NAMESPACE, row, token_version,
                              runtime.process_id, cfg.max_sockets_per_user,
                              cfg.lease_seconds, cfg.grace_seconds)
    run_write(db.session, arriving)


def guarded(handler):
    """Rate-limit the event, and turn refusals and database outages into the
    contract's ack shape. Every event takes one argument, an object; a client
    may send any number, and gets an answer whatever it sent."""
    def wrapper(*args):
        if not state.limits().socket_events.allow(request.sid):
            return as_ack(RateLimited("too many events; slow down", code="rate_limited"))
        if len(args) > 1:
            return as_ack(BadRequest(f"the event takes one argument (an object), "
                                     f"not {len(args)}"))
        try:
            return handler(args[0] if args else None)
        except QCError as error:
            db.session.rollback()
            return as_ack(error)
        except Exception as exc:
            db.session.rollback()
            if is_unavailable(exc):
                return as_ack(Unavailable("the database is not reachable; retry shortly"))
            log.exception("socket handler failed")
            return {"ok": False, "error": {"code": "internal_error",
                                           "message": "internal server error"}}
    wrapper.__name__ = handler.__name__
    return wrapper


def _reviewer_id() -> int:
    user_id = session.get("qc_user_id")
    if user_id is None:  # cannot happen after a successful connect
        raise Unauthorized("not authenticated")
    return user_id


@socketio.on("connect", namespace=REVIEWER)
@refusing
def reviewer_connect(auth=None):
    user = authenticate(auth, Role.REVIEWER, exact=True)
    runtime = state.runtime()
    outcome = state.dispatcher().connect(db.session, request.sid, user.id, user.token_version,
                                         runtime.process_id)
    # Only once its row is committed (Runtime.reconcile relies on it).
    runtime.socket_connected(request.sid, REVIEWER, user.id, user.token_version)
    session["qc_user_id"] = user.id
    join_room(reviewer_room(user.id))
    state.notifier().push_later(outcome, sid=request.sid)


def _forget_socket():
    state.runtime().socket_gone(request.sid)
    state.limits().socket_events.forget(request.sid)
    try:
        run_write(db.session, presence.remove_connection, request.sid,
                  state.config().lease_seconds)
    except Exception:
        # The runtime reconciles this process's rows with its live sockets.
        log.exception("could not record the disconnect of %s", request.sid)
    state.board().changed()


@socketio.on("disconnect", namespace=REVIEWER)
def reviewer_disconnect(*_reason):
    _forget_socket()


@socketio.on("task-complete", namespace=REVIEWER)
@guarded
def reviewer_complete(data):
    started = metrics.clock()
    body = Completion.parse(data)
    task_id, outcome, note, user_id = body.task_id, body.outcome, body.note, body.user_id
    if user_id is not None and user_id != _reviewer_id():
        raise Forbidden("reviewers complete their own tasks only", code="not_your_task")
    result = state.dispatcher().complete(db.session, _reviewer_id(), task_id, outcome, note,
                                         reasons=body.reasons, checklist=body.checklist)
    metrics.completed("socket", outcome, result, started)
    state.notifier().push_later(result)
    return {"ok": True, "task_id": task_id, "task": result.value["task"]}


@socketio.on("set-availability", namespace=REVIEWER)
@guarded
def reviewer_set_availability(data):
    available = SocketAvailability.parse(data).available
    outcome = state.dispatcher().set_availability(db.session, _reviewer_id(), available,
                                                  claim=True)
    state.notifier().push_later(outcome)
    return {"ok": True, "available": available}


# --- /board -------------------------------------------------------------------

@socketio.on("connect", namespace=board.NAMESPACE)
@refusing
def board_connect(auth=None):
    user = authenticate(auth, Role.SUPERVISOR, exact=False)
    _admit_board(user)
    state.runtime().socket_connected(request.sid, board.NAMESPACE, user.id,
                                     user.token_version)
    join_room(board.ROOM)
    broadcaster = state.board()
    broadcaster.viewers.add(request.sid)
    broadcaster.changed()  # the new board gets the snapshot within FAST seconds


@socketio.on("disconnect", namespace=board.NAMESPACE)
def board_disconnect(*_reason):
    state.board().viewers.discard(request.sid)
    _forget_socket()
