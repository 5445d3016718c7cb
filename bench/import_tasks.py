"""Benchmark task intake: a 100,000-row CSV through POST /tasks/import on a
real server (`python run.py`), while reviewers are connected and a probe
keeps asking GET /healthz. One command, not a test:

    .venv/bin/python bench/import_tasks.py
    .venv/bin/python bench/import_tasks.py --database-url mysql+pymysql://root@127.0.0.1:3306/qc_bench_import

It reports: upload size, the import's wall time and rows per second, when the
first reviewer got an imported task (dispatch starts with the first batch, not
after the whole file), the slowest /healthz answer during the import (how long
the event loop was ever kept busy), the same file again (every row found by
its external_id), and for comparison half the rows as one JSON POST /tasks
(written in batches of 1,000 like the import). Then it profiles
Dispatcher.create_tasks in-process on one batch, to show where intake time goes.
"""
import argparse
import cProfile
import csv
import io
import json
import os
import pstats
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
import socketio
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
ADMIN = ("admin", "bench-admin-password")
PASSWORD = "bench-reviewer-pass"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare_mysql(url: str) -> None:
    base, _, name = url.rpartition("/")
    engine = sa.create_engine(base + "/")
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
        conn.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    engine.dispose()


def make_csv(rows: int, prefix: str, seed: int = 11) -> bytes:
    rng = random.Random(seed)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["name", "priority", "deadline", "external_id", "payload"])
    for n in range(rows):
        writer.writerow([
            f"Inspect lot {n} (line {n % 17})", rng.choice([0, 0, 0, 1, 2, 5]),
            f"2031-{1 + n % 12:02d}-{1 + n % 28:02d}T12:00:00Z" if n % 4 == 0 else "",
            f"{prefix}-{n}",
            json.dumps({"sku": f"SKU-{n % 9973}", "station": n % 40,
                        "photos": [f"https://img.example/{n}/{k}.jpg" for k in range(2)]}),
        ])
    return out.getvalue().encode()


