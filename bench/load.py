#!/usr/bin/env python3
"""The load client: python-socketio AsyncClients (aiohttp) and aiohttp REST
calls, driving real server processes over loopback. It shares no code with
qc_live; it only speaks the wire contract.

One command per benchmark; each starts its own servers (qc_live through
bench/qc_server.py, the baseline bench/echo_server.py), its own databases
(a SQLite file in a temporary folder, a MariaDB schema qc_bench_<random>,
dropped at the end), and measures every figure in the same run as its
baseline:

    .venv/bin/python bench/load.py latency   # complete -> next task at 1/50/200 reviewers
    .venv/bin/python bench/load.py sockets   # 5,000 idle sockets: memory, bulk push to all
    .venv/bin/python bench/load.py intake    # POST /tasks (and /tasks/import) for 100,000 tasks
    .venv/bin/python bench/load.py all       # the three, one after the other

Common options: --modes eventlet,gevent  --dbs sqlite,mysql  --json PATH;
latency also takes --tcp nodelay,nagle (the echo server with TCP_NODELAY, as qc_live sets it
since 00cc71c, or without it, as eventlet and gevent serve by default).
`--help` after a command lists its own. Results: a Markdown table on stdout,
a JSON file and the servers' logs under bench/results/. Method and results:
docs/benchmarks.md.

Every loop is bounded in count and time; servers and databases are cleaned
up on exit, also on Ctrl-C.
"""
import argparse
import asyncio
import gc
import json
import os
import platform
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from importlib import metadata
from pathlib import Path

import aiohttp
import pymysql
import socketio

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
NS = "/reviewer"
MYSQL = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}
ADMIN = ("admin", "bench-admin-password-1")
# Count qc_live's SQL statements (GET /_bench/sql); --no-sql-stats turns it off.
SQL_STATS = {"on": True}
# Where qc_live's server runs from (--qc-root: another commit's tree, for bench/compare.py);
# the client and the echo server are always this tree's.
QC_ROOT = {"path": ROOT}
PASSWORD = "bench-reviewer-pass-1"
SECRET = "bench-secret-key-" + "k" * 48
CLK_TCK = os.sysconf("SC_CLK_TCK")
# Idle keep-alive connections are given up before qc_live closes them (QC_HEADER_TIMEOUT,
# 10 s; aiohttp would keep them 15 s and now and then send a request on one the server
# has just closed: ServerDisconnectedError).
KEEPALIVE_S = 5
PAGE = os.sysconf("SC_PAGE_SIZE")


