"""This server process: its identity, its lease, its sockets, and the loops
that keep them.

Every `heartbeat_seconds` the process renews its lease (in a loop of its own,
so a slow sweep cannot make a live process look dead) and reconciles its
sockets with their rows. Every `sweep_seconds` it runs the sweep (sweep.py:
everything that happens because time passed), and its courier delivers
webhooks (webhooks.py).
"""
import logging
import os
import socket
import time
import uuid
from typing import NamedTuple

import sqlalchemy as sa

from . import presence
from .board import NAMESPACE as BOARD_NAMESPACE
from .database import database_utc, is_unavailable, run_write
from .extensions import db, socketio
from .models import Connection, Role, User

log = logging.getLogger(__name__)


class LocalSocket(NamedTuple):
    namespace: str
    user_id: int
    token_version: int  # the user's when it connected: a newer one means signed out


class Runtime:
    def __init__(self, app, config, clock, board):
        self.app = app
        self.config = config
        self.clock = clock  # this app's (clock.Clock), synced on every heartbeat
        self.board = board
        self.sweeper = None  # sweep.Sweep, set by create_app
        self.courier = None  # webhooks.Courier, set by create_app
        self.process_id = uuid.uuid4().hex
        # sid -> LocalSocket, for the sockets connected to this process: what
        # to write back if our lease was lost, what to reconcile the rows with,
        # and where offers must reach (see heartbeat, follow_up_offers).
        self.local_sockets: dict[str, LocalSocket] = {}
        self._renewed_at = time.monotonic()  # when our lease was last renewed
        self._running = False

    def socket_connected(self, sid: str, namespace: str, user_id: int,
                         token_version: int) -> None:
        """Called once the socket's row is committed, never before."""
        self.local_sockets[sid] = LocalSocket(namespace, user_id, token_version)

    def socket_gone(self, sid: str) -> None:
        self.local_sockets.pop(sid, None)

    def register(self) -> None:
        with self.app.app_context():
            self.sync_clock()
            run_write(db.session, presence.register_process, self.process_id,
                      socket.gethostname(), os.getpid())

    def sync_clock(self) -> None:
        offset = self.clock.sync(lambda: database_utc(db.session))
        if abs(offset.total_seconds()) > 1:
            log.warning("this host's clock is %.1f s off the database's; using the "
                        "database's", offset.total_seconds())

    def start(self) -> None:
        """Take a lease, then keep it and sweep (run.py does this; the CLI and
        unit tests do not, so they never count as a server process)."""
        if not self._running:
            self.register()
            self._join_message_queue()
            self._running = True
            socketio.start_background_task(self._every, self.config.heartbeat_seconds,
                                           self.heartbeat, "heartbeat")
            socketio.start_background_task(self._every, self.config.sweep_seconds,
                                           self.sweep, "sweep")
            self.board.start()
            self.courier.start()

    def _join_message_queue(self) -> None:
        """Listen on the message queue from start-up. python-socketio starts
        its listener when the first client connects to this process; until
        then the process would not hear what comes back to it through the
        queue: the acks of the offers it made to sockets elsewhere."""
        server = socketio.server
        if self.config.message_queue and not server.manager_initialized:
            server.manager_initialized = True  # as python-socketio does on a first connect
            server.manager.initialize()

    def _every(self, seconds: float, job, name: str) -> None:
        """Run `job` every `seconds`, each in its own app context; the lease has
        a loop of its own so that slow sweeps never delay it."""
        failures = 0
        while self._running:
            socketio.sleep(seconds)
            with self.app.app_context():
                try:
                    job()
                    if failures:
                        log.warning("%s works again after %d failure(s)", name, failures)
                    failures = 0
                except Exception as exc:
                    db.session.rollback()
                    failures += 1
                    if failures == 1:
                        log.exception("%s failed; retrying every %ss", name, seconds)
                    elif not is_unavailable(exc) and failures % 60 == 0:
                        log.error("%s still failing (%d times): %s", name, failures, exc)
                finally:
                    db.session.remove()

    def heartbeat(self) -> None:
        """Renew the lease. If another process already took us for dead and
        forgot our sockets, register again with every socket we still hold.
        Then reconcile the sockets with their rows."""
        session = db.session
        self.sync_clock()
        renewed = run_write(session, presence.renew_lease, self.process_id)
        self._renewed_at = time.monotonic()
        if not renewed:
            log.warning("this process's lease had expired (another process forgot its "
                        "sockets); registering again with %d socket(s)",
                        len(self.local_sockets))
            run_write(session, self._register_again)
        self.reconcile()

    def lease_is_fresh(self) -> bool:
        """Our own lease was renewed within half its length: the database is
        answering us in time, so we may judge other processes' leases."""
        return time.monotonic() - self._renewed_at < self.config.lease_seconds / 2

    def sweep(self) -> None:
        self.sweeper.run(db.session)

    def _register_again(self, session) -> None:
        presence.register_process(session, self.process_id, socket.gethostname(), os.getpid())
        session.flush()
        for sid, sock in list(self.local_sockets.items()):
            user = session.get(User, sock.user_id)
            if user is not None:
                presence.add_connection(session, sid, sock.namespace, user, self.process_id,
                                        self.config.lease_seconds, self.config.grace_seconds)

    def reconcile(self) -> None:
        """Make this process's connection rows and its live sockets agree, both ways.

        A row whose socket is gone (a disconnect that could not be written,
        e.g. while the database was down) is deleted. A live socket whose row
        is gone (its user signed out, deactivated or given another role on
        another process, whose disconnect the message queue lost), or whose
        user may no longer hold it (inactive, another role, a newer token
        version), is disconnected. Run right after the lease was renewed (or
        the rows written back, see heartbeat), so a missing row is not ours
        being reaped."""
        manager = socketio.server.manager
        session = db.session
        # Copied before the read: a socket is listed only once its row is
        # committed, so one connecting right now is not taken for one whose
        # row was deleted.
        mine = dict(self.local_sockets)
        rows = session.execute(sa.select(Connection.sid, Connection.namespace)
                               .where(Connection.process_id == self.process_id)).all()
        users = {}
        user_ids = sorted({sock.user_id for sock in mine.values()})
        for start in range(0, len(user_ids), 500):
            users.update((row.id, row) for row in session.execute(
                sa.select(User.id, User.role, User.active, User.token_version)
                .where(User.id.in_(user_ids[start:start + 500]))))
        session.rollback()
        for sid, namespace in rows:
            if not (manager.is_connected(sid, namespace)
                    or manager.is_pre_connected(sid, namespace)):
                self.local_sockets.pop(sid, None)
                run_write(session, presence.remove_connection, sid, self.config.lease_seconds)
        if time.monotonic() - self._renewed_at > self.config.lease_seconds / 2:
            return  # our own rows may have been reaped: heartbeat writes them back first
        recorded = {sid for sid, _ in rows}
        for sid, sock in mine.items():
            if sid in recorded and _may_keep(sock, users.get(sock.user_id)):
                continue
            if not manager.is_connected(sid, sock.namespace):
                if not manager.is_pre_connected(sid, sock.namespace):
                    self.local_sockets.pop(sid, None)  # gone meanwhile
                continue  # still connecting: the next round sees it connected
            log.info("disconnecting socket %s of user %s: %s", sid, sock.user_id,
                     "its row is gone" if sid not in recorded else "its user signed out")
            # Its disconnect handler forgets it (sockets._forget_socket).
            socketio.server.disconnect(sid, namespace=sock.namespace, ignore_queue=True)

    def stop(self) -> None:
        self._running = False
        self.courier.stop()


def _may_keep(sock: LocalSocket, user) -> bool:
    """The user may still hold this socket: the same session, active, and of a
    role its namespace admits."""
    if user is None or not user.active or user.token_version != sock.token_version:
        return False
    if sock.namespace == BOARD_NAMESPACE:
        return Role(user.role).rank >= Role.SUPERVISOR.rank
    return user.role == Role.REVIEWER.value
