"""The one-command local cluster: N processes behind nginx, used like one server."""
import os
import shutil
import signal
import subprocess
import sys
import uuid

import pymysql
import pytest
import requests

from live import MYSQL, PASSWORD, ROOT, Reviewer, database_kind, free_port

pytestmark = [
    pytest.mark.skipif(database_kind() != "mysql",
                       reason="a cluster shares a server database; SQLite is for one process"),
    pytest.mark.skipif(shutil.which("nginx") is None and not os.path.exists("/usr/sbin/nginx"),
                       reason="nginx is not installed (make test installs it)"),
]


class Via:
    """Enough of tests.live.Server to use the Reviewer helper through nginx."""

    def __init__(self, url):
        self.url = url


def test_cluster_behind_nginx_serves_login_push_and_survives_a_dead_process(tmp_path):
    name = f"qc_cluster_{uuid.uuid4().hex[:8]}"
    port = free_port()
    env = {**os.environ, "QC_ADMIN_USERNAME": "admin", "QC_ADMIN_PASSWORD": "admin-password-1",
           "QC_SECRET_KEY": "cluster-test-secret-key-long-enough-for-hs256",
           "QC_INSTANCE_PATH": str(tmp_path / "instance"), "QC_LEASE_SECONDS": "5",
           "QC_HEARTBEAT_SECONDS": "1", "QC_GRACE_SECONDS": "30",
           "QC_MESSAGE_QUEUE_CHANNEL": name, "QC_PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000"}
    cluster = subprocess.Popen(
        [sys.executable, "scripts/cluster.py", "--processes", "2", "--port", str(port),
         "--database-url", f"mysql+pymysql://root@127.0.0.1:3306/{name}",
         "--run-dir", str(tmp_path / "cluster")],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = cluster.stdout.readline()
        assert "qc_live cluster: http://127.0.0.1:" in line, line
        url = f"http://127.0.0.1:{port}"
        admin = requests.post(f"{url}/login", json={"username": "admin",
                              "password": "admin-password-1"}).json()["access_token"]
        auth = {"Authorization": f"Bearer {admin}"}
        requests.post(f"{url}/users", headers=auth, json={
            "username": "alice", "password": PASSWORD, "role": "reviewer"}).raise_for_status()
        token = requests.post(f"{url}/login", json={"username": "alice",
                              "password": PASSWORD}).json()["access_token"]
        # default transports: long-polling first, then the WebSocket upgrade, via nginx
        sock = Reviewer(Via(url), token, reconnect=True).connect()
        sock.next("idle")
        requests.post(f"{url}/tasks", headers=auth,
                      json=[{"name": "one"}, {"name": "two"}]).raise_for_status()
        held = sock.task()
        # which process holds the socket? kill it; nginx sends the reconnect to the other
        ports = [port + 1, port + 2]
        holder = next(p for p in ports if pymysql_one(
            name, "SELECT COUNT(*) FROM connections c JOIN server_processes s "
                  "ON s.id = c.process_id WHERE s.pid = %s", pid_on(p)))
        os.kill(pid_on(holder), signal.SIGKILL)
        assert sock.task(timeout=20)["id"] == held["id"]  # back, same task
        assert sock.complete(held["id"])["ok"] is True
        assert sock.task()["name"] == "two"
        sock.disconnect()
    finally:
        cluster.send_signal(signal.SIGTERM)
        try:
            cluster.wait(20)
        except subprocess.TimeoutExpired:
            cluster.kill()
        with pymysql.connect(**MYSQL) as conn:
            conn.cursor().execute(f"DROP DATABASE IF EXISTS {name}")


def pid_on(port: int) -> int:
    out = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True,
                         text=True).stdout
    return int(out.split("pid=")[1].split(",")[0])


def pymysql_one(database: str, sql: str, *args):
    with pymysql.connect(**MYSQL, database=database) as conn:
        cur = conn.cursor()
        cur.execute(sql, args)
        return cur.fetchone()[0]
