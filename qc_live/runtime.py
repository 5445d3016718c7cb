"""This server process: its identity, its lease, and its periodic sweep.

Every `heartbeat_seconds` the process renews its lease (in a loop of its own,
so a slow sweep cannot make a live process look dead). Every `sweep_seconds`
it forgets dead processes and their sockets, expires overdue tasks, takes
back unacknowledged offers, returns tasks whose holders' grace ran out, and
dispatches anything pending. The sweep is safe to run in many processes at
once: each step is a transaction with row locks.
"""
import logging
import os
import socket
import time
import uuid

from . import clock, dispatch, presence
from .board import broadcaster
from .database import database_utc, is_unavailable, run_write
from .extensions import db, socketio
from .models import Connection, User
from .notify import push

log = logging.getLogger(__name__)


class Runtime:
    def __init__(self, app, config):
        self.app = app
        self.config = config
        self.process_id = uuid.uuid4().hex
        # sid -> (namespace, user id) of the sockets connected to this process:
        # what to write back if our lease was lost (see sweep).
        self.local_sockets = {}
        self._renewed_at = time.monotonic()  # when our lease was last renewed
        self._running = False

    def register(self) -> None:
        with self.app.app_context():
            self.sync_clock()
            run_write(db.session, presence.register_process, self.process_id,
                      socket.gethostname(), os.getpid())

    def sync_clock(self) -> None:
        offset = clock.sync(lambda: database_utc(db.session))
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
            broadcaster.start()

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
        forgot our sockets, register again with every socket we still hold."""
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

    def sweep(self) -> None:
        cfg, session = self.config, db.session
        # Judge others' leases only while our own renews on time: if the
        # database is too slow for us, it is too slow for them as well.
        if time.monotonic() - self._renewed_at < cfg.lease_seconds / 2:
            reaped = run_write(session, presence.reap_dead_processes, cfg.lease_seconds,
                               self.process_id)
            if reaped:
                log.info("forgot dead server process(es) %s", ", ".join(reaped))
        expired = dispatch.expire_overdue(session, cfg.lease_seconds)
        if expired.value:
            log.info("expired task(s) past their deadline: %s", expired.value)
            push(expired)
        silent = dispatch.take_back_unacknowledged(session, cfg.ack_timeout_seconds,
                                                   cfg.lease_seconds)
        if silent.value:
            log.info("took back unacknowledged task(s) %s", silent.value)
            push(silent)
        outcome = dispatch.requeue_abandoned(session, cfg.grace_seconds, cfg.lease_seconds)
        if outcome.value:
            log.info("requeued abandoned task(s) %s", outcome.value)
        push(outcome)

    def _register_again(self, session) -> None:
        presence.register_process(session, self.process_id, socket.gethostname(), os.getpid())
        session.flush()
        for sid, (namespace, user_id) in list(self.local_sockets.items()):
            user = session.get(User, user_id)
            if user is not None:
                presence.add_connection(session, sid, namespace, user, self.process_id,
                                        self.config.lease_seconds, self.config.grace_seconds)

    def reconcile(self) -> None:
        """Drop rows of this process's sockets that are no longer connected
        (a disconnect that could not be written, e.g. while the database was down)."""
        manager = socketio.server.manager
        session = db.session
        rows = session.execute(db.select(Connection.sid, Connection.namespace)
                               .where(Connection.process_id == self.process_id)).all()
        session.rollback()
        for sid, namespace in rows:
            if not (manager.is_connected(sid, namespace)
                    or manager.is_pre_connected(sid, namespace)):
                self.local_sockets.pop(sid, None)
                run_write(session, presence.remove_connection, sid, self.config.lease_seconds)

    def stop(self) -> None:
        self._running = False
