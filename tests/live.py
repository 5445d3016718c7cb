"""Drive a real qc_live server: a `run.py` subprocess, REST via requests, and
reviewers/boards via python-socketio clients (real network, real acks)."""
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pymysql
import requests
import socketio

ROOT = Path(__file__).resolve().parent.parent
ADMIN = ("admin", "admin-password-1")
PASSWORD = "reviewer-pass-1"
MYSQL = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def database_kind() -> str:
    return os.environ.get("QC_TEST_DB", "sqlite")


class Database:
    """A fresh database for one test: a SQLite file or a new MariaDB schema."""

    def __init__(self, tmp_path: Path):
        self.kind = database_kind()
        if self.kind == "sqlite":
            self.url = f"sqlite:///{tmp_path / 'qc.sqlite3'}"
        elif self.kind == "mysql":
            self.name = f"qc_test_{uuid.uuid4().hex[:12]}"
            # No skip: in CI an unreachable MariaDB fails the test.
            with pymysql.connect(**MYSQL) as conn:
                conn.cursor().execute(f"CREATE DATABASE {self.name} CHARACTER SET utf8mb4")
            self.url = f"mysql+pymysql://root@127.0.0.1:3306/{self.name}"
        else:
            raise RuntimeError(f"QC_TEST_DB must be sqlite or mysql, not {self.kind!r}")

    def drop(self) -> None:
        if self.kind == "mysql":
            with pymysql.connect(**MYSQL) as conn:
                conn.cursor().execute(f"DROP DATABASE IF EXISTS {self.name}")

    def query(self, sql: str, *args):
        """Query the database directly (tests check invariants underneath the API)."""
        if self.kind == "sqlite":
            import sqlite3
            with sqlite3.connect(self.url.removeprefix("sqlite:///")) as conn:
                return conn.execute(sql.replace("%s", "?"), args).fetchall()
        with pymysql.connect(**MYSQL, database=self.name) as conn:
            cur = conn.cursor()
            cur.execute(sql, args)
            rows = cur.fetchall()
            conn.commit()  # for the tests that change something underneath
            return rows


class ApiError(AssertionError):
    pass


class PortTaken(RuntimeError):
    """The server could not listen: its port was taken meanwhile."""


