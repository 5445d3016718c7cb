"""Fixtures every test file shares.

`server` starts a real `python run.py` on a free port with a fresh database:
a SQLite file, or a new MariaDB schema when QC_TEST_DB=mysql (.ci/run runs
the suite both ways). `app`/`client` build an in-process app for unit tests.
"""
import pytest

from live import ROOT, Database, Reviewer, Server


@pytest.fixture
def database(tmp_path):
    db = Database(tmp_path)
    yield db
    db.drop()


@pytest.fixture
def start_server(database, tmp_path):
    """Factory: start_server(**env) -> a started Server (stopped at teardown);
    `code=` runs another checkout's run.py (an older release)."""
    servers = []

    def start(code=ROOT, **env):
        server = Server(database, tmp_path, code=code, **env).start()
        servers.append(server)
        return server
    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def server(start_server):
    return start_server()


@pytest.fixture
def connect(server):
    """Factory: connect(token) -> a connected Reviewer socket (closed at teardown)."""
    sockets = []

    def make(token, ack=True, on=None, reconnect=False, transports=None):
        reviewer = Reviewer(on or server, token, ack=ack, reconnect=reconnect)
        reviewer.connect(transports=transports)
        sockets.append(reviewer)
        return reviewer
    yield make
    for reviewer in sockets:
        reviewer.disconnect()


@pytest.fixture
def app(database, tmp_path):
    """An in-process app on the test database (no server, no background sweep)."""
    from qc_live import create_app, prepare_database
    from qc_live.config import Config
    application = create_app(Config(
        database_url=database.url, secret_key="unit-test-secret-key-long-enough-for-hs256",
        async_mode="threading", instance_path=str(tmp_path / "instance"),
        admin_username="admin", admin_password="admin-password-1", log_level="WARNING"))
    prepare_database(application)
    with application.app_context():
        yield application
        from qc_live.extensions import db
        db.session.remove()
        db.engine.dispose()


class Floor:
    """A QC floor in the test database, driven through the dispatch core
    itself (no server, no sockets): reviewers, processes, their sockets'
    rows, tasks. `dispatcher` is the app's, bound to its settings."""

    def __init__(self):
        from qc_live import state
        self.dispatcher = state.dispatcher()
        self.config = state.config()
        self.lease, self.grace = self.config.lease_seconds, self.config.grace_seconds

    @property
    def session(self):
        from qc_live.extensions import db
        return db.session

    def reviewer(self, name: str):
        """A new reviewer (the ORM object, committed)."""
        from qc_live.models import Role, User
        user = User(username=name, password_hash="x", role=Role.REVIEWER.value)
        self.session.add(user)
        self.session.commit()
        return user

    def process(self, process_id: str, heartbeat=None) -> None:
        """A server process whose lease was last renewed at `heartbeat` (now)."""
        from qc_live import presence
        from qc_live.database import run_write
        run_write(self.session, presence.register_process, process_id, "host", 1)
        if heartbeat is not None:
            self.lease_renewed(process_id, heartbeat)

    def lease_renewed(self, process_id: str, at) -> None:
        import sqlalchemy as sa

        from qc_live.models import ServerProcess
        self.session.execute(sa.update(ServerProcess).where(ServerProcess.id == process_id)
                             .values(heartbeat_at=at, started_at=at))
        self.session.commit()

    def socket(self, user, sid: str, process_id: str) -> None:
        """A /reviewer socket's row (what a connect records), without the offer."""
        from qc_live import presence
        from qc_live.database import run_write

        def record(session):
            row = presence.lock_user(session, user.id)
            presence.add_connection(session, sid, presence.REVIEWER_NAMESPACE, row,
                                    process_id, self.lease, self.grace)
        run_write(self.session, record)

    def socket_gone(self, sid: str) -> None:
        from qc_live import presence
        from qc_live.database import run_write
        run_write(self.session, presence.remove_connection, sid, self.lease)

    def tasks(self, *specs: dict) -> list[dict]:
        """Create tasks (dicts of TaskSpec fields; payload defaults to {})."""
        from qc_live.lifecycle import TaskSpec
        return self.dispatcher.create_tasks(
            self.session, [TaskSpec(**{"payload": {}, **s}) for s in specs], None).value

    def held(self, reviewer_id: int) -> dict | None:
        return self.dispatcher.current_task(self.session, reviewer_id)

    def task_row(self, task_id: int) -> dict:
        """The task as GET /tasks/<id> shows it, read afresh."""
        import sqlalchemy as sa

        from qc_live.models import Task, task_dict
        row = self.session.execute(sa.select(Task.__table__).where(Task.id == task_id)).first()
        self.session.rollback()
        return task_dict(row)


@pytest.fixture
def floor(app):
    """A Floor on the `app` fixture's database."""
    return Floor()
