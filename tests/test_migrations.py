"""Schema migrations (qc_live/schema.py, migrations/): a database made by the last
release before migrations upgrades in place with its data; one that does not match,
or that a newer release made, is refused; several processes migrate once; the models
and the migrations never drift."""
import io
import os
import subprocess
import sys
import tarfile
import threading
import time

import pytest
import sqlalchemy as sa

from live import ADMIN, MYSQL, PASSWORD, ROOT, Reviewer, Server, database_kind, wait_until

# main as of the last release whose schema came from create_all (no migrations).
PRE_MIGRATIONS = "2206c89eabab5d410b225552c42170fb05604cd8"
mysql_only = pytest.mark.skipif(database_kind() != "mysql",
                                reason="several processes need a database server")


@pytest.fixture(scope="session")
def old_release(tmp_path_factory):
    """A checkout of the pre-migrations release, to run its run.py."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", PRE_MIGRATIONS],
                             capture_output=True)
    if archive.returncode != 0:
        pytest.fail(f"the upgrade tests run release {PRE_MIGRATIONS[:7]} from git: this "
                    f"needs a full clone ({archive.stderr.decode().strip()})")
    target = tmp_path_factory.mktemp("release-2206c89")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(target, filter="data")
    return target


def _server_env(database, tmp_path, **env):
    return {**Server(database, tmp_path).env, **{k: str(v) for k, v in env.items()}}


def _run_py(database, tmp_path, timeout=30, **env):
    """Run run.py expecting it to refuse: its exit code and output."""
    done = subprocess.run([sys.executable, str(ROOT / "run.py")], cwd=ROOT, timeout=timeout,
                          env=_server_env(database, tmp_path, **env), capture_output=True,
                          text=True)
    return done.returncode, done.stdout + done.stderr


def _flask(database, tmp_path, *args, **env):
    return subprocess.run([sys.executable, "-m", "flask", "--app", "qc_live", *args],
                          cwd=ROOT, env=_server_env(database, tmp_path, **env),
                          capture_output=True, text=True, timeout=60)


def _rows(database, table, columns):
    return database.query(f"SELECT {', '.join(columns)} FROM {table} ORDER BY 1")


def _head():
    from qc_live import schema
    return schema.head_revision()


TASK_COLUMNS = ("id", "external_id", "name", "payload", "priority", "status", "assignee_id",
                "holder_id", "created_at", "assigned_at", "acked_at", "completed_at",
                "deadline", "outcome", "note", "updated_at")
USER_COLUMNS = ("id", "username", "password_hash", "role", "active", "available",
                "idle_since", "offline_since", "token_version", "created_at")
EVENT_COLUMNS = ("id", "task_id", "kind", "reviewer_id", "actor_id", "at", "detail")


def _fill_like_a_floor(old):
    """Users, tasks in every status, history, live sockets and a lease, made by the
    old release's own API. Returns what the checks after the upgrade need."""
    admin = old.admin_token
    alice, bob, carol = (old.reviewer(n) for n in ("alice", "bob", "carol"))
    old.create_user("sue", role="supervisor")
    old.create_user("ALICE", password="other-password-2")  # that release allowed case twins
    dave = old.create_user("dave")
    old.request("DELETE", f"/users/{dave['id']}", admin, expect=204)

    a = Reviewer(old, alice["token"]).connect()
    a.next("idle")
    [t1] = old.add_tasks({"name": "passes", "priority": 5, "payload": {"sku": "A-1"}})
    assert a.task()["id"] == t1["id"]
    assert a.complete(t1["id"], "pass", note="fine")["ok"]
    a.next("idle")
    [t2] = old.add_tasks({"name": "fails", "external_id": "lot-2"})
    assert a.task()["id"] == t2["id"]
    assert a.complete(t2["id"], "fail", note="scratch")["ok"]
    a.next("idle")
    [t3] = old.add_tasks({"name": "cancelled while held"})
    assert a.task()["id"] == t3["id"]
    old.request("PATCH", f"/tasks/{t3['id']}", admin, json={"status": "cancelled"}, expect=200)
    assert a.next("task-revoked")["reason"] == "cancelled"
    assert a.call("set-availability", {"available": False})["ok"]
    [t4] = old.add_tasks({"name": "expires", "deadline": "2000-01-01T00:00:00Z"})
    wait_until(lambda: old.task(t4["id"])["status"] == "expired", what="expired")
    t5, t6, t7, t8 = old.add_tasks(
        {"name": "held by alice", "priority": 3, "payload": {"nested": {"a": [1, 2]}},
         "external_id": "lot-5"},
        {"name": "held by bob", "priority": 2, "deadline": "2999-01-01T00:00:00Z"},
        {"name": "waits first", "priority": 1},
        {"name": "waits second", "priority": 1, "external_id": "lot-8"})
    assert a.call("set-availability", {"available": True})["ok"]
    assert a.task()["id"] == t5["id"]
    old.request("POST", f"/tasks/{t5['id']}/release", admin, expect=200)
    assert a.task()["id"] == t5["id"]  # back in its place, and alice is the free one
    old.request("PATCH", f"/tasks/{t6['id']}", admin, json={"name": "held by bob (edited)"},
                expect=200)
    b = Reviewer(old, bob["token"]).connect()
    assert b.task()["id"] == t6["id"]
    old.request("PATCH", f"/tasks/{t2['id']}", admin, json={"name": "x"}, expect=409)
    wait_until(lambda: all(old.task(t["id"])["status"] == "assigned" for t in (t5, t6)) and
               old.database.query("SELECT COUNT(*) FROM tasks WHERE acked_at IS NULL AND "
                                  "status = 'assigned'")[0][0] == 0, what="offers acked")
    statuses = {row[0] for row in old.database.query("SELECT status FROM tasks")}
    assert statuses == {"pending", "assigned", "completed", "cancelled", "expired"}
    return {"alice": alice, "bob": bob, "carol": carol, "held": {alice["id"]: t5["id"],
            bob["id"]: t6["id"]}, "waiting": [t7["id"], t8["id"]], "sockets": (a, b)}