class Server:
    """One `python run.py` process; can be stopped, SIGKILLed and started again."""

    def __init__(self, database: Database, tmp_path: Path, code: Path = ROOT, **env):
        self.database = database
        self.code = code  # the checkout whose run.py runs (tests of upgrades use an old one)
        self.tmp_path = tmp_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "PORT": str(self.port), "HOST": "127.0.0.1",
            "DATABASE_URL": database.url,
            "QC_SECRET_KEY": "test-secret-key-that-is-long-enough-for-hs256",
            "QC_ADMIN_USERNAME": ADMIN[0], "QC_ADMIN_PASSWORD": ADMIN[1],
            "QC_INSTANCE_PATH": str(tmp_path / "instance"),
            "QC_GRACE_SECONDS": "2", "QC_SWEEP_SECONDS": "0.2",
            # A lease of 10 heartbeats: an overloaded CI machine must not make a
            # live process look dead (tests of expiry set a shorter one).
            "QC_HEARTBEAT_SECONDS": "1", "QC_LEASE_SECONDS": "10",
            # Cheap hashing keeps the suite fast; test_startup checks the default.
            "QC_PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000",
            "PYTHONUNBUFFERED": "1",
            **{k: str(v) for k, v in env.items()},
        }
        self.process = None
        self.log_path = tmp_path / f"server-{self.port}.log"
        self.http = requests.Session()
        self._admin_token = None
        self.started_once = False

    # -- lifecycle --
    def start(self, timeout: float = 20) -> "Server":
        """Start run.py and wait until it answers /healthz as itself.

        Two test sessions run side by side (make test) and each picks free
        ports: both may pick the same one. The server that loses the bind
        exits, and a /healthz answered by the other session's server must not
        pass for ours (its tests would then act on the other's database). A
        first start that loses the port tries another one."""
        for attempt in range(5):
            try:
                return self._start(timeout)
            except PortTaken:
                if self.started_once or attempt == 4:
                    raise
                self.port = free_port()
                self.url = f"http://127.0.0.1:{self.port}"
                self.env["PORT"] = str(self.port)

    def _start(self, timeout: float) -> "Server":
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen([sys.executable, str(self.code / "run.py")], cwd=self.code,
                                        env=self.env, stdout=log, stderr=subprocess.STDOUT)
        listening = re.compile(rf"listening on {re.escape(self.url)} \(.*process (\w+)\)")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                if "already in use" in self.log():
                    raise PortTaken(self.log())
                raise RuntimeError(f"server exited early:\n{self.log()}")
            printed = listening.search(self.log_path.read_bytes()[offset:].decode(errors="replace"))
            try:
                answer = printed and requests.get(self.url + "/healthz", timeout=1)
                if answer and answer.status_code == 200 \
                        and answer.json().get("process") == printed[1]:
                    self.started_once = True
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server did not start:\n{self.log()}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        """SIGKILL: no goodbye, no cleanup — a crash."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    # -- REST --
    def request(self, method: str, path: str, token: str | None = None, expect=None,
                **kwargs):
        headers = kwargs.pop("headers", {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        response = self.http.request(method, self.url + path, headers=headers, timeout=30,
                                     **kwargs)
        if expect is not None and response.status_code != expect:
            raise ApiError(f"{method} {path}: expected {expect}, got {response.status_code}: "
                           f"{response.text[:500]}")
        return response

    def login(self, username: str, password: str = PASSWORD) -> dict:
        return self.request("POST", "/login", json={"username": username,
                                                    "password": password}, expect=200).json()

    @property
    def admin_token(self) -> str:
        if self._admin_token is None:
            self._admin_token = self.login(*ADMIN)["access_token"]
        return self._admin_token

    def create_user(self, username: str, role: str = "reviewer", password: str = PASSWORD):
        return self.request("POST", "/users", self.admin_token, expect=201,
                            json={"username": username, "password": password,
                                  "role": role}).json()

    def reviewer(self, username: str) -> dict:
        """Create a reviewer and log it in: {"id", "token", ...}."""
        user = self.create_user(username)
        return {**user, "token": self.login(username)["access_token"]}

    def add_tasks(self, *tasks, token: str | None = None) -> list[dict]:
        body = list(tasks) if len(tasks) != 1 else tasks[0]
        return self.request("POST", "/tasks", token or self.admin_token, json=body,
                            expect=201).json()["tasks"]

    def task(self, task_id: int) -> dict:
        """The task object, as everyone sees it (without the `waiting` a
        supervisor also gets for a pending task: test_queues_api.py checks it)."""
        task = self.request("GET", f"/tasks/{task_id}", self.admin_token, expect=200).json()
        task.pop("waiting", None)
        return task


class Reviewer:
    """A reviewer's socket: records every event, acks `task-assigned`."""

    def __init__(self, server: Server, token: str, ack: bool = True, reconnect: bool = False):
        self.server = server
        self.token = token
        self.events = queue.Queue()
        self.log = []  # (kind, data) in arrival order, acks included
        self.lock = threading.Lock()
        self.client = socketio.Client(reconnection=reconnect, reconnection_delay=0.2,
                                      reconnection_delay_max=1)
        self.connect_error = None
        ns = "/reviewer"

        def record(kind):
            def handler(data=None):
                with self.lock:
                    self.log.append((kind, data))
                self.events.put((kind, data))
                return {"ok": True} if ack else None
            return handler

        for kind in ("task-assigned", "idle", "task-revoked"):
            self.client.on(kind, record(kind), namespace=ns)

        def on_connect_error(data=None):
            self.connect_error = data
        self.client.on("connect_error", on_connect_error, namespace=ns)

    def connect(self, transports=None) -> "Reviewer":
        self.client.connect(self.server.url, namespaces=["/reviewer"],
                            auth={"token": self.token}, transports=transports,
                            wait_timeout=10)
        return self

    def disconnect(self) -> None:
        if self.client.connected:
            self.client.disconnect()

    def next(self, kind: str | None = None, timeout: float = 10):
        """The next event (of `kind`, skipping others); fails after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {kind or 'event'} within {timeout}s")
            try:
                got, data = self.events.get(timeout=remaining)
            except queue.Empty:
                raise AssertionError(f"no {kind or 'event'} within {timeout}s") from None
            if kind is None or got == kind:
                return (got, data) if kind is None else data

    def task(self, timeout: float = 10) -> dict:
        return self.next("task-assigned", timeout)["task"]

    def quiet(self, seconds: float = 0.5) -> list:
        """Events that arrive within `seconds` (expected: none)."""
        time.sleep(seconds)
        out = []
        while not self.events.empty():
            out.append(self.events.get())
        return out

    def call(self, event: str, data, timeout: float = 10):
        """Emit with an ack and wait for it. The ack is logged by the client's
        read thread, so `log` holds acks and pushes in true arrival order."""
        done = threading.Event()
        replies = []

        def on_ack(*args):
            reply = args[0] if args else None
            with self.lock:
                self.log.append(("ack:" + event, reply))
            replies.append(reply)
            done.set()

        # python-socketio reads each message in its own thread: a push that
        # follows a (re)connect can be handled before the namespace counts as
        # connected, and emitting then raises BadNamespaceError.
        deadline = time.monotonic() + timeout
        while "/reviewer" not in self.client.namespaces and time.monotonic() < deadline:
            time.sleep(0.01)
        self.client.emit(event, data, namespace="/reviewer", callback=on_ack)
        if not done.wait(max(0.0, deadline - time.monotonic())):
            raise AssertionError(f"no ack for {event} within {timeout}s")
        return replies[0]

    def complete(self, task_id: int, outcome: str = "pass", **extra):
        return self.call("task-complete", {"task_id": task_id, "outcome": outcome, **extra})


def wait_until(predicate, timeout: float = 10, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what} not reached within {timeout}s")
