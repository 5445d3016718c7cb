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
