"""Engine set-up per database and the one way to run a write transaction.

SQLite ignores FOR UPDATE, so writes are serialised instead: a lock inside the
process (green under eventlet/gevent, so a waiting writer yields instead of
blocking the loop) plus BEGIN IMMEDIATE across processes. Code inside a write
transaction never emits or sleeps, so it never yields to the event loop.

On MySQL/MariaDB, writes run at READ COMMITTED and take row locks
(FOR UPDATE [SKIP LOCKED]); a deadlock or lock timeout is retried.
"""
import logging
import random
import threading
import time
from contextlib import nullcontext

from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from . import metrics
from .extensions import socketio

log = logging.getLogger(__name__)

# Execution option: this connection's transaction writes (SQLite: BEGIN IMMEDIATE).
WRITE_OPTION = "qc_write"
# Created at import, which run.py does after monkey-patching: a green lock then.
_sqlite_writer = threading.RLock()

# MySQL error codes worth a retry: deadlock, lock wait timeout.
_RETRY_CODES = {1213, 1205}
# Errors that mean "the database is not reachable right now".
_UNAVAILABLE_CODES = {2003, 2006, 2013, 2014, 2055, 1927, 1053}


class DatabaseUnavailable(RuntimeError):
    """The database did not answer; the caller should answer 503 and retry later."""


def engine_options(config) -> dict:
    if config.is_sqlite:
        return {"connect_args": {"timeout": 10}}
    return {
        "isolation_level": "READ COMMITTED",
        # Both done by configure_engine instead, without the round trips they
        # would cost every transaction.
        "pool_pre_ping": False,
        "pool_reset_on_return": None,
        # The most recently returned connection goes out first: under light
        # load the few in use stay warm and the rest age into a ping.
        "pool_use_lifo": True,
        "pool_recycle": 1800,
        "pool_size": config.db_pool_size,
        "max_overflow": config.db_max_overflow,
        "pool_timeout": config.db_pool_timeout,
        "connect_args": {"connect_timeout": 5, "read_timeout": 30, "write_timeout": 30,
                         "charset": "utf8mb4"},
    }


def configure_engine(engine, config) -> None:
    if engine.dialect.name != "sqlite":
        _spare_round_trips(engine, config.db_ping_after)
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # Let SQLAlchemy's begin event issue BEGIN itself (pysqlite's own
        # transaction handling would defer it and ignore IMMEDIATE).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        if connection.get_execution_options().get(WRITE_OPTION):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.exec_driver_sql("BEGIN")


# Connection-record flag: a transaction may be open on this DBAPI connection.
_OPEN = "qc_transaction_open"
_RETURNED_AT = "qc_returned_at"


def _spare_round_trips(engine, ping_after: float) -> None:
    """The pool's pre-ping and reset-on-return, minus two round trips.

    SQLAlchemy's `pool_pre_ping` pings on every checkout and its reset-on-return
    rolls back on every checkin, even right after a commit: two of the ten
    round trips a completion took on MariaDB. Here a connection is pinged only
    when it sat in the pool for more than `ping_after` seconds (a dead one is
    replaced, as with pre-ping; one that died while in steady use fails its
    statement, which the caller reports as `unavailable`, and SQLAlchemy then
    replaces every pooled connection), and rolled back on return only when a
    transaction may still be open: one began and no commit or rollback ended
    it, or an error came in between.
    """
    def mark(connection, open_: bool) -> None:
        # An invalidated connection has no DBAPI connection left to mark (and
        # its record starts afresh, unmarked: "maybe open").
        if not connection.invalidated:
            connection.connection.info[_OPEN] = open_

    @event.listens_for(engine, "begin")
    def _begun(connection):
        mark(connection, True)

    @event.listens_for(engine, "commit")
    @event.listens_for(engine, "rollback")
    def _ending(connection):
        # Fired just before the COMMIT/ROLLBACK; if that fails, handle_error
        # below marks the connection open again.
        mark(connection, False)

    @event.listens_for(engine, "handle_error")
    def _failed(context):
        if context.connection is not None:
            mark(context.connection, True)

    @event.listens_for(engine, "reset")
    def _reset(dbapi_connection, record, state):
        if state.terminate_only or record is None:  # being closed, not pooled
            return
        if record.info.get(_OPEN, True):
            dbapi_connection.rollback()
        record.info[_OPEN] = False

    @event.listens_for(engine, "connect")
    @event.listens_for(engine, "checkin")
    def _returned(dbapi_connection, record):
        record.info[_RETURNED_AT] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection, record, proxy):
        idle = time.monotonic() - record.info.get(_RETURNED_AT, float("-inf"))
        if idle > ping_after:
            try:
                dbapi_connection.ping(reconnect=False)
            except Exception as exc:
                # The pool discards this connection and checks out another.
                raise DisconnectionError(f"pooled connection is dead: {exc}") from exc


