"""Who is connected, through which server process, and whether that process lives.

Presence is data, not a dict in one process: every socket is a row naming its
process, and every process renews a lease (`ServerProcess.heartbeat_at`). A
socket counts only while its process's lease is fresh, so a process that
crashes takes its sockets with it once the lease runs out, and the reviewers'
grace periods start from its last heartbeat (sweep.reap_dead_processes).

Plain functions over a SQLAlchemy session; the callers own the transaction.
"""
import sqlalchemy as sa

from . import sql
from .clock import ago, utcnow
from .errors import RateLimited, Unauthorized
from .models import Connection, Role, ServerProcess, User

REVIEWER_NAMESPACE = "/reviewer"


def live_socket_exists(user_id_column, lease_seconds: float):
    """SQL: the user has a /reviewer socket on a process whose lease is fresh."""
    return sa.exists().where(
        Connection.user_id == user_id_column,
        Connection.namespace == REVIEWER_NAMESPACE,
        Connection.process_id == ServerProcess.id,
        ServerProcess.heartbeat_at > ago(lease_seconds),
    )


def is_online(session, user_id: int, lease_seconds: float) -> bool:
    """The user has a live /reviewer socket right now (dispatch needs this)."""
    return session.scalar(sa.select(live_socket_exists(user_id, lease_seconds))) or False


def logged_in(lease_seconds: float, grace_seconds: float):
    """SQL over `User`: connected now, or the last socket dropped less than the
    grace period ago. This is "online" for people: a reload is not a logout."""
    return sa.or_(live_socket_exists(User.id, lease_seconds),
                  sa.and_(User.offline_since.is_not(None),
                          User.offline_since > ago(grace_seconds)))


def live_socket_count(session, user_id: int, namespace: str, lease_seconds: float) -> int:
    return session.scalar(sa.select(sa.func.count()).select_from(Connection).join(
        ServerProcess, ServerProcess.id == Connection.process_id).where(
        Connection.user_id == user_id, Connection.namespace == namespace,
        ServerProcess.heartbeat_at > ago(lease_seconds)))


def register_process(session, process_id: str, host: str, pid: int) -> None:
    now = utcnow()
    session.execute(sa.insert(ServerProcess).values(id=process_id, host=host[:255], pid=pid,
                                                    started_at=now, heartbeat_at=now))


def renew_lease(session, process_id: str) -> bool:
    """Renew this process's lease. False if the row is gone (we were presumed dead)."""
    result = session.execute(sa.update(ServerProcess)
                             .where(ServerProcess.id == process_id)
                             .values(heartbeat_at=utcnow()))
    return result.rowcount == 1


def lock_user(session, user_id: int):
    """The user's row, locked until the commit (a Core row: sql.LOCK_USER), or None."""
    return session.execute(sql.LOCK_USER, {"user_id": user_id}).first()


def add_connection(session, sid: str, namespace: str, user, process_id: str,
                   lease_seconds: float, grace_seconds: float) -> None:
    """Record a socket of `user` (its row: see lock_user). A reviewer back
    after being logged out (offline past the grace period) joins the end of
    the idle line; one back from a reload keeps its place."""
    now = utcnow()
    if namespace == REVIEWER_NAMESPACE and user.role == Role.REVIEWER.value:
        returning = user.offline_since is not None and \
            (now - user.offline_since).total_seconds() > grace_seconds
        values = {"offline_since": None}
        if (returning or user.idle_since is None) and \
                not is_online(session, user.id, lease_seconds):
            values["idle_since"] = now
        session.execute(sa.update(User).where(User.id == user.id).values(**values))
    session.execute(sa.insert(Connection).values(sid=sid, namespace=namespace, user_id=user.id,
                                                 process_id=process_id, connected_at=now))


def admit_socket(session, sid: str, namespace: str, user, token_version: int,
                 process_id: str, cap: int, lease_seconds: float, grace_seconds: float) -> None:
    """Record a new socket of `user`, if it is within the per-user cap.

    `user` is the user's row, locked by the caller (`lock_user`) before
    anything else in the transaction: simultaneous connects of one user queue
    on that lock, and each counts the sockets those before it recorded, so
    exactly `cap` get in however many arrive at once. Past the cap:
    RateLimited (`too_many_connections`). A user signed out, deactivated or
    given another role since its token was checked: Unauthorized.
    """
    if user is None or not user.active or user.token_version != token_version:
        raise Unauthorized("the token was revoked or its user is no longer active")
    if live_socket_count(session, user.id, namespace, lease_seconds) >= cap:
        raise RateLimited(f"at most {cap} connections per user; close a tab",
                          code="too_many_connections")
    add_connection(session, sid, namespace, user, process_id, lease_seconds, grace_seconds)


def remove_connection(session, sid: str, lease_seconds: float) -> int | None:
    """Forget a socket. If it was the reviewer's last, the grace period starts.

    Returns the user id of the socket, or None if it was not recorded.
    """
    row = session.execute(sa.select(Connection.user_id, Connection.namespace)
                          .where(Connection.sid == sid)).first()
    if row is None:
        return None
    user_id, namespace = row
    # A plain DELETE: the row may be gone already (sign-out, reconcile).
    session.execute(sa.delete(Connection).where(Connection.sid == sid))
    if namespace == REVIEWER_NAMESPACE and not is_online(session, user_id, lease_seconds):
        session.execute(sa.update(User).where(User.id == user_id, User.offline_since.is_(None))
                        .values(offline_since=utcnow()))
    return user_id


def sockets_of(session, user_id: int) -> list[tuple[str, str]]:
    """(sid, namespace) of every recorded socket of the user, on any process."""
    return [tuple(row) for row in session.execute(
        sa.select(Connection.sid, Connection.namespace).where(Connection.user_id == user_id))]


def forget_sockets(session, user_id: int) -> list[tuple[str, str]]:
    """Stop counting the user's sockets as presence (they are about to be
    disconnected). Returns their (sid, namespace)."""
    sockets = sockets_of(session, user_id)
    session.execute(sa.delete(Connection).where(Connection.user_id == user_id))
    return sockets


def seen_over_rest(session, user_id: int, lease_seconds: float) -> None:
    """A reviewer without a socket made a REST call: its grace restarts now."""
    if not is_online(session, user_id, lease_seconds):
        session.execute(sa.update(User).where(User.id == user_id).values(offline_since=utcnow()))
