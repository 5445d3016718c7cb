"""Starting the server: admin bootstrap, configuration errors, CLI, async modes."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from live import ROOT, Database, Reviewer, Server


def _first_run_files(tmp_path) -> list[Path]:
    return sorted((tmp_path / "instance").glob("first-run-admin*.txt"))


def test_first_run_without_admin_settings_prints_working_credentials(database, tmp_path):
    server = Server(database, tmp_path, QC_ADMIN_USERNAME="", QC_ADMIN_PASSWORD="")
    server.start()
    try:
        log = server.log()
        found = re.search(r"username: (\S+)\s+password: (\S+)", log)
        assert found, log
        assert server.login(found[1], found[2])["user"]["role"] == "admin"
        [note] = _first_run_files(tmp_path)
        assert f"password: {found[2]}\n" in note.read_text()
        assert oct(note.stat().st_mode & 0o777) == "0o600"
        # both say to delete the file once read
        assert str(note) in log and "delete" in log.lower()
        assert "delete this file" in note.read_text().lower()
    finally:
        server.stop()
    # a second start creates no second admin and prints nothing new
    again = Server(database, tmp_path, QC_ADMIN_USERNAME="", QC_ADMIN_PASSWORD="")
    again.log_path = tmp_path / "second.log"
    again.start()
    try:
        assert "password:" not in again.log()
        assert _first_run_files(tmp_path) == [note]
    finally:
        again.stop()


def test_a_second_database_does_not_overwrite_the_first_admin_password(tmp_path):
    """Two databases, one instance folder: each first-run admin keeps its own
    file (never overwritten), and both passwords work."""
    passwords = []
    databases = []
    try:
        for name in ("first", "second"):
            (tmp_path / name).mkdir()
            databases.append(Database(tmp_path / name))
            server = Server(databases[-1], tmp_path, QC_ADMIN_USERNAME="",
                            QC_ADMIN_PASSWORD="").start()
            try:
                passwords.append(re.search(r"password: (\S+)", server.log())[1])
            finally:
                server.stop()
        files = _first_run_files(tmp_path)
        assert len(files) == 2, files
        saved = [re.search(r"password: (\S+)", f.read_text())[1] for f in files]
        assert sorted(saved) == sorted(passwords) and passwords[0] != passwords[1]
        for database, password in zip(databases, passwords):
            server = Server(database, tmp_path, QC_ADMIN_USERNAME="",
                            QC_ADMIN_PASSWORD="").start()
            try:
                assert server.login("admin", password)["user"]["role"] == "admin"
            finally:
                server.stop()
    finally:
        for database in databases:
            database.drop()


def test_configured_admin_is_created_once(server):
    body = server.login("admin", "admin-password-1")
    assert body["user"] == {"id": body["user"]["id"], "username": "admin", "role": "admin"}
    assert body["token"] == body["access_token"]


def test_production_mode_refuses_to_start_without_a_secret_key(database, tmp_path):
    env = {**os.environ, "QC_ENV": "production", "QC_SECRET_KEY": "",
           "DATABASE_URL": database.url, "QC_INSTANCE_PATH": str(tmp_path)}
    result = subprocess.run([sys.executable, "run.py"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "QC_SECRET_KEY" in result.stderr


def test_secret_key_is_generated_once_and_kept(tmp_path):
    from qc_live.config import from_env
    env = {"QC_INSTANCE_PATH": str(tmp_path)}
    first, second = from_env(env).secret_key, from_env(env).secret_key
    assert first == second and len(first) > 40
    assert oct((tmp_path / "secret_key").stat().st_mode & 0o777) == "0o600"


def test_cli_creates_a_user_who_can_log_in(server, database, tmp_path):
    # The README's command, with the server's own async mode in the environment:
    # the CLI must not load eventlet/gevent (their warnings, unpatched loop).
    flask = str(Path(sys.executable).parent / "flask")
    env = {**os.environ, "DATABASE_URL": database.url, "QC_INSTANCE_PATH": str(tmp_path),
           "QC_SECRET_KEY": server.env["QC_SECRET_KEY"], "QC_ASYNC_MODE": "eventlet"}
    result = subprocess.run(
        [flask, "--app", "qc_live", "create-user", "carol",
         "--role", "supervisor", "--password", "carol-password"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    user_id = server.login("carol", "carol-password")["user"]["id"]
    assert result.stdout == f"created supervisor 'carol' (id {user_id})\n"
    assert server.login("carol", "carol-password")["user"]["role"] == "supervisor"
    again = subprocess.run(
        [flask, "--app", "qc_live", "create-user", "carol",
         "--password", "carol-password"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode != 0 and "taken" in again.stderr


def test_gevent_is_the_default_async_mode_of_run_py(database, tmp_path):
    """run.py alone patches for an async mode; any other entry (the CLI) builds
    the app in threading mode."""
    from qc_live.config import Config, from_env
    assert Config.async_mode == from_env({"QC_INSTANCE_PATH": str(tmp_path)}).async_mode \
        == "threading"
    server = Server(database, tmp_path)
    server.env.pop("QC_ASYNC_MODE", None)
    server.start()
    try:
        assert "(gevent," in server.log()
    finally:
        server.stop()


@pytest.mark.parametrize("mode", ["eventlet", "threading"])
def test_other_async_modes_are_one_setting_away(start_server, mode):
    server = start_server(QC_ASYNC_MODE=mode)
    assert f"({mode}," in server.log()
    alice = server.reviewer("alice")
    server.add_tasks([{"name": "one"}, {"name": "two"}])
    sock = Reviewer(server, alice["token"]).connect()
    try:
        first = sock.task()
        assert sock.complete(first["id"])["ok"] is True
        assert sock.task()["name"] == "two"
    finally:
        sock.disconnect()


def test_a_busy_port_is_named_in_one_line_before_anything_starts(server, tmp_path):
    env = {**server.env, "QC_INSTANCE_PATH": str(tmp_path / "second")}
    second = subprocess.run([sys.executable, "run.py"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert second.returncode == 2
    assert "listening" not in second.stdout and "Traceback" not in second.stderr
    [line] = second.stderr.strip().splitlines()
    assert f"port {server.port} is already in use" in line and f"PORT={server.port + 1}" in line
    # no lease taken by the process that could not serve; the first one carries on
    assert server.database.query("SELECT COUNT(*) FROM server_processes")[0][0] == 1
    assert server.request("GET", "/healthz").status_code == 200


def test_passwords_are_stored_with_scrypt_by_default(start_server):
    server = start_server(QC_PASSWORD_HASH_METHOD="")
    server.create_user("dana")
    [(stored,)] = server.database.query("SELECT password_hash FROM users WHERE username = %s",
                                        "dana")
    assert stored.startswith("scrypt:") and "reviewer-pass-1" not in stored
    assert server.login("dana")["user"]["username"] == "dana"


def test_a_test_server_that_loses_its_port_does_not_take_another_server_for_itself(
        server, tmp_path):
    """make test runs two sessions side by side, each picking free ports: both
    may pick one. The server that loses the bind must not pass the other's
    /healthz off as its own (its tests then worked on the other's database: a
    409 for a user never created there, a CI failure); it moves to a new port."""
    (tmp_path / "other").mkdir()
    other_db = Database(tmp_path / "other")
    try:
        late = Server(other_db, tmp_path / "other")
        late.port, late.url = server.port, server.url  # the same pick as `server`
        late.log_path = tmp_path / "other" / f"server-{server.port}.log"
        late.env["PORT"] = str(server.port)
        late.start()
        try:
            assert late.port != server.port
            assert late.request("GET", "/healthz").json()["process"] != \
                server.request("GET", "/healthz").json()["process"]
            late.create_user("alice")
            server.create_user("alice")  # each on its own database
        finally:
            late.stop()
    finally:
        other_db.drop()