def test_a_database_of_the_last_release_upgrades_in_place_with_everything_in_it(
        database, start_server, old_release, tmp_path):
    old = start_server(code=old_release, QC_GRACE_SECONDS="120")
    floor = _fill_like_a_floor(old)
    old.kill()  # as in a real upgrade gone wrong: leases and sockets left behind
    for sock in floor["sockets"]:
        sock.client.disconnect()
    before = {t: _rows(database, t, c) for t, c in (
        ("tasks", TASK_COLUMNS), ("users", USER_COLUMNS), ("task_events", EVENT_COLUMNS))}
    old_process = database.query("SELECT id FROM server_processes")
    old_sockets = database.query("SELECT sid, user_id FROM connections ORDER BY sid")
    assert len(old_process) == 1 and len(old_sockets) == 2
    assert database.query("SELECT COUNT(*) FROM task_events")[0][0] >= 20

    # A long lease: the check below is that the upgrade leaves the dead release's
    # row, not that the new process's sweep has not reaped it yet (on a loaded
    # machine the start-up can outlast the default 15 s).
    new = start_server(QC_GRACE_SECONDS="120", QC_LEASE_SECONDS="600")
    assert "stamped a database made before migrations" in new.log()
    assert _version(database) == _head()
    after = {t: _rows(database, t, c) for t, c in (
        ("tasks", TASK_COLUMNS), ("users", USER_COLUMNS), ("task_events", EVENT_COLUMNS))}
    for table in before:
        assert after[table] == before[table], f"{table} changed in the upgrade"
    # Queues and skills (0003): the default queue only, every task in it, and every
    # reviewer at level 1 for it, so the floor dispatches as before (checked below).
    assert [tuple(r) for r in database.query(
        "SELECT name, min_level, relax_after_s FROM queues")] == [("default", 1, None)]
    reviewers = {r[0] for r in database.query("SELECT id FROM users WHERE role = 'reviewer'")}
    assert len(reviewers) == 5
    assert {tuple(r) for r in database.query("SELECT user_id, queue, level FROM skills")} == \
        {(r, "default", 1) for r in reviewers}
    assert [tuple(r) for r in database.query("SELECT DISTINCT queue FROM tasks")] == \
        [("default",)]
    # Audits (0006): every task a review, nothing audited, no gold; completed tasks
    # are final with their own verdict (their task.finalized went out with
    # task.completed), the others not yet; no queue is audited.
    assert [tuple(r) for r in database.query("SELECT audit_rate FROM queues")] == [(0,)]
    assert {tuple(r) for r in database.query(
        "SELECT kind, review_of, excluded_reviewer_id, expected_outcome, audit FROM tasks")} \
        == {("review", None, None, None, None)}
    finals = database.query("SELECT status, outcome, note, completed_at, final_outcome, "
                            "final_note, finalized_at FROM tasks ORDER BY id")
    assert sorted((r[1], r[2]) for r in finals if r[0] == "completed") == \
        [("fail", "scratch"), ("pass", "fine")]
    for status, outcome, note, completed_at, final_outcome, final_note, finalized_at in finals:
        assert (final_outcome, final_note, finalized_at) == \
            ((outcome, note, completed_at) if status == "completed" else (None, None, None))
    # The dead release's lease and sockets are still there, to expire as a crash's do.
    assert set(database.query("SELECT id FROM server_processes")) >= set(old_process)

    # Same tokens (same secret key), same tasks back, the queue in its order.
    for name in ("alice", "bob"):
        user = floor[name]
        sock = Reviewer(new, user["token"]).connect()
        assert sock.task()["id"] == floor["held"][user["id"]]
        sock.disconnect()
    carol = Reviewer(new, new.login("carol")["access_token"]).connect()
    assert carol.task()["id"] == floor["waiting"][0]
    carol.disconnect()
    new.login(*ADMIN)

    # Names are unique ignoring case now: the older twin keeps the key, the later
    # one its exact spelling only; another spelling is ambiguous, and taken.
    assert dict(database.query("SELECT username, username_key FROM users WHERE "
                               "username IN ('alice', 'ALICE')")) == \
        {"alice": "alice", "ALICE": None}
    assert new.login("alice")["user"]["id"] == floor["alice"]["id"]
    assert new.login("ALICE", "other-password-2")["user"]["username"] == "ALICE"
    assert new.request("POST", "/login", json={"username": "Alice",
                                               "password": PASSWORD}).status_code == 401
    taken = new.request("POST", "/users", new.admin_token,
                        json={"username": "Alice", "password": PASSWORD})
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "username_taken"