def log(*parts) -> None:
    print(time.strftime("%H:%M:%S"), *parts, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values, q: float):
    """Nearest-rank percentile of `values` (q in 0..100); None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def ms(seconds):
    return None if seconds is None else round(seconds * 1000, 3)


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- databases and servers ------------------------------------------------------

class Database:
    """A fresh SQLite file or MariaDB schema for one server."""

    def __init__(self, kind: str, workdir: Path):
        self.kind = kind
        if kind == "sqlite":
            self.path = workdir / f"qc-{uuid.uuid4().hex[:8]}.sqlite3"
            self.url = f"sqlite:///{self.path}"
        elif kind == "mysql":
            self.name = f"qc_bench_{uuid.uuid4().hex[:12]}"
            with pymysql.connect(**MYSQL) as conn:
                conn.cursor().execute(f"CREATE DATABASE {self.name} CHARACTER SET utf8mb4")
            self.url = f"mysql+pymysql://root@127.0.0.1:3306/{self.name}"
        else:
            raise ValueError(f"database must be sqlite or mysql, not {kind!r}")

    @property
    def label(self) -> str:
        return {"sqlite": "SQLite", "mysql": "MariaDB"}[self.kind]

    def drop(self) -> None:
        if self.kind == "mysql":
            with pymysql.connect(**MYSQL) as conn:
                conn.cursor().execute(f"DROP DATABASE IF EXISTS {self.name}")
        else:
            for suffix in ("", "-wal", "-shm"):
                Path(str(self.path) + suffix).unlink(missing_ok=True)


class Server:
    """A server process: qc_live (bench/qc_server.py) or the echo baseline."""

    def __init__(self, kind: str, mode: str, workdir: Path, database: Database | None = None,
                 env: dict | None = None):
        self.kind, self.mode, self.database = kind, mode, database
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        base = {**os.environ, "PORT": str(self.port), "HOST": "127.0.0.1",
                "QC_ASYNC_MODE": mode, "PYTHONUNBUFFERED": "1",
                "QC_BENCH_MAX_SIZE": "20000", "QC_MAX_CONNECTIONS": "20000"}  # echo, qc_live
        if kind == "qc":
            base.update({
                "DATABASE_URL": database.url,
                "QC_SECRET_KEY": SECRET,
                "QC_ADMIN_USERNAME": ADMIN[0], "QC_ADMIN_PASSWORD": ADMIN[1],
                "QC_INSTANCE_PATH": str(workdir / f"instance-{self.port}"),
                # Seeding thousands of reviewers through the API: cheap hashing.
                "QC_PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000",
                "QC_ACCESS_TOKEN_MINUTES": "600",
                # Reviewers disconnect between phases and come back to their task.
                "QC_GRACE_SECONDS": "900",
                "QC_BENCH_EVENT_LIMIT": "off",
                "QC_BENCH_SQL_STATS": "1" if SQL_STATS["on"] else "",
            })
            self.root = Path(QC_ROOT["path"])
            self.argv = [sys.executable, str(self.root / "bench" / "qc_server.py")]
        else:
            self.root = ROOT
            self.argv = [sys.executable, str(BENCH / "echo_server.py")]
        base.update(env or {})
        self.env = base
        self.process = None
        self.log_path = workdir / f"{kind}-{mode}-{self.port}.log"

    @property
    def label(self) -> str:
        if self.kind == "echo":
            return "echo"
        return f"qc_live/{self.database.label}"

    def start(self, timeout: float = 60) -> "Server":
        import urllib.request
        with open(self.log_path, "ab") as out:
            self.process = subprocess.Popen(self.argv, cwd=self.root, env=self.env, stdout=out,
                                            stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.label} exited early:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2) as answer:
                    if answer.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.label} did not start:\n{self.log()}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK


class Cleanup:
    def __init__(self):
        self.servers, self.databases = [], []

    def server(self, *args, **kwargs) -> Server:
        server = Server(*args, **kwargs)
        self.servers.append(server)
        return server.start()

    def database(self, kind: str, workdir: Path) -> Database:
        db = Database(kind, workdir)
        self.databases.append(db)
        return db

    def stop(self, server: Server) -> None:
        server.stop()

    def close(self) -> None:
        for server in self.servers:
            try:
                server.stop()
            except Exception as exc:  # keep cleaning
                log("could not stop", server.label, exc)
        for db in self.databases:
            try:
                db.drop()
            except Exception as exc:
                log("could not drop", db.url, exc)


# --- REST -------------------------------------------------------------------

class Api:
    def __init__(self, http: aiohttp.ClientSession, server: Server):
        self.http, self.server = http, server
        self.admin = None

    async def call(self, method, path, token=None, expect=None, timeout=600, **kwargs):
        headers = kwargs.pop("headers", {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        async with self.http.request(method, self.server.url + path, headers=headers,
                                     timeout=aiohttp.ClientTimeout(total=timeout),
                                     **kwargs) as answer:
            body = await answer.read()
            status = answer.status
        if expect is not None and status != expect:
            raise RuntimeError(f"{method} {path}: {status} {body[:300]!r}")
        try:
            return status, json.loads(body) if body else None
        except ValueError:
            return status, body

    async def login(self, username, password=PASSWORD) -> str:
        _, body = await self.call("POST", "/login", json={"username": username,
                                                          "password": password}, expect=200)
        return body["access_token"]

    async def login_admin(self) -> str:
        self.admin = await self.login(*ADMIN)
        return self.admin

    async def reviewers(self, count: int, prefix: str = "r", concurrency: int = 8) -> list[str]:
        """Create `count` reviewers and log each in: their access tokens."""
        tokens = [None] * count
        queue = asyncio.Queue()
        for n in range(count):
            queue.put_nowait(n)

        async def worker():
            while True:
                try:
                    n = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                name = f"{prefix}{n:05d}"
                await self.call("POST", "/users", self.admin, expect=201,
                                json={"username": name, "password": PASSWORD,
                                      "role": "reviewer"})
                tokens[n] = await self.login(name)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return tokens

    async def add_tasks(self, count: int, tag: str, batch: int = 5000) -> None:
        for start in range(0, count, batch):
            rows = task_rows(tag, start, min(count, start + batch))
            await self.call("POST", "/tasks", self.admin, json=rows, expect=201)

    async def sql_stats(self) -> dict | None:
        if self.server.kind != "qc" or not SQL_STATS["on"]:
            return None
        _, body = await self.call("GET", "/_bench/sql", expect=200)
        return body


def task_rows(tag: str, start: int, stop: int) -> list[dict]:
    return [{"name": f"Check lot {n}", "external_id": f"{tag}-{n}",
             "payload": {"sku": f"A-{n % 1000}", "lot": n}} for n in range(start, stop)]


# --- reviewers ----------------------------------------------------------------

class Reviewer:
    """One reviewer socket. Records when each push arrives; acks task-assigned."""

    def __init__(self, server: Server, token: str | None, http: aiohttp.ClientSession,
                 idle: bool = False):
        self.server = server
        self.auth = {"token": token} if token else {}
        if idle:
            self.auth["idle"] = True  # the echo server's cue to push `idle` on connect
        self.sio = socketio.AsyncClient(reconnection=False, http_session=http,
                                        handle_sigint=False)
        self.events = asyncio.Queue()
        self.first_task_at = None
        self.repeats = 0
        self.sio.on("task-assigned", self._task, namespace=NS)
        self.sio.on("idle", self._idle, namespace=NS)
        self.sio.on("task-revoked", self._revoked, namespace=NS)

    async def _task(self, data):
        now = time.perf_counter()
        if self.first_task_at is None:
            self.first_task_at = now
        self.events.put_nowait(("task", now, data["task"]["id"]))
        return {"ok": True}

    async def _idle(self, data):
        self.events.put_nowait(("idle", time.perf_counter(), data.get("reason")))

    async def _revoked(self, data):
        self.events.put_nowait(("revoked", time.perf_counter(), data.get("task_id")))

    async def connect(self, timeout: float = 60) -> None:
        await self.sio.connect(self.server.url, namespaces=[NS], auth=self.auth,
                               transports=["websocket"], wait_timeout=timeout)

    async def next_event(self, timeout: float):
        return await asyncio.wait_for(self.events.get(), timeout)

    async def next_task(self, timeout: float, seen=()):
        """(time, task id) of the next task-assigned; raises on idle or time-out.
        A push of a task in `seen` (one already shown or done: qc_live may send
        the held task twice around a connect) is counted and skipped."""
        while True:
            kind, at, value = await self.next_event(timeout)
            if kind == "revoked":
                continue
            if kind != "task":
                raise RuntimeError(f"expected task-assigned, got {kind} ({value})")
            if value in seen:
                self.repeats += 1
                continue
            return at, value

    def drain(self) -> None:
        while not self.events.empty():
            self.events.get_nowait()

    async def disconnect(self) -> None:
        try:
            await self.sio.disconnect()
        except Exception:
            pass


async def bounded(coros, limit: int):
    """Run coroutines with at most `limit` at once; results in order."""
    gate = asyncio.Semaphore(limit)

    async def one(coro):
        async with gate:
            return await coro

    return await asyncio.gather(*(one(c) for c in coros), return_exceptions=True)


# --- 1. complete -> next task ---------------------------------------------------

async def work_loop(reviewer: Reviewer, task_id: int, warm_until: float, end: float,
                    timeout: float):
    """Complete, wait for the next task, again, until `end`. Returns samples
    (t_emit, t_ack, t_next) and an error (or None)."""
    samples = []
    loop = asyncio.get_running_loop()
    while time.perf_counter() < end:
        acked = loop.create_future()

        def on_ack(*args, _f=acked):
            if not _f.done():
                _f.set_result((time.perf_counter(), args[0] if args else None))

        t0 = time.perf_counter()
        await reviewer.sio.emit("task-complete", {"task_id": task_id, "outcome": "pass"},
                                namespace=NS, callback=on_ack)
        try:
            # The ack first: a refused completion brings no next task, and its
            # error is what to report (not a time-out waiting for the task).
            t_ack, ack = await asyncio.wait_for(acked, timeout)
            if not (isinstance(ack, dict) and ack.get("ok")):
                return samples, f"bad ack: {ack}"
            t_next, next_id = await reviewer.next_task(timeout, seen=(task_id,))
        except Exception as exc:
            return samples, f"{exc.__class__.__name__}: {exc or 'no answer in time'}"
        samples.append((t0, t_ack, t_next))
        task_id = next_id
    return samples, None


async def work_phase(server: Server, api: Api, http, tokens: list, n: int, seconds: float,
                     warmup: float, timeout: float = 30) -> dict:
    reviewers = [Reviewer(server, tokens[i] if tokens else None, http) for i in range(n)]
    problems = [r for r in await bounded((r.connect() for r in reviewers), 50) if r]
    if problems:
        raise RuntimeError(f"{server.label}: {len(problems)} connects failed: {problems[0]!r}")
    firsts = await asyncio.gather(*(r.next_task(timeout) for r in reviewers))
    await api.sql_stats()  # reset the counters
    gc.collect()
    start = time.perf_counter()
    warm_until, end = start + warmup, start + warmup + seconds
    marks = {}

    async def meter():
        await asyncio.sleep(max(0, warm_until - time.perf_counter()))
        marks["cpu0"], marks["client0"] = server.cpu_s(), client_cpu()
        marks["load0"] = load_average()
        await asyncio.sleep(max(0, end - time.perf_counter()))
        marks["cpu1"], marks["client1"] = server.cpu_s(), client_cpu()
        marks["load1"] = load_average()

    meter_task = asyncio.ensure_future(meter())
    outcomes = await asyncio.gather(*(work_loop(r, task_id, warm_until, end, timeout)
                                      for r, (_, task_id) in zip(reviewers, firsts)))
    await meter_task
    sql = await api.sql_stats()
    await bounded((r.disconnect() for r in reviewers), 100)

    samples = [s for got, _ in outcomes for s in got]
    errors = [e for _, e in outcomes if e]
    measured = [s for s in samples if s[0] >= warm_until]
    latency = [t_next - t0 for t0, _, t_next in measured]
    ack_latency = [t_ack - t0 for t0, t_ack, _ in measured]
    done_in_window = sum(1 for _, _, t_next in samples if warm_until <= t_next <= end)
    result = {
        "server": server.label, "reviewers": n, "completions": len(measured),
        "rate": round(done_in_window / seconds, 1),
        "p50_ms": ms(pct(latency, 50)), "p90_ms": ms(pct(latency, 90)),
        "p99_ms": ms(pct(latency, 99)), "max_ms": ms(max(latency) if latency else None),
        "ack_p50_ms": ms(pct(ack_latency, 50)),
        "server_cpu_pct": round(100 * (marks["cpu1"] - marks["cpu0"]) / seconds, 1),
        "server_cpu_ms_per_completion": round(1000 * (marks["cpu1"] - marks["cpu0"])
                                              / max(done_in_window, 1), 2),
        "client_cpu_pct": round(100 * (marks["client1"] - marks["client0"]) / seconds, 1),
        "load": f"{marks['load0']} -> {marks['load1']}",
        "errors": len(errors), "first_error": errors[0] if errors else None,
        "repeated_pushes": sum(r.repeats for r in reviewers),
    }
    if sql:
        total = len(samples) or 1
        statements = sum(row[1] for row in sql["statements"])
        result["sql_per_completion"] = round(statements / total, 2)
        result["commits_per_completion"] = round(sql["commits"] / total, 2)
        if sql.get("round_trips"):  # MariaDB only: SQLite has no round trips
            result["round_trips_per_completion"] = round(sql["round_trips"] / total, 2)
        result["sql_ms_per_completion"] = round(
            1000 * sum(row[2] for row in sql["statements"]) / total, 3)
        result["sql_top"] = [[k, round(c / total, 2), round(1000 * t / max(c, 1), 3)]
                             for k, c, t in sql["statements"][:12]]
    log(f"  {server.label:18} {n:4d} reviewers: p50 {result['p50_ms']} ms, "
        f"p99 {result['p99_ms']} ms, {result['rate']}/s, server CPU "
        f"{result['server_cpu_pct']}%, client CPU {result['client_cpu_pct']}%"
        + (f", ERRORS {len(errors)}: {errors[0]}" if errors else ""))
    return result


def pymysql_commit_cost(database: str, count: int = 1000) -> dict:
    """The bare cost of one single-row UPDATE + COMMIT through pymysql (and of
    a SELECT 1 round trip), on the same MariaDB, in the same run."""
    conn = pymysql.connect(**MYSQL, database=database, autocommit=False)
    try:
        cur = conn.cursor()
        cur.execute("CREATE TABLE bench_commit (id INT PRIMARY KEY, v BIGINT NOT NULL) "
                    "ENGINE=InnoDB")
        cur.execute("INSERT INTO bench_commit VALUES (1, 0)")
        conn.commit()
        commits, selects = [], []
        for _ in range(count):
            t0 = time.perf_counter()
            cur.execute("UPDATE bench_commit SET v = v + 1 WHERE id = 1")
            conn.commit()
            commits.append(time.perf_counter() - t0)
        for _ in range(count):
            t0 = time.perf_counter()
            cur.execute("SELECT 1")
            cur.fetchall()
            selects.append(time.perf_counter() - t0)
        cur.execute("DROP TABLE bench_commit")
        conn.commit()
    finally:
        conn.close()
    return {"commit_p50_ms": ms(pct(commits, 50)), "commit_p99_ms": ms(pct(commits, 99)),
            "select1_p50_ms": ms(pct(selects, 50)), "count": count}


async def cmd_latency(args, cleanup: Cleanup, workdir: Path) -> dict:
    levels = [int(x) for x in args.reviewers.split(",")]
    out = {"levels": levels, "seconds": args.seconds, "warmup": args.warmup, "runs": []}
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=KEEPALIVE_S)
    async with aiohttp.ClientSession(connector=connector) as http:
        for mode in args.modes:
            for tcp in args.tcp:
                env = {"QC_BENCH_NODELAY": "1" if tcp == "nodelay" else "0"}
                log(f"latency, {mode}, TCP {tcp}: starting servers")
                echo = cleanup.server("echo", mode, workdir, env=env)
                apps = []
                for kind in args.dbs:
                    database = cleanup.database(kind, workdir)
                    server = cleanup.server("qc", mode, workdir, database, env=env)
                    api = Api(http, server)
                    await api.login_admin()
                    tokens = await api.reviewers(max(levels))
                    apps.append((server, api, tokens, database))
                echo_api = Api(http, echo)
                phases, commit = [], None
                for n in levels:
                    echo_result = await work_phase(echo, echo_api, http, None, n,
                                                   args.seconds, args.warmup)
                    phases.append(echo_result)
                    # Enough pending tasks for the app to go at the echo server's pace.
                    need = int(echo_result["rate"] * (args.seconds + args.warmup) * 1.3) + n
                    need = max(500, min(need, args.max_pool))
                    for server, api, tokens, database in apps:
                        await api.add_tasks(need, f"{mode}-{n}-{uuid.uuid4().hex[:6]}")
                        phases.append(await work_phase(server, api, http, tokens, n,
                                                       args.seconds, args.warmup))
                        if database.kind == "mysql" and commit is None:
                            commit = await asyncio.to_thread(pymysql_commit_cost,
                                                             database.name)
                            log(f"  pymysql single-row commit: p50 {commit['commit_p50_ms']} "
                                f"ms, SELECT 1 p50 {commit['select1_p50_ms']} ms")
                for server, _, _, database in apps:
                    cleanup.stop(server)
                    database.drop()
                cleanup.stop(echo)
                out["runs"].append({"mode": mode, "tcp": tcp, "phases": phases,
                                    "pymysql": commit})
    return out


# --- 2. connected reviewers -----------------------------------------------------

async def ramp(reviewers: list, rate: float, in_flight: int) -> dict:
    """Connect every reviewer, `rate` per second at most, `in_flight` at once."""
    gate = asyncio.Semaphore(in_flight)
    durations, failures = [], []
    start = time.perf_counter()

    async def one(index, reviewer):
        await asyncio.sleep(max(0, start + index / rate - time.perf_counter()))
        async with gate:
            t0 = time.perf_counter()
            try:
                await reviewer.connect()
                await reviewer.next_event(60)  # the `idle` that follows the connect
                durations.append(time.perf_counter() - t0)
            except Exception as exc:
                failures.append(f"{exc.__class__.__name__}: {exc}")

    await asyncio.gather(*(one(i, r) for i, r in enumerate(reviewers)))
    return {"ramp_s": round(time.perf_counter() - start, 1),
            "connect_p50_ms": ms(pct(durations, 50)), "connect_p99_ms": ms(pct(durations, 99)),
            "connect_failures": len(failures), "first_failure": failures[0] if failures else None}


async def sockets_run(server: Server, api: Api, http, tokens, count: int, rate: float,
                      warm: int) -> dict:
    idle = server.kind == "echo"
    # Warm up the code paths (first connects import and cache things), then measure.
    warmers = [Reviewer(server, tokens[i] if tokens else None, http, idle=idle)
               for i in range(warm)]
    await ramp(warmers, rate, 50)
    await bounded((r.disconnect() for r in warmers), 100)
    del warmers
    await asyncio.sleep(2)
    rss0 = server.rss_kib()
    reviewers = [Reviewer(server, tokens[i] if tokens else None, http, idle=idle)
                 for i in range(count)]
    cpu0 = server.cpu_s()
    result = await ramp(reviewers, rate, 100)
    result["ramp_server_cpu_s"] = round(server.cpu_s() - cpu0, 1)
    await asyncio.sleep(3)
    rss1 = server.rss_kib()
    connected = sum(1 for r in reviewers if r.sio.connected)
    result.update({"server": server.label, "sockets": connected, "rss0_mib": round(rss0 / 1024, 1),
                   "rss1_mib": round(rss1 / 1024, 1),
                   "kib_per_socket": round((rss1 - rss0) / max(connected, 1), 1),
                   "load": load_average()})
    for r in reviewers:
        r.drain()
        r.first_task_at = None
    # The bulk push: every connected screen gets one task.
    cpu0 = server.cpu_s()
    t0 = time.perf_counter()
    if server.kind == "echo":
        await api.call("POST", "/push-all", expect=201)
    else:
        await api.add_tasks(count, f"bulk-{uuid.uuid4().hex[:6]}", batch=count)
    answered = time.perf_counter() - t0
    deadline = time.perf_counter() + 300
    live = [r for r in reviewers if r.sio.connected]
    while time.perf_counter() < deadline and any(r.first_task_at is None and r.sio.connected
                                                 for r in live):
        await asyncio.sleep(0.02)
    arrivals = [r.first_task_at - t0 for r in live if r.first_task_at is not None]
    result.update({"bulk_answer_s": round(answered, 3),
                   "bulk_reached": len(arrivals),
                   "bulk_p50_s": round(pct(arrivals, 50), 3) if arrivals else None,
                   "bulk_all_s": round(max(arrivals), 3) if len(arrivals) == len(live)
                   else None,
                   "bulk_server_cpu_s": round(server.cpu_s() - cpu0, 1),
                   "still_connected": sum(1 for r in live if r.sio.connected)})
    await asyncio.sleep(1)
    t0 = time.perf_counter()
    await bounded((r.disconnect() for r in reviewers), 200)
    result["disconnect_all_s"] = round(time.perf_counter() - t0, 1)
    log(f"  {server.label:18} {connected} sockets: {result['kib_per_socket']} KiB/socket "
        f"(RSS {result['rss0_mib']} -> {result['rss1_mib']} MiB), ramp {result['ramp_s']} s, "
        f"connect p50 {result['connect_p50_ms']} ms; bulk to all: {result['bulk_all_s']} s "
        f"(answer {result['bulk_answer_s']} s, reached {len(arrivals)}, "
        f"{result['still_connected']} still connected)")
    return result


async def cmd_sockets(args, cleanup: Cleanup, workdir: Path) -> dict:
    out = {"sockets": args.sockets, "ramp_per_s": args.ramp, "modes": {}}
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=KEEPALIVE_S)
    async with aiohttp.ClientSession(connector=connector) as http:
        for mode in args.modes:
            runs = []
            log(f"sockets, {mode}: echo baseline")
            echo = cleanup.server("echo", mode, workdir)
            runs.append(await sockets_run(echo, Api(http, echo), http, None, args.sockets,
                                          args.ramp, args.warm))
            cleanup.stop(echo)
            for kind in args.dbs:
                database = cleanup.database(kind, workdir)
                server = cleanup.server("qc", mode, workdir, database)
                api = Api(http, server)
                await api.login_admin()
                t0 = time.perf_counter()
                tokens = await api.reviewers(args.sockets)
                log(f"sockets, {mode}: {args.sockets} reviewers created and logged in "
                    f"in {time.perf_counter() - t0:.0f} s")
                runs.append(await sockets_run(server, api, http, tokens, args.sockets,
                                              args.ramp, args.warm))
                cleanup.stop(server)
            for run in runs[1:]:
                run["memory_ratio"] = round(run["kib_per_socket"]
                                            / max(runs[0]["kib_per_socket"], 0.1), 2)
            out["modes"][mode] = runs
    return out


# --- 3. task intake ---------------------------------------------------------------

async def probe(api: Api, stop: asyncio.Event, every: float = 0.05) -> list:
    """GET /healthz all along: how long the server keeps others waiting."""
    times = []
    while not stop.is_set():
        t0 = time.perf_counter()
        try:
            await api.call("GET", "/healthz", timeout=60)
        except Exception:
            pass
        times.append(time.perf_counter() - t0)
        try:
            await asyncio.wait_for(stop.wait(), every)
        except asyncio.TimeoutError:
            pass
    return times


def csv_body(tag: str, count: int) -> bytes:
    lines = ["name,priority,external_id,payload"]
    for n in range(count):
        payload = json.dumps({"sku": f"A-{n % 1000}", "lot": n}).replace('"', '""')
        lines.append(f'Check lot {n},0,{tag}-{n},"{payload}"')
    return ("\n".join(lines) + "\n").encode()


async def intake_run(api: Api, total: int, variant: str) -> dict:
    tag = uuid.uuid4().hex[:8]
    stop = asyncio.Event()
    prober = asyncio.ensure_future(probe(api, stop))
    server = api.server
    cpu0 = server.cpu_s()
    request_times = []
    t0 = time.perf_counter()
    if variant == "csv":
        body = csv_body(tag, total)
        t0 = time.perf_counter()
        status, answer = await api.call("POST", "/tasks/import", api.admin, data=body,
                                        headers={"Content-Type": "text/csv"})
        if status == 404 or status == 405:
            stop.set()
            await prober
            return {"variant": "POST /tasks/import (CSV)", "absent": True}
        if status != 201:
            raise RuntimeError(f"import: {status} {str(answer)[:300]}")
        request_times.append(time.perf_counter() - t0)
    else:
        batch = int(variant)
        for start in range(0, total, batch):
            rows = task_rows(tag, start, min(total, start + batch))
            body = json.dumps(rows).encode()
            t1 = time.perf_counter()
            await api.call("POST", "/tasks", api.admin, data=body,
                           headers={"Content-Type": "application/json"}, expect=201)
            request_times.append(time.perf_counter() - t1)
    elapsed = time.perf_counter() - t0
    cpu = server.cpu_s() - cpu0
    stop.set()
    health = await prober
    label = "POST /tasks/import (CSV)" if variant == "csv" else f"POST /tasks, {variant}/request"
    result = {"variant": label, "server": server.label, "tasks": total,
              "seconds": round(elapsed, 2), "tasks_per_s": round(total / elapsed),
              "requests": len(request_times),
              "request_p50_s": round(pct(request_times, 50), 3),
              "request_max_s": round(max(request_times), 3),
              "server_cpu_pct": round(100 * cpu / elapsed, 1),
              "healthz_max_ms": ms(max(health) if health else None),
              "healthz_p99_ms": ms(pct(health, 99)), "load": load_average()}
    log(f"  {server.label:18} {label}: {result['tasks_per_s']} tasks/s "
        f"({result['seconds']} s), /healthz max {result['healthz_max_ms']} ms")
    return result


async def cmd_intake(args, cleanup: Cleanup, workdir: Path) -> dict:
    variants = [v for v in args.batches.split(",") if v] + (["csv"] if args.csv else [])
    out = {"tasks": args.tasks, "modes": {}}
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=KEEPALIVE_S)
    async with aiohttp.ClientSession(connector=connector) as http:
        for mode in args.modes:
            runs = []
            for kind in args.dbs:
                for variant in variants:
                    database = cleanup.database(kind, workdir)
                    server = cleanup.server("qc", mode, workdir, database)
                    api = Api(http, server)
                    await api.login_admin()
                    runs.append(await intake_run(api, args.tasks, variant))
                    cleanup.stop(server)
                    database.drop()
            out["modes"][mode] = runs
    return out


# --- reports -----------------------------------------------------------------------

def machine() -> dict:
    mem = next(line for line in Path("/proc/meminfo").read_text().splitlines()
               if line.startswith("MemTotal"))
    versions = {}
    for name in ("Flask", "Flask-SocketIO", "python-socketio", "python-engineio", "eventlet",
                 "gevent", "greenlet", "simple-websocket", "SQLAlchemy", "PyMySQL", "aiohttp"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    try:
        with pymysql.connect(**MYSQL) as conn:
            cur = conn.cursor()
            cur.execute("SELECT VERSION(), @@innodb_flush_log_at_trx_commit")
            mariadb, flush = cur.fetchone()
    except Exception:
        mariadb, flush = None, None
    return {"nproc": os.cpu_count(), "mem": mem.split(":")[1].strip(),
            "cpu": next((line.split(":")[1].strip() for line in
                         Path("/proc/cpuinfo").read_text().splitlines()
                         if line.startswith("model name")), platform.machine()),
            "kernel": platform.release(), "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version, "mariadb": mariadb,
            "innodb_flush_log_at_trx_commit": flush, "packages": versions,
            "fd_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0]}


def table(headers, rows) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in rows:
        lines.append("| " + " | ".join("—" if v is None else str(v) for v in row) + " |")
    return "\n".join(lines)


def ratio(a, b):
    return None if a is None or not b else round(a / b, 2)


TCP_LABEL = {"nodelay": "TCP_NODELAY on both servers",
             "nagle": "echo without TCP_NODELAY (qc_live always sets it)"}


def report_latency(res: dict) -> str:
    parts = []
    for data in res["runs"]:
        mode = f"{data['mode']}, {TCP_LABEL[data['tcp']]}"
        phases = data["phases"]
        echo = {p["reviewers"]: p for p in phases if p["server"] == "echo"}
        rows = []
        for p in phases:
            base = echo[p["reviewers"]]
            rows.append([p["server"], p["reviewers"], p["p50_ms"], p["p99_ms"], p["rate"],
                         ratio(p["p50_ms"], base["p50_ms"]), ratio(p["p99_ms"], base["p99_ms"]),
                         ratio(p["rate"], base["rate"]), p["server_cpu_pct"],
                         p.get("server_cpu_ms_per_completion"),
                         p["client_cpu_pct"], p.get("sql_per_completion"),
                         p.get("commits_per_completion"),
                         p.get("round_trips_per_completion", "—"), p["errors"],
                         p["load"].split(" -> ")[-1].split()[0]])
        parts.append(f"#### {mode}\n\n" + table(
            ["server", "reviewers", "p50 ms", "p99 ms", "completions/s", "p50 ÷ echo",
             "p99 ÷ echo", "rate ÷ echo", "server CPU %", "server CPU ms/compl.",
             "client CPU %", "SQL/compl.",
             "commits/compl.", "DB round trips/compl.", "errors", "load 1 min"], rows))
        if data.get("pymysql"):
            c = data["pymysql"]
            parts.append(f"pymysql single-row UPDATE+COMMIT: p50 {c['commit_p50_ms']} ms, "
                         f"p99 {c['commit_p99_ms']} ms; SELECT 1: p50 {c['select1_p50_ms']} ms "
                         f"({c['count']} each)")
        parts.append(targets_latency(phases, data.get("pymysql")))
    return "\n\n".join(parts)


def targets_latency(phases, commit) -> str:
    lines = []
    echo = {p["reviewers"]: p for p in phases if p["server"] == "echo"}
    low, high = min(echo), max(echo)
    for p in phases:
        if p["server"] == "qc_live/SQLite" and p["reviewers"] == low and echo[low]["p50_ms"]:
            limit = 4 * echo[low]["p50_ms"]
            lines.append(f"- SQLite p50 at {low} reviewer(s) ≤ 4× echo: {p['p50_ms']} ms vs "
                         f"{limit:.3f} ms → {'MET' if p['p50_ms'] <= limit else 'NOT MET'}")
        if p["server"] == "qc_live/SQLite" and p["reviewers"] == high:
            need = 0.25 * echo[high]["rate"]
            lines.append(f"- SQLite rate at {high} reviewers ≥ 25% of echo: {p['rate']}/s vs "
                         f"{need:.1f}/s → {'MET' if p['rate'] >= need else 'NOT MET'}")
        if p["server"] == "qc_live/MariaDB" and p["reviewers"] == low and commit:
            limit = echo[low]["p50_ms"] + 3 * commit["commit_p50_ms"]
            lines.append(f"- MariaDB p50 at {low} reviewer(s) ≤ echo + 3× commit: {p['p50_ms']} "
                         f"ms vs {limit:.3f} ms → {'MET' if p['p50_ms'] <= limit else 'NOT MET'}")
    return "\n".join(lines)


def report_sockets(res: dict) -> str:
    rows = []
    for mode, runs in res["modes"].items():
        for r in runs:
            rows.append([mode, r["server"], r["sockets"], r["kib_per_socket"],
                         r.get("memory_ratio"), f"{r['rss0_mib']} → {r['rss1_mib']}",
                         r["ramp_s"], r["connect_p50_ms"], r["connect_p99_ms"],
                         r["connect_failures"], r["bulk_answer_s"], r["bulk_p50_s"],
                         r["bulk_all_s"], r["disconnect_all_s"], r["load"]])
    return table(["mode", "server", "sockets", "KiB/socket", "÷ echo", "RSS MiB", "ramp s",
                  "connect p50 ms", "connect p99 ms", "failed", "POST answered s",
                  "half reached s", "all reached s", "disconnect all s", "load avg"], rows)


def report_intake(res: dict) -> str:
    rows = []
    for mode, runs in res["modes"].items():
        for r in runs:
            if r.get("absent"):
                rows.append([mode, "—", r["variant"], "absent"] + [None] * 6)
                continue
            rows.append([mode, r["server"], r["variant"], r["tasks_per_s"], r["seconds"],
                         r["requests"], r["request_p50_s"], r["server_cpu_pct"],
                         r["healthz_max_ms"], r["load"]])
    return table(["mode", "server", "how", "tasks/s", "seconds", "requests",
                  "request p50 s", "server CPU %", "/healthz max ms", "load avg"], rows)


REPORTS = {"latency": report_latency, "sockets": report_sockets, "intake": report_intake}
COMMANDS = {"latency": cmd_latency, "sockets": cmd_sockets, "intake": cmd_intake}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p, dbs="sqlite,mysql"):
        p.add_argument("--modes", default="eventlet,gevent",
                       help="async modes, side by side (default: eventlet,gevent)")
        p.add_argument("--dbs", default=dbs, help=f"databases (default: {dbs})")
        p.add_argument("--json", help="write the results here (default: bench/results/)")
        p.add_argument("--no-sql-stats", dest="sql_stats", action="store_false",
                       help="do not count qc_live's SQL statements (the counting runs inside "
                            "the measured server and costs it a few %% of its CPU)")
        p.add_argument("--qc-root", type=Path, default=ROOT,
                       help="run qc_live from this checkout (its bench/qc_server.py), e.g. "
                            "an older commit's tree; the client and the echo server stay "
                            "this tree's (bench/compare.py uses it)")

    p = sub.add_parser("latency", help="complete -> next task latency and completions/s")
    common(p)
    p.add_argument("--reviewers", default="1,50,200", help="levels (default: 1,50,200)")
    p.add_argument("--tcp", default="nodelay",
                   help="nodelay: the echo server with TCP_NODELAY (bench/nodelay.py), as "
                        "qc_live sets it itself; nagle: the echo server without it, as "
                        "eventlet and gevent serve by default (default: nodelay)")
    p.add_argument("--seconds", type=float, default=8, help="measured seconds per phase")
    p.add_argument("--warmup", type=float, default=2, help="unmeasured seconds first")
    p.add_argument("--max-pool", type=int, default=60000, help="tasks queued per phase, at most")

    p = sub.add_parser("sockets", help="idle sockets: memory per socket, bulk push to all")
    common(p, dbs="sqlite")
    p.add_argument("--sockets", type=int, default=5000)
    p.add_argument("--ramp", type=float, default=250, help="connects per second, at most")
    p.add_argument("--warm", type=int, default=100, help="sockets opened and closed first")

    p = sub.add_parser("intake", help="POST /tasks (and /tasks/import) bulk rate")
    common(p)
    p.add_argument("--tasks", type=int, default=100000)
    p.add_argument("--batches", default="1000", help="tasks per POST /tasks (comma list)")
    p.add_argument("--no-csv", dest="csv", action="store_false",
                   help="skip POST /tasks/import")

    p = sub.add_parser("all", help="latency, sockets, intake with their defaults")
    p.add_argument("--modes", default="eventlet,gevent")
    p.add_argument("--seconds", type=float, default=8)
    p.add_argument("--sockets", type=int, default=5000)
    p.add_argument("--tasks", type=int, default=100000)
    p.add_argument("--json", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    SQL_STATS["on"] = getattr(args, "sql_stats", True)
    QC_ROOT["path"] = getattr(args, "qc_root", ROOT)
    args.modes = [m for m in args.modes.split(",") if m]
    if hasattr(args, "dbs"):
        args.dbs = [d for d in args.dbs.split(",") if d]
    if hasattr(args, "tcp"):
        args.tcp = [t for t in args.tcp.split(",") if t]
    return args


async def run_command(name, args, cleanup, workdir) -> dict:
    started = time.time()
    load0 = load_average()
    result = await COMMANDS[name](args, cleanup, workdir)
    return {"command": name, "argv": sys.argv[1:], "started": time.strftime(
        "%Y-%m-%d %H:%M:%S", time.localtime(started)), "wall_s": round(time.time() - started),
        "load_before": load0, "load_after": load_average(), "machine": machine(), **result}


def save(name: str, result: dict, path: str | None) -> Path:
    RESULTS.mkdir(exist_ok=True)
    target = Path(path) if path else RESULTS / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    target.write_text(json.dumps(result, indent=1))
    return target


def _interrupt(*_):
    raise KeyboardInterrupt


def main(argv=None) -> int:
    args = parse_args(argv if argv is not None else sys.argv[1:])
    limit = raise_fd_limit()
    log(f"file descriptor limit {limit}; load average {load_average()}")
    signal.signal(signal.SIGTERM, _interrupt)
    if args.command == "all":
        plan = [("latency", ["latency", "--seconds", str(args.seconds)]),
                ("sockets", ["sockets", "--sockets", str(args.sockets)]),
                ("intake", ["intake", "--tasks", str(args.tasks)])]
        plan = [(name, parse_args(argv_ + ["--modes", ",".join(args.modes)]))
                for name, argv_ in plan]
    else:
        plan = [(args.command, args)]
    cleanup = Cleanup()
    workdir = Path(tempfile.mkdtemp(prefix="qc_bench_"))
    try:
        for name, sub_args in plan:
            result = asyncio.run(run_command(name, sub_args, cleanup, workdir))
            path = save(name, result, sub_args.json)
            print(f"\n### {name} ({result['started']}, load average {result['load_before']} "
                  f"→ {result['load_after']})\n")
            print(REPORTS[name](result))
            print(f"\n(results: {path})", flush=True)
    except KeyboardInterrupt:
        log("interrupted; cleaning up")
        return 130
    finally:
        cleanup.close()
        keep_logs(workdir)
    return 0


def keep_logs(workdir: Path) -> None:
    """Move the servers' logs to bench/results/logs and drop the work directory."""
    logs = RESULTS / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    for path in workdir.glob("*.log"):
        shutil.move(str(path), logs / path.name)
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
