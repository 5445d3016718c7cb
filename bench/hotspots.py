#!/usr/bin/env python3
"""Where the server's time goes under load: py-spy on a live server process.

Starts qc_live (or the echo baseline) the way bench/load.py does, puts N
reviewers to work (complete -> next task, closed loop), and after a warm-up
samples the server with py-spy for --seconds (CPU samples; idle time in the
event loop's poll is not sampled). Writes the raw stacks, a flame graph (SVG),
and a summary: the share of samples spent in each part of the work loop
(inclusive), the top functions by own time, and SQL statements per completion.

    .venv/bin/python bench/hotspots.py                       # qc_live, SQLite, eventlet, 50 reviewers
    .venv/bin/python bench/hotspots.py --db mysql --mode gevent
    .venv/bin/python bench/hotspots.py --server echo         # the baseline's profile

Needs py-spy (requirements-dev.txt) and ptrace rights over the server
(same user; kernel.yama.ptrace_scope <= 1 for a child process).
"""
import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import load  # noqa: E402

# Buckets: a sample counts in a bucket if any frame of its stack matches
# (inclusive). Checked against "function (path)" strings.
BUCKETS = [
    ("socket task-complete handler (sockets.reviewer_complete)", ["reviewer_complete (qc_live/sockets.py"]),
    ("  Dispatcher.complete transaction", ["complete (qc_live/dispatch.py"]),
    ("    queue.next_task (urgent + FIFO head)", ["next_task (qc_live/queue.py"]),
    ("    task_dict", ["task_dict (qc_live/models.py"]),
    ("push after commit (Notifier._push_safely)", ["_push_safely (qc_live/notify.py"]),
    ("  offer: sockets_of DB read", ["sockets_of (qc_live/presence.py"]),
    ("  offer: emit task-assigned", ["emit (flask_socketio/__init__.py"]),
    ("ack of task-assigned: DB write (acks.AckRecorder)", ["_write (qc_live/acks.py"]),
    ("database.run_write (all write transactions)", ["run_write (qc_live/database.py"]),
    ("SQLAlchemy ORM flush", ["flush (sqlalchemy/orm/session.py"]),
    ("SQLAlchemy: compile/execute (any)", ["execute (sqlalchemy/engine/base.py",
                                           "_execute_context (sqlalchemy/engine/base.py"]),
    ("sqlite3 / pymysql driver calls", ["do_execute (sqlalchemy/engine/default.py",
                                        "do_commit (sqlalchemy/engine/default.py"]),
    ("session commit", ["commit (sqlalchemy/orm/session.py"]),
    ("session rollback / remove / close", ["rollback (sqlalchemy/orm/session.py",
                                           "remove (sqlalchemy/orm/scoping.py",
                                           "close (sqlalchemy/orm/session.py"]),
    ("Flask app context push/pop", ["app_context (flask/app.py", "push (flask/ctx.py",
                                    "pop (flask/ctx.py"]),
    ("Socket.IO/Engine.IO packet handling", ["_handle_eio_message (socketio/server.py",
                                             "_handle_event (socketio/server.py"]),
    ("JSON encode/decode", ["dumps (json/__init__.py", "loads (json/__init__.py",
                            "encode (json/encoder.py", "decode (json/decoder.py"]),
    ("logging", ["(logging/__init__.py"]),
    ("websocket send/receive", ["(simple_websocket/", "(eventlet/websocket.py",
                                "(wsproto/"]),
    ("periodic sweep (runtime.sweep)", ["sweep (qc_live/runtime.py"]),
    ("heartbeat (runtime.heartbeat)", ["heartbeat (qc_live/runtime.py"]),
    ("board broadcaster", ["_loop (qc_live/board.py"]),
    ("event loop hub (eventlet/gevent)", ["(eventlet/hubs/", "(gevent/hub.py", "run (gevent/"]),
]