def test_a_pre_migrations_database_that_does_not_match_is_refused(database, tmp_path):
    engine = sa.create_engine(database.url)
    with engine.begin() as conn:
        _baseline().create_all(conn)
        conn.execute(sa.text("DROP INDEX ix_tasks_due" + (
            "" if database.kind == "sqlite" else " ON tasks")))
        conn.execute(sa.text("ALTER TABLE users ADD COLUMN nickname VARCHAR(20)"))
    engine.dispose()
    code, output = _run_py(database, tmp_path)
    assert code == 2, output
    assert "made before migrations existed" in output
    assert "ix_tasks_due" in output and "users.nickname" in output
    assert "Traceback" not in output
    assert "alembic_version" not in _tables(database)  # untouched


def test_the_index_an_older_release_dropped_is_dropped_at_the_stamp(start_server, database):
    engine = sa.create_engine(database.url)
    with engine.begin() as conn:
        _baseline().create_all(conn)
        conn.execute(sa.text("CREATE INDEX ix_tasks_assignee ON tasks (assignee_id, status)"))
    engine.dispose()
    start_server()
    assert _version(database) == _head()
    assert "ix_tasks_assignee" not in _indexes(database, "tasks")


def test_a_database_newer_than_the_code_is_refused_untouched(start_server, database, tmp_path):
    start_server().stop()
    database.query("UPDATE alembic_version SET version_num = '9999_from_a_newer_release'")
    code, output = _run_py(database, tmp_path)
    assert code == 2, output
    assert "9999_from_a_newer_release" in output and "newer release" in output
    assert "Traceback" not in output
    assert _version(database) == "9999_from_a_newer_release"
    # The hand command says the same, and does nothing either.
    done = _flask(database, tmp_path, "db", "upgrade")
    assert done.returncode != 0 and "newer release" in done.stdout + done.stderr


def test_with_automatic_upgrades_off_the_operator_upgrades_by_hand(start_server, database,
                                                                    tmp_path):
    code, output = _run_py(database, tmp_path, QC_AUTO_MIGRATE="0")
    assert code == 2, output
    assert "flask --app qc_live db upgrade" in output and "Traceback" not in output
    assert _tables(database) == set()  # nothing created
    done = _flask(database, tmp_path, "db", "upgrade", QC_AUTO_MIGRATE="0")
    assert done.returncode == 0, done.stderr
    server = start_server(QC_AUTO_MIGRATE="0")
    assert "database schema migrated" not in server.log()
    server.login(*ADMIN)
    current = _flask(database, tmp_path, "db", "current", QC_AUTO_MIGRATE="0")
    assert _head() in current.stdout


