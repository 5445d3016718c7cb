"""Socket.IO handlers. Thin: authenticate, call dispatch, answer, push.

Namespace /reviewer: the connection is the reviewer's presence. Connecting
records the socket (and the reviewer's return from offline), then hands over
the held task, a new one, or `idle`. The handlers' acks go out before the
pushes that follow them (`notify.push_later`).
"""
import logging

from flask import current_app, request, session
from flask_socketio import ConnectionRefusedError, join_room

from . import board, dispatch, limits, presence
from .auth import user_from_token
from .database import is_unavailable, run_write
from .errors import (BadRequest, Forbidden, QCError, RateLimited, Unauthorized, Unavailable,
                     as_ack)
from .extensions import db, socketio
from .models import Role, User
from .notify import push_later, reviewer_room
from .validation import boolean, completion, json_object

log = logging.getLogger(__name__)
REVIEWER = presence.REVIEWER_NAMESPACE


def _config():
    return current_app.extensions["qc_config"]


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
    return user_from_token(token, role, exact=exact)


def _remember_socket(namespace: str, user, then=None):
    """Record this socket (within the per-user cap); with `then`, run
    dispatch.offer_work in the same transaction and return its outcome."""
    cfg = _config()
    runtime = current_app.extensions["qc_runtime"]
    if presence.live_socket_count(db.session, user.id, namespace, cfg.lease_seconds) \
            >= cfg.max_sockets_per_user:
        raise RateLimited(f"at most {cfg.max_sockets_per_user} connections per user; "
                          "close a tab", code="too_many_connections")
    sid, user_id = request.sid, user.id

    def arriving(session):
        presence.add_connection(session, sid, namespace, session.get(User, user_id),
                                runtime.process_id, cfg.lease_seconds, cfg.grace_seconds)
    if then is None:
        run_write(db.session, arriving)
        outcome = None
    else:
        outcome = then(db.session, user_id, arriving=arriving)
    runtime.local_sockets[sid] = (namespace, user_id)
    return outcome


def guarded(handler):
    """Rate-limit the event, and turn refusals and database outages into the
    contract's ack shape. Every event takes one argument, an object; a client
    may send any number, and gets an answer whatever it sent."""
    def wrapper(*args):
        if not limits.socket_events.allow(request.sid):
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
    outcome = _remember_socket(REVIEWER, user, then=dispatch.offer_work)
    session["qc_user_id"] = user.id
    join_room(reviewer_room(user.id))
    push_later(outcome, sid=request.sid)


def _forget_socket():
    current_app.extensions["qc_runtime"].local_sockets.pop(request.sid, None)
    limits.socket_events.forget(request.sid)
    try:
        run_write(db.session, presence.remove_connection, request.sid, _config().lease_seconds)
    except Exception:
        # The sweeper reconciles this process's rows with its live sockets.
        log.exception("could not record the disconnect of %s", request.sid)
    board.broadcaster.changed()


@socketio.on("disconnect", namespace=REVIEWER)
def reviewer_disconnect(*_reason):
    _forget_socket()


@socketio.on("task-complete", namespace=REVIEWER)
@guarded
def reviewer_complete(data):
    task_id, outcome, note, user_id = completion(data)
    if user_id is not None and user_id != _reviewer_id():
        raise Forbidden("reviewers complete their own tasks only", code="not_your_task")
    result = dispatch.complete(db.session, _reviewer_id(), task_id, outcome, note)
    push_later(result)
    return {"ok": True, "task_id": task_id, "task": result.value["task"]}


@socketio.on("set-availability", namespace=REVIEWER)
@guarded
def reviewer_set_availability(data):
    available = boolean(json_object(data, {"available"}), "available")
    outcome = dispatch.set_availability(db.session, _reviewer_id(), available, _reviewer_id(),
                                        claim=True)
    push_later(outcome)
    return {"ok": True, "available": available}


# --- /board -------------------------------------------------------------------

@socketio.on("connect", namespace=board.NAMESPACE)
@refusing
def board_connect(auth=None):
    user = authenticate(auth, Role.SUPERVISOR, exact=False)
    _remember_socket(board.NAMESPACE, user)
    join_room(board.ROOM)
    board.broadcaster.viewers.add(request.sid)
    board.broadcaster.changed()  # the new board gets the snapshot within FAST seconds


@socketio.on("disconnect", namespace=board.NAMESPACE)
def board_disconnect(*_reason):
    board.broadcaster.viewers.discard(request.sid)
    _forget_socket()