class Server:
    def __init__(self, url: str, instance: str):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "PORT": str(self.port), "DATABASE_URL": url,
                    "QC_SECRET_KEY": "bench-secret-" + "x" * 40, "QC_INSTANCE_PATH": instance,
                    "QC_ADMIN_USERNAME": ADMIN[0], "QC_ADMIN_PASSWORD": ADMIN[1],
                    "QC_LOG_LEVEL": "WARNING"}
        self.log = open(Path(instance) / "server.log", "ab")
        self.process = subprocess.Popen([sys.executable, str(ROOT / "run.py")], cwd=ROOT,
                                        env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(self.base + "/healthz", timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(0.1)
        else:
            raise RuntimeError("the server did not start")
        self.token = self.login(*ADMIN)

    def login(self, username, password):
        return requests.post(self.base + "/login", json={"username": username,
                                                         "password": password},
                             timeout=10).json()["access_token"]

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(10)


class Probe(threading.Thread):
    """GET /healthz back to back; the slowest answer is the longest the
    server's event loop was busy with something else."""

    def __init__(self, base):
        super().__init__(daemon=True)
        self.base, self.times, self.running = base, [], True

    def run(self):
        session = requests.Session()
        while self.running:
            begun = time.perf_counter()
            session.get(self.base + "/healthz", timeout=60)
            self.times.append(time.perf_counter() - begun)
            time.sleep(0.02)


def connect_reviewers(server, count):
    """Online reviewers; each gets (and keeps) one task."""
    headers = {"Authorization": f"Bearer {server.token}"}
    clients, first_task = [], []
    for n in range(count):
        name = f"bench-reviewer-{n}"
        requests.post(server.base + "/users", headers=headers, timeout=10,
                      json={"username": name, "password": PASSWORD, "role": "reviewer"})
        client = socketio.Client(reconnection=False)

        def on_task(_data):
            first_task.append(time.perf_counter())
            return {"ok": True}
        client.on("task-assigned", on_task, namespace="/reviewer")
        client.connect(server.base, namespaces=["/reviewer"],
                       auth={"token": server.login(name, PASSWORD)}, wait_timeout=10)
        clients.append(client)
    return clients, first_task


def timed_import(server, body: bytes, multipart: bool = True):
    headers = {"Authorization": f"Bearer {server.token}"}
    begun = time.perf_counter()
    if multipart:
        response = requests.post(server.base + "/tasks/import", headers=headers, timeout=600,
                                 files={"file": ("tasks.csv", body, "text/csv")})
    else:
        response = requests.post(server.base + "/tasks", headers={
            **headers, "Content-Type": "application/json"}, data=body, timeout=600)
    elapsed = time.perf_counter() - begun
    assert response.status_code == 201, response.text[:500]
    return begun, elapsed, response.json()


def profile_create_tasks(url: str, instance: str, batch: int) -> str:
    """Where one batch of create_tasks spends its time (in-process)."""
    from qc_live import create_app, prepare_database, state
    from qc_live.config import Config
    from qc_live.extensions import db
    from qc_live.lifecycle import TaskSpec
    app = create_app(Config(database_url=url, secret_key="bench-" + "x" * 40,
                            async_mode="threading", instance_path=instance,
                            admin_username=ADMIN[0], admin_password=ADMIN[1],
                            log_level="WARNING"))
    prepare_database(app)
    specs = [TaskSpec(name=f"profiled {n}", payload={"sku": n}, priority=n % 3,
                      external_id=f"profile-{n}") for n in range(batch)]
    with app.app_context():
        profiler = cProfile.Profile()
        begun = time.perf_counter()
        profiler.enable()
        state.dispatcher().create_tasks(db.session, specs, None)
        profiler.disable()
        elapsed = time.perf_counter() - begun
        db.session.remove()
        db.engine.dispose()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).sort_stats("cumulative")
    stats.print_stats(r"qc_live|orm/session|orm/unitofwork|persistence|engine/base|"
                      r"executemany|sql/compiler", 18)
    return f"create_tasks({batch:,} specs with external_id): {elapsed * 1000:.0f} ms " \
           f"(profiled)\n" + "\n".join(out.getvalue().splitlines()[:60])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--reviewers", type=int, default=10)
    parser.add_argument("--database-url")
    parser.add_argument("--no-json", action="store_true", help="skip the JSON comparison")
    args = parser.parse_args()

    instance = tempfile.mkdtemp(prefix="qc-bench-import-")
    url = args.database_url or f"sqlite:///{instance}/import.sqlite3"
    if url.startswith("mysql"):
        prepare_mysql(url)
    body = make_csv(args.rows, "csv")
    print(f"{args.rows:,}-row CSV: {len(body) / 2**20:.1f} MiB; database {url.split('://')[0]}")
    server = Server(url, instance)
    try:
        clients, first_task = connect_reviewers(server, args.reviewers)
        probe = Probe(server.base)
        probe.start()
        time.sleep(0.5)
        begun, elapsed, result = timed_import(server, body)
        probe.running = False
        probe.join()
        print(f"import: {elapsed:.1f} s, {args.rows / elapsed:,.0f} rows/s; created "
              f"{result['created']:,} in {result['batches']} batches")
        if first_task:
            print(f"first imported task reached a reviewer {min(first_task) - begun:.2f} s "
                  f"after the upload began; all {len(first_task)} reviewers busy after "
                  f"{max(first_task) - begun:.2f} s")
        during = sorted(probe.times)
        print(f"/healthz during the import: {len(during)} answers, median "
              f"{during[len(during) // 2] * 1000:.0f} ms, slowest {during[-1] * 1000:.0f} ms")
        for client in clients:
            client.disconnect()

        _, again, result = timed_import(server, body)
        print(f"same file again: {again:.1f} s; created {result['created']}, existing "
              f"{result['existing']:,}")

        if not args.no_json:
            # Half the rows: the whole file as JSON is over the 16 MiB body limit.
            half = args.rows // 2
            tasks = list(csv.DictReader(io.StringIO(make_csv(half, "json").decode())))
            payload = json.dumps([{"name": t["name"], "priority": int(t["priority"]),
                                   "deadline": t["deadline"] or None,
                                   "external_id": t["external_id"],
                                   "payload": json.loads(t["payload"])} for t in tasks]).encode()
            probe = Probe(server.base)
            probe.start()
            _, as_json, result = timed_import(server, payload, multipart=False)
            probe.running = False
            probe.join()
            during = sorted(probe.times)
            print(f"{half:,} rows as one JSON POST /tasks ({len(payload) / 2**20:.1f} MiB): "
                  f"{as_json:.1f} s, {half / as_json:,.0f} rows/s; /healthz meanwhile: "
                  f"{len(during)} answers, median {during[len(during) // 2] * 1000:.0f} ms, "
                  f"slowest {during[-1] * 1000:.0f} ms")
    finally:
        server.stop()
    print()
    print(profile_create_tasks(url, instance, 1000))
    return 0


if __name__ == "__main__":
    sys.exit(main())