@mysql_only
def test_three_processes_starting_at_once_on_an_empty_database_migrate_once(database,
                                                                             tmp_path):
    servers = [Server(database, tmp_path) for _ in range(3)]
    errors = []

    def start(server):
        try:
            server.start(timeout=60)
        except Exception as exc:  # reported below, with the logs
            errors.append(exc)
    threads = [threading.Thread(target=start, args=(s,)) for s in servers]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        logs = [s.log() for s in servers]
        assert sum("database schema migrated: empty -> " in log for log in logs) == 1, logs
        assert not any("Traceback" in log or " ERROR " in log for log in logs), logs
        assert _version(database) == _head()
        for server in servers:
            assert server.request("GET", "/healthz").status_code == 200
            server.login(*ADMIN)
        assert database.query("SELECT COUNT(*) FROM users")[0][0] == 1
    finally:
        for server in servers:
            server.stop()


@pytest.mark.skipif(database_kind() != "sqlite", reason="SQLite's write lock")
def test_on_sqlite_a_migration_waits_for_a_write_transaction_to_end(database, tmp_path):
    import sqlite3
    path = database.url.removeprefix("sqlite:///")
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")  # as the server leaves it
    writer.execute("BEGIN IMMEDIATE")  # a write transaction, open
    upgrade = subprocess.Popen([sys.executable, "-m", "flask", "--app", "qc_live", "db",
                                "upgrade"], cwd=ROOT, env=_server_env(database, tmp_path),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(2)
        assert upgrade.poll() is None, upgrade.stdout.read()  # waiting for the writer
        writer.execute("COMMIT")
        assert upgrade.wait(30) == 0, upgrade.stdout.read()
    finally:
        if upgrade.poll() is None:
            upgrade.kill()
        writer.close()
    assert {"users", "tasks", "alembic_version"} <= _tables(database)


def test_the_models_and_the_migrations_never_drift(app):
    from qc_live import schema
    from qc_live.extensions import db
    with db.engine.connect() as conn:
        assert schema.current_revision(conn) == schema.head_revision()
        assert schema.differences(conn, db.metadata) == []


def test_the_drift_check_sees_a_model_change_without_a_migration(app):
    from qc_live import schema
    from qc_live.extensions import db
    changed = sa.MetaData()
    for table in db.metadata.tables.values():
        table.to_metadata(changed)
    tasks = changed.tables["tasks"]
    tasks.append_column(sa.Column("forgotten", sa.String(10)))
    sa.Index("ix_forgotten", tasks.c.status, tasks.c.forgotten)
    with db.engine.connect() as conn:
        found = schema.differences(conn, changed)
    assert any("tasks.forgotten" in d for d in found), found
    assert any("ix_forgotten" in d for d in found), found


@mysql_only
def test_usernames_and_external_ids_compare_exactly_on_mariadb(app, database):
    collations = dict(database.query(
        "SELECT CONCAT(TABLE_NAME, '.', COLUMN_NAME), COLLATION_NAME FROM "
        "information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND COLUMN_NAME IN "
        "('username', 'external_id')", database.name))
    assert collations == {"users.username": "utf8mb4_nopad_bin",
                          "tasks.external_id": "utf8mb4_nopad_bin"}
    types = dict(database.query(
        "SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS WHERE "
        "TABLE_SCHEMA = %s AND TABLE_NAME = 'tasks'", database.name))
    assert types["created_at"] == "datetime(6)"


def _baseline():
    from qc_live import schema
    module = schema.script_directory().get_revision(schema.BASELINE).module
    dialect = sa.create_engine("sqlite://").dialect if database_kind() == "sqlite" else \
        _mysql_dialect()
    return module.schema(dialect)


def _mysql_dialect():
    engine = sa.create_engine("mysql+pymysql://{user}@{host}:{port}/".format(**MYSQL))
    with engine.connect() as conn:
        dialect = conn.dialect
    engine.dispose()
    return dialect


def _tables(database) -> set:
    if database.kind == "sqlite":
        if not os.path.exists(database.url.removeprefix("sqlite:///")):
            return set()
        rows = database.query("SELECT name FROM sqlite_master WHERE type = 'table'")
    else:
        rows = database.query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE "
                              "TABLE_SCHEMA = %s", database.name)
    return {r[0] for r in rows}


def _indexes(database, table) -> set:
    if database.kind == "sqlite":
        rows = database.query("SELECT name FROM sqlite_master WHERE type = 'index' AND "
                              "tbl_name = %s", table)
    else:
        rows = database.query("SELECT INDEX_NAME FROM information_schema.STATISTICS WHERE "
                              "TABLE_SCHEMA = %s AND TABLE_NAME = %s", database.name, table)
    return {r[0] for r in rows}



def _version(database) -> str | None:
    rows = database.query("SELECT version_num FROM alembic_version")
    return rows[0][0] if len(rows) == 1 else rows
