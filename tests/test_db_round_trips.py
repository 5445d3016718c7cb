"""What the MySQL/MariaDB pool sends besides our statements (database.py,
`_spare_round_trips`): no ROLLBACK after a transaction that already ended, a
ROLLBACK (locks released) after one that did not, and a ping only for a
connection that sat idle, which then replaces a dead connection unnoticed."""
import pymysql
import pytest
import sqlalchemy as sa

from live import MYSQL, database_kind, wait_until
from qc_live import create_app, prepare_database
from qc_live.config import Config
from qc_live.database import DatabaseUnavailable, run_write
from qc_live.extensions import db

pytestmark = pytest.mark.skipif(database_kind() != "mysql",
                                reason="the pool events are for MySQL/MariaDB")


@pytest.fixture
def make_app(database, tmp_path):
    apps = []

    def make(**overrides):
        app = create_app(Config(
            database_url=database.url, secret_key="unit-test-secret-key-long-enough-for-hs256",
            async_mode="threading", instance_path=str(tmp_path / "instance"),
            admin_username="admin", admin_password="admin-password-1", log_level="WARNING",
            db_pool_size=1, **overrides))
        prepare_database(app)
        context = app.app_context()
        context.push()
        apps.append(context)
        return app
    yield make
    for context in apps:
        db.session.remove()
        db.engine.dispose()
        context.pop()


@pytest.fixture
def sent(monkeypatch):
    """The ROLLBACKs and pings pymysql sends, counted."""
    counts = {"rollback": 0, "ping": 0}
    plain_rollback = pymysql.connections.Connection.rollback
    plain_ping = pymysql.connections.Connection.ping

    def rollback(self):
        counts["rollback"] += 1
        return plain_rollback(self)

    def ping(self, reconnect=True):
        counts["ping"] += 1
        return plain_ping(self, reconnect)
    monkeypatch.setattr(pymysql.connections.Connection, "rollback", rollback)
    monkeypatch.setattr(pymysql.connections.Connection, "ping", ping)
    return counts


def _thread_id() -> int:
    return db.session.execute(sa.text("SELECT CONNECTION_ID()")).scalar()


def _outside(database):
    return pymysql.connect(**MYSQL, database=database.name, autocommit=True)


def _kill(database, thread_id: int) -> None:
    """KILL a connection and wait until the server has closed it."""
    with _outside(database) as other, other.cursor() as cursor:
        cursor.execute(f"KILL CONNECTION {thread_id}")
        wait_until(lambda: not cursor.execute(
            "SELECT 1 FROM information_schema.processlist WHERE id = %s", (thread_id,)),
            what=f"connection {thread_id} gone")


def test_a_committed_transaction_goes_back_without_a_rollback_or_a_ping(make_app, sent):
    make_app()
    run_write(db.session, lambda s: s.execute(sa.text("UPDATE users SET available = 1")))
    db.session.remove()
    before = dict(sent)
    for _ in range(3):
        run_write(db.session, lambda s: s.execute(sa.text("UPDATE users SET available = 1")))
        db.session.remove()
    assert sent == before


def test_an_open_transaction_is_rolled_back_and_its_locks_released(make_app, database, sent):
    make_app()
    user_id = db.session.execute(sa.text("SELECT id FROM users")).scalar()
    db.session.commit()
    db.session.execute(sa.text("SELECT id FROM users WHERE id = :id FOR UPDATE"), {"id": user_id})
    before = sent["rollback"]
    db.session.remove()  # no commit: the connection goes back holding the row lock
    assert sent["rollback"] == before + 1
    with _outside(database) as other, other.cursor() as cursor:
        cursor.execute("SET SESSION innodb_lock_wait_timeout = 1")
        cursor.execute("SELECT id FROM users WHERE id = %s FOR UPDATE", (user_id,))
        assert cursor.fetchone() == (user_id,)


def test_a_failed_commit_still_ends_with_a_rollback_and_its_locks_released(
        make_app, database, monkeypatch):
    make_app()
    user_id = db.session.execute(sa.text("SELECT id FROM users")).scalar()
    db.session.commit()
    plain_commit = pymysql.connections.Connection.commit

    def failing_commit(self):  # the COMMIT never reaches the server
        raise pymysql.err.OperationalError(1180, "Got error during COMMIT")
    monkeypatch.setattr(pymysql.connections.Connection, "commit", failing_commit)
    with pytest.raises(sa.exc.OperationalError):
        run_write(db.session, lambda s: s.execute(
            sa.text("SELECT id FROM users WHERE id = :id FOR UPDATE"), {"id": user_id}))
    monkeypatch.setattr(pymysql.connections.Connection, "commit", plain_commit)
    db.session.remove()  # back to the pool: only its ROLLBACK can free the row
    with _outside(database) as other, other.cursor() as cursor:
        cursor.execute("SET SESSION innodb_lock_wait_timeout = 1")
        cursor.execute("SELECT id FROM users WHERE id = %s FOR UPDATE", (user_id,))
        assert cursor.fetchone() == (user_id,)


def test_an_idle_connection_is_pinged_and_a_dead_one_replaced(make_app, database, sent):
    make_app(db_ping_after=0.0)
    dead = _thread_id()
    db.session.remove()
    _kill(database, dead)
    before = sent["ping"]
    assert _thread_id() != dead  # no error: the ping found it dead, the pool opened another
    assert sent["ping"] > before


def test_a_connection_in_steady_use_is_not_pinged_so_its_death_shows_once(make_app, database):
    make_app(db_ping_after=3600.0)
    dead = _thread_id()
    db.session.remove()
    _kill(database, dead)
    with pytest.raises(DatabaseUnavailable):
        run_write(db.session, lambda s: s.execute(sa.text("UPDATE users SET available = 1")))
    db.session.remove()
    # SQLAlchemy dropped the dead connection; the next transaction gets a new one.
    assert _thread_id() != dead
