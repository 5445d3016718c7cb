"""Benchmark "Results out" (issue 16): the streamed export at a million rows,
and what webhook delivery costs a completion. One command each, not a test:

    .venv/bin/python bench/results_out.py export            # SQLite, 1,000,000 tasks
    .venv/bin/python bench/results_out.py export --db mysql
    .venv/bin/python bench/results_out.py latency           # SQLite, 4 x 2 phases of 200
    .venv/bin/python bench/results_out.py latency --db mysql

export: the tasks are bulk-inserted into a fresh database (migrated by the
app itself), a real `run.py` (gevent) serves GET /tasks/export, and the
client reads the stream while a thread samples the server's resident memory
(VmRSS) every 20 ms. Printed: rows, bytes, seconds, and the server's RSS
before, after 10%, 50% and 100% of the rows, and its peak: flat memory means
the peak does not grow with the rows sent.

latency: one reviewer completes tasks over its socket, each time timing
task-complete sent -> the next task-assigned received (complete->next),
one completion every 125 ms (a socket may send 10 events a second), with
no webhook subscription, then with three subscriptions to a receiver
that takes 2 s to answer each request, alternating phase by phase in the
same run, so that both see the same machine. Every delivery is counted at
the end (they keep arriving after the last phase).

The servers, sockets and receiver are the tests' own (tests/live.py,
tests/receiver.py), on loopback.
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


# One completion every 125 ms: a socket may send 10 events a second.
PACE = 0.125


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Sampler(threading.Thread):
    """The peak VmRSS of a process, sampled every 20 ms."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.running = pid, 0, True

    def run(self):
        while self.running:
            try:
                self.peak = max(self.peak, rss_kib(self.pid))
            except OSError:
                return
            time.sleep(0.02)


def fill(url: str, rows: int) -> float:
    """`rows` tasks, 80% completed (a tenth of their notes begin with '='), in
    chunks of 10,000, into the schema the app migrates to. Seconds taken."""
    import sqlalchemy as sa

    from qc_live import create_app, prepare_database
    from qc_live.config import Config
    from qc_live.extensions import db
    from qc_live.models import Role, Task, User
    started = time.perf_counter()
    app = create_app(Config(database_url=url, secret_key="bench-secret-key-" + "x" * 32,
                            async_mode="threading", instance_path=tempfile.mkdtemp(),
                            admin_username="admin", admin_password="admin-password-1",
                            log_level="WARNING"))
    prepare_database(app)
    with app.app_context():
        db.session.add_all(User(username=f"r{i}", password_hash="x",
                                role=Role.REVIEWER.value) for i in range(10))
        db.session.commit()
        reviewers = db.session.scalars(sa.select(User.id).where(
            User.role == Role.REVIEWER.value)).all()
        base = datetime(2026, 1, 1)
        for start in range(0, rows, 10_000):
            chunk = []
            for i in range(start, min(rows, start + 10_000)):
                made = base + timedelta(seconds=i)
                done = i % 10 < 8
                chunk.append({
                    "name": f"Check lot {i}", "payload": {"sku": f"A-{i}", "line": i % 7},
                    "priority": i % 3, "status": "completed" if done else "pending",
                    "external_id": f"lot-{i}", "created_at": made, "updated_at": made,
                    "assignee_id": reviewers[i % len(reviewers)] if done else None,
                    "assigned_at": made if done else None,
                    "completed_at": made + timedelta(seconds=30) if done else None,
                    "outcome": ("pass", "fail")[i % 2] if done else None,
                    "note": ("=SUM(A1:A9)" if i % 100 == 0 else "ok") if done else None})
            db.session.execute(sa.insert(Task.__table__), chunk)
            db.session.commit()
        db.session.remove()
        db.engine.dispose()
    return time.perf_counter() - started


def database(kind: str, tmp: Path):
    os.environ["QC_TEST_DB"] = kind
    from live import Database
    return Database(tmp)