def is_sqlite(session) -> bool:
    return session.get_bind().dialect.name == "sqlite"


def _mysql_code(exc: DBAPIError) -> int | None:
    args = getattr(exc.orig, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def is_unavailable(exc: Exception) -> bool:
    # Every pooled connection busy for pool_timeout: to the client that is the
    # same as a database that does not answer (503, retry), not a server bug.
    if isinstance(exc, (DatabaseUnavailable, PoolTimeout)):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        return _mysql_code(exc) in _UNAVAILABLE_CODES
    return False


def sqlite_busy(exc: Exception) -> bool:
    """SQLite's write lock stayed taken (by another process) past busy_timeout."""
    return isinstance(exc, OperationalError) and "database is locked" in str(exc.orig)


def run_write(session, work, *args, attempts: int = 5, **kwargs):
    """Run ``work(session, *args, **kwargs)`` in one write transaction and commit.

    Whatever the session had open is committed first (callers only ever hold
    read transactions there). Retries deadlocks and lock timeouts; turns
    "database gone" into `DatabaseUnavailable`. Returns what ``work`` returns.
    """
    if hasattr(session, "registry"):  # a scoped_session: work on the real one
        session = session()
    if session.in_transaction():
        session.commit()
    # Objects read before (say, the authenticated user) may be stale; inside
    # the write transaction everything is read afresh.
    session.expire_all()
    sqlite = is_sqlite(session)
    for attempt in range(1, attempts + 1):
        try:
            with _sqlite_writer if sqlite else nullcontext():
                session.connection(execution_options={WRITE_OPTION: True})
                try:
                    result = work(session, *args, **kwargs)
                    session.commit()
                    return result
                except BaseException:
                    session.rollback()
                    raise
        except PoolTimeout as exc:
            metrics.database_error("unavailable")
            raise DatabaseUnavailable(f"no free database connection: {exc}") from exc
        except OperationalError as exc:
            if is_unavailable(exc):
                metrics.database_error("unavailable")
                raise DatabaseUnavailable(str(exc.orig)) from exc
            retry = _mysql_code(exc) in _RETRY_CODES or (sqlite and sqlite_busy(exc))
            if not retry or attempt == attempts:
                raise
            log.info("write transaction retried after %s (attempt %d)", exc.orig, attempt)
            metrics.database_error("retried")
            pause(random.uniform(0.005, 0.02) * attempt)


def pause(seconds: float) -> None:
    """Wait without holding up the event loop (socketio.sleep is green under
    eventlet and gevent)."""
    socketio.sleep(seconds)


def yield_to_loop() -> None:
    """Let the event loop serve sockets, acks and the heartbeat for a moment,
    in the middle of a long job. Never inside a write transaction (see above)."""
    # Positive: gevent's sleep(0) switches greenlets without polling I/O, so
    # sockets would still not be served.
    pause(0.001)


def database_utc(session):
    """The database server's UTC time (None for SQLite: it shares our clock)."""
    if is_sqlite(session):
        return None
    try:
        return session.execute(text("SELECT UTC_TIMESTAMP(6)")).scalar()
    finally:
        session.rollback()