def parse_raw(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        frames = stack.split(";")
        stacks.append((frames, int(count)))
    return stacks


def short(frame: str) -> str:
    """'func (/long/path/site-packages/pkg/mod.py:12)' -> 'func (pkg/mod.py)'."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    path = where.rsplit(":", 1)[0]
    for marker in ("site-packages/", str(load.QC_ROOT["path"]) + "/", str(load.ROOT) + "/",
                   "/lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{name} ({path})"


def summarize(stacks, completions: int) -> dict:
    total = sum(c for _, c in stacks) or 1
    shortened = [([short(f) for f in frames], c) for frames, c in stacks]
    buckets = []
    for label, needles in BUCKETS:
        hit = sum(c for frames, c in shortened
                  if any(any(n in f for n in needles) for f in frames))
        buckets.append([label, round(100 * hit / total, 1)])
    own = Counter()
    inclusive = Counter()
    for frames, c in shortened:
        own[frames[-1]] += c
        for f in set(frames):
            inclusive[f] += c
    return {"samples": total, "completions": completions,
            "buckets": buckets,
            "top_own": [[f, round(100 * c / total, 1)] for f, c in own.most_common(25)],
            "top_inclusive_qc_live": [[f, round(100 * c / total, 1)]
                                      for f, c in inclusive.most_common(400)
                                      if "qc_live/" in f][:25]}


async def main_async(args) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="qc_profile_"))
    cleanup = load.Cleanup()
    out_dir = load.RESULTS
    out_dir.mkdir(exist_ok=True)
    stem = Path(args.out).name if args.out else None
    stem = stem or f"profile-{args.server}-{args.mode}-{args.db}-{args.reviewers}"
    raw = out_dir / f"{stem}.txt"
    svg = out_dir / f"{stem}.svg"
    env = {}
    if args.nodelay:
        env["QC_BENCH_NODELAY"] = "1"
    try:
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=load.KEEPALIVE_S)
        async with aiohttp.ClientSession(connector=connector) as http:
            if args.server == "echo":
                server = cleanup.server("echo", args.mode, workdir, env=env)
                api, tokens = load.Api(http, server), None
            else:
                database = cleanup.database(args.db, workdir)
                server = cleanup.server("qc", args.mode, workdir, database, env=env)
                api = load.Api(http, server)
                await api.login_admin()
                tokens = await api.reviewers(args.reviewers)
                await api.add_tasks(args.pool, f"profile-{uuid.uuid4().hex[:6]}")
            pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
            total = args.warmup + 2 * args.seconds + 2

            async def sample():
                await asyncio.sleep(args.warmup)
                await api.sql_stats()  # reset
                done0 = sum(counter)
                common = ["--pid", str(server.process.pid), "--duration", str(int(args.seconds)),
                          "--rate", str(args.rate), "--nonblocking", "--full-filenames",
                          *(["--idle"] if args.idle else [])]
                proc = await asyncio.create_subprocess_exec(
                    pyspy, "record", "--format", "raw", "-o", str(raw), *common,
                    stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
                _, err = await proc.communicate()
                if proc.returncode != 0:
                    raise RuntimeError(f"py-spy failed: {err.decode()[-2000:]}")
                done1 = sum(counter)
                sql = await api.sql_stats()
                if args.svg:
                    proc = await asyncio.create_subprocess_exec(
                        pyspy, "record", "--format", "flamegraph", "-o", str(svg), *common,
                        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
                    await proc.communicate()
                return done1 - done0, sql

            counter = [0] * args.reviewers
            reviewers = [load.Reviewer(server, tokens[i] if tokens else None, http)
                         for i in range(args.reviewers)]
            await load.bounded((r.connect() for r in reviewers), 50)
            firsts = await asyncio.gather(*(r.next_task(30) for r in reviewers))

            async def work(i, reviewer, task_id, end):
                while time.perf_counter() < end:
                    fut = asyncio.get_running_loop().create_future()
                    await reviewer.sio.emit(
                        "task-complete", {"task_id": task_id, "outcome": "pass"},
                        namespace=load.NS,
                        callback=lambda *a, f=fut: f.done() or f.set_result(a))
                    _, task_id = await reviewer.next_task(30)
                    await asyncio.wait_for(fut, 30)
                    counter[i] += 1

            end = time.perf_counter() + total
            sampler = asyncio.ensure_future(sample())
            await asyncio.gather(*(work(i, r, t, end)
                                   for i, (r, (_, t)) in enumerate(zip(reviewers, firsts))))
            completions, sql = await sampler
            await load.bounded((r.disconnect() for r in reviewers), 100)
    finally:
        cleanup.close()
        shutil.rmtree(workdir, ignore_errors=True)
    summary = summarize(parse_raw(raw), completions)
    summary.update({"server": server.label, "mode": args.mode, "reviewers": args.reviewers,
                    "seconds": args.seconds, "rate_per_s": round(completions / args.seconds, 1),
                    "nodelay": args.nodelay,
                    "load": load.load_average()})
    if sql:
        n = max(completions, 1)
        summary["sql_per_completion"] = round(sum(r[1] for r in sql["statements"]) / n, 2)
        summary["commits_per_completion"] = round(sql["commits"] / n, 2)
        summary["sql"] = [[k, round(c / n, 2), round(1000 * t / max(c, 1), 3)]
                          for k, c, t in sql["statements"][:20]]
    (out_dir / f"{stem}.json").write_text(json.dumps(summary, indent=1))
    print(f"### profile: {summary['server']}, {args.mode}, {args.reviewers} reviewers, "
          f"{summary['rate_per_s']} completions/s while sampled, {summary['samples']} samples "
          f"(load {summary['load']})\n")
    print(load.table(["part of the work (inclusive)", "% of CPU samples"], summary["buckets"]))
    print()
    print(load.table(["function (own time)", "%"], summary["top_own"][:15]))
    print()
    print(load.table(["qc_live function (inclusive)", "%"], summary["top_inclusive_qc_live"]))
    if sql:
        print(f"\nSQL per completion: {summary['sql_per_completion']} statements, "
              f"{summary['commits_per_completion']} commits")
        print(load.table(["statement", "per completion", "ms each (wall)"], summary["sql"]))
    print(f"\n(raw stacks: {raw}" + (f", flame graph: {svg}" if args.svg else "")
          + f", summary: {raw.with_suffix('.json')})")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", choices=["qc", "echo"], default="qc")
    parser.add_argument("--mode", default="eventlet")
    parser.add_argument("--db", default="sqlite")
    parser.add_argument("--reviewers", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20, help="sampled seconds")
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--pool", type=int, default=40000, help="tasks queued first")
    parser.add_argument("--nodelay", action="store_true",
                        help="TCP_NODELAY for the echo server (bench/nodelay.py); qc_live sets it "
                             "itself")
    parser.add_argument("--idle", action="store_true",
                        help="sample waiting threads too (where the server waits, not only works)")
    parser.add_argument("--no-svg", dest="svg", action="store_false")
    parser.add_argument("--out", help="file stem under bench/results/")
    parser.add_argument("--qc-root", type=Path, default=load.ROOT,
                        help="profile qc_live from this checkout (an older commit's tree), "
                             "as bench/load.py --qc-root")
    args = parser.parse_args()
    load.QC_ROOT["path"] = args.qc_root
    load.raise_fd_limit()
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