def export(args) -> dict:
    import requests

    from live import Server
    tmp = Path(tempfile.mkdtemp(prefix="qc-bench-export-"))
    db = database(args.db, tmp)
    try:
        print(f"filling {args.rows:,} tasks ...", flush=True)
        filled = fill(db.url, args.rows)
        server = Server(db, tmp, QC_LOG_LEVEL="WARNING").start(timeout=120)
        results = {"rows": args.rows, "fill_s": round(filled, 1), "db": args.db}
        try:
            for kind in args.formats:
                pid = server.process.pid
                before = rss_kib(pid)
                sampler = Sampler(pid)
                sampler.start()
                marks, lines, size = {}, 0, 0
                started = time.perf_counter()
                with requests.get(f"{server.url}/tasks/export", params={"format": kind},
                                  headers={"Authorization": f"Bearer {server.admin_token}"},
                                  stream=True, timeout=600) as response:
                    response.raise_for_status()
                    for chunk in response.iter_content(chunk_size=1 << 16):
                        size += len(chunk)
                        lines += chunk.count(b"\n")
                        for share in (0.1, 0.5):
                            if share not in marks and lines >= share * args.rows:
                                marks[share] = rss_kib(pid)
                took = time.perf_counter() - started
                sampler.running = False
                sampler.join()
                # No cell here holds a line break: a line per row, and the header.
                rows = lines - (1 if kind == "csv" else 0)
                if rows != args.rows:
                    raise RuntimeError(f"{kind}: {rows} rows exported, not {args.rows}")
                results[kind] = {
                    "rows": rows, "bytes": size, "seconds": round(took, 1),
                    "rows_per_s": round(args.rows / took),
                    "rss_mib_before": round(before / 1024, 1),
                    "rss_mib_at_10pct": round(marks.get(0.1, 0) / 1024, 1),
                    "rss_mib_at_50pct": round(marks.get(0.5, 0) / 1024, 1),
                    "rss_mib_after": round(rss_kib(pid) / 1024, 1),
                    "rss_mib_peak": round(sampler.peak / 1024, 1)}
                print(kind, json.dumps(results[kind]), flush=True)
        finally:
            server.stop()
        return results
    finally:
        db.drop()


def latency(args) -> dict:
    from live import Reviewer, Server
    from receiver import Receiver
    tmp = Path(tempfile.mkdtemp(prefix="qc-bench-latency-"))
    db = database(args.db, tmp)
    server = Server(db, tmp, QC_LOG_LEVEL="WARNING").start(timeout=120)
    samples = {"none": [], "3 subscriptions, 2 s receiver": []}
    medians = {label: [] for label in samples}  # each phase's, in run order
    try:
        with Receiver(("slow", 2.0, 200)) as receiver:
            alice = server.reviewer("alice")
            total = args.rounds * 2 * args.per_phase + 1
            for start in range(0, total, 1000):
                server.add_tasks(*({"name": f"t{i}"} for i in range(start, min(total,
                                                                               start + 1000))))
            sock = Reviewer(server, alice["token"]).connect(transports=["websocket"])
            task = sock.task()
            hooks, started = [], time.perf_counter()
            for _ in range(args.rounds):
                for label in samples:
                    if label == "none":
                        for hook in hooks:
                            server.request("DELETE", f"/webhooks/{hook}", server.admin_token,
                                           expect=204)
                        hooks = []
                    else:
                        hooks = [server.request("POST", "/webhooks", server.admin_token,
                                                expect=201, json={
                                                    "url": receiver.url,
                                                    "events": ["task.completed"],
                                                    "secret": "bench-secret-1234567"}
                                                ).json()["id"] for _ in range(3)]
                    for _ in range(args.per_phase):
                        # Under the socket's event limit (10 a second).
                        time.sleep(max(0.0, PACE - (time.perf_counter() - started))
                                   if samples[label] else 0)
                        started = time.perf_counter()
                        sock.client.emit("task-complete", {"task_id": task["id"],
                                                           "outcome": "pass"},
                                         namespace="/reviewer")
                        task = sock.task(timeout=30)
                        samples[label].append(time.perf_counter() - started)
                    phase = samples[label][-args.per_phase:]
                    medians[label].append(round(statistics.median(phase) * 1000, 2))
            sock.disconnect()
            received = len(receiver.requests)
        counts = db.query("SELECT status, COUNT(*) FROM webhook_deliveries GROUP BY status")
    finally:
        server.stop()
        db.drop()

    def summary(values):
        values = sorted(v * 1000 for v in values)
        pick = (lambda q: round(values[min(len(values) - 1, int(q * len(values)))], 2))
        return {"n": len(values), "median_ms": round(statistics.median(values), 2),
                "p95_ms": pick(0.95), "p99_ms": pick(0.99), "max_ms": round(values[-1], 2)}
    result = {label: {**summary(values), "phase_medians_ms": medians[label]}
              for label, values in samples.items()}
    result["deliveries"] = {"received_during_run": received,
                            "outbox_by_status": {s: n for s, n in counts}}
    print(json.dumps(result, indent=1))
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("export", "latency"))
    parser.add_argument("--db", choices=("sqlite", "mysql"), default="sqlite")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--formats", nargs="+", default=["csv", "ndjson"])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--per-phase", type=int, default=200)
    args = parser.parse_args(argv)
    (export if args.what == "export" else latency)(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
