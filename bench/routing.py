#!/usr/bin/env python3
"""Routing at scale (issue 14): complete -> next task with queues and skills,
against one queue, measured in the same run.

Two databases of the same kind are filled with the same tasks (same seed:
names, priorities, ages, deadlines) and the same reviewers:

  single  every task in "default", every reviewer {"default": 1} (a floor
          without queues);
  multi   the tasks spread over --queues queues (min_level 1..5, one queue in
          seven relaxing after 300 s), every reviewer with 1-5 skills of
          level 1..10 (seeded; each qualifies for at least one queue).

Both are filled straight into the schema the app migrates to (Core
executemany in batches of 10,000, not through the API), then a qc_live
server (bench/qc_server.py, as bench/load.py starts it) runs on each, and
phases of `--working` reviewers completing tasks in a closed loop
(bench/load.py's latency workload: task-complete sent -> next task-assigned
received) alternate between the two servers: single, multi, single, multi...
Printed: each phase, the medians over the phases of each setup, and the
ratios against the target (multi within 1.5x of single for the p50 and the
completion rate). On MariaDB, the claim's EXPLAIN on the multi database at
that size (bench/claim_plan.py's statements, for the reviewer with the most
skills); on SQLite, its EXPLAIN QUERY PLAN.

    .venv/bin/python bench/routing.py                       # SQLite, 200,000 tasks
    .venv/bin/python bench/routing.py --db mysql
    .venv/bin/python bench/routing.py --tasks 1000000       # the issue's size
    .venv/bin/python bench/routing.py --db mysql --tasks 1000000

Results: a JSON file and the servers' logs under bench/results/. Method and
figures: docs/benchmarks.md, "Queues and skills at scale".
"""
import argparse
import asyncio
import random
import signal
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import aiohttp

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(ROOT), str(BENCH)]
import load  # noqa: E402

TARGET = 1.5
BATCH = 10_000


# --- filling -------------------------------------------------------------------

def plan_floor(reviewers: int, queues: int, seed: int) -> dict:
    """The multi-queue floor's queues and skills (seeded); tasks are drawn in `fill`."""
    rng = random.Random(seed)
    qs = [{"name": f"q{i:02d}", "description": "", "min_level": 1 + i % 5,
           "relax_after_s": 300 if i % 7 == 0 else None} for i in range(queues)]
    skills = []
    for r in range(reviewers):
        mine = rng.sample(range(queues), rng.randint(1, min(5, queues)))
        levels = [rng.randint(1, 10) for _ in mine]
        if not any(lv >= qs[q]["min_level"] or qs[q]["relax_after_s"]
                   for q, lv in zip(mine, levels)):
            levels[0] = qs[mine[0]]["min_level"]  # everyone qualifies somewhere
        skills.append({qs[q]["name"]: lv for q, lv in zip(mine, levels)})
    return {"queues": qs, "skills": skills}


def fill(url: str, multi: bool, floor: dict, tasks: int, seed: int) -> float:
    """Migrate a fresh database with the app itself, then bulk-insert the
    queues, the reviewers with their skills and `tasks` pending tasks.
    Seconds taken."""
    import sqlalchemy as sa
    from werkzeug.security import generate_password_hash

    from qc_live import create_app, prepare_database
    from qc_live.config import Config
    from qc_live.extensions import db
    from qc_live.models import Queue, Role, Skill, Task, User, username_key
    started = time.perf_counter()
    app = create_app(Config(database_url=url, secret_key=load.SECRET,
                            async_mode="threading", instance_path=tempfile.mkdtemp(),
                            admin_username=load.ADMIN[0], admin_password=load.ADMIN[1],
                            log_level="WARNING"))
    prepare_database(app)
    rng = random.Random(seed + 1)
    names = [q["name"] for q in floor["queues"]]
    now = datetime.utcnow()
    password = generate_password_hash(load.PASSWORD, method="pbkdf2:sha256:1000")
    with app.app_context():
        engine = db.engine
        with engine.begin() as conn:
            if multi:
                conn.execute(sa.insert(Queue.__table__),
                             [{**q, "created_at": now} for q in floor["queues"]])
            users = []
            for n in range(len(floor["skills"])):
                name = f"r{n:05d}"
                users.append({"username": name, "username_key": username_key(name),
                              "password_hash": password, "role": Role.REVIEWER.value,
                              "active": True, "available": True, "token_version": 0,
                              "idle_since": now - timedelta(seconds=n), "created_at": now})
            conn.execute(sa.insert(User.__table__), users)
            ids = dict(conn.execute(sa.select(User.username, User.id)
                                    .where(User.role == Role.REVIEWER.value)).all())
            rows = []
            for n, mine in enumerate(floor["skills"]):
                rid = ids[f"r{n:05d}"]
                for queue, level in (mine.items() if multi else [("default", 1)]):
                    rows.append({"user_id": rid, "queue": queue, "level": level})
            # The migration gave nobody a skill yet (these reviewers are new).
            conn.execute(sa.delete(Skill.__table__).where(
                Skill.__table__.c.user_id.in_(list(ids.values()))))
            conn.execute(sa.insert(Skill.__table__), rows)
        for start in range(0, tasks, BATCH):
            chunk = []
            for i in range(start, min(tasks, start + BATCH)):
                # Drawn in the same order for both floors: the same tasks.
                queue = names[rng.randrange(len(names))]
                priority = rng.choice((0, 0, 0, 1, 1, 2))
                age = rng.randint(0, 3600)
                due = rng.randint(3600, 8 * 3600) if i % 10 == 0 else None
                chunk.append({"name": f"Check lot {i}", "payload": {"lot": i},
                              "priority": priority, "status": "pending",
                              "queue": queue if multi else "default",
                              "external_id": f"lot-{i}",
                              "created_at": now - timedelta(seconds=age), "updated_at": now,
                              "deadline": now + timedelta(seconds=due) if due else None})
            with engine.begin() as conn:
                conn.execute(sa.insert(Task.__table__), chunk)
        with engine.begin() as conn:
            if engine.dialect.name == "sqlite":
                conn.exec_driver_sql("ANALYZE")
            else:
                conn.exec_driver_sql("ANALYZE TABLE tasks, skills, queues, users")
        db.session.remove()
        engine.dispose()
    return time.perf_counter() - started


# --- the claim's plan at this size -----------------------------------------------

def explain(database: load.Database, reviewer: str) -> str:
    """The claim's statements for `reviewer` and their plans, as text."""
    import contextlib
    import io

    import sqlalchemy as sa

    import claim_plan
    from qc_live import queue
    engine = sa.create_engine(database.url)
    out = io.StringIO()
    try:
        now = datetime.utcnow()
        with engine.connect() as conn:
            rid = conn.execute(sa.text("SELECT id FROM users WHERE username = :u"),
                               {"u": reviewer}).scalar()
            reaches = sorted((row.queue, queue.reach(row.level, row.min_level,
                                                     row.relax_after_s, now))
                             for row in conn.execute(queue.sql.SKILLS_OF, {"reviewer_id": rid}))
        reaches = [(q, r) for q, r in reaches if r is not False]
        shown = [(q, "all" if r is queue.ALL else "before cutoff") for q, r in reaches]
        print(f"reviewer {reviewer}: reach {shown}", file=out)
        shape = tuple(r is not queue.ALL for _, r in reaches)
        statements = [("2. every qualified queue's heads, one UNION (queue._heads)",
                       queue._heads(shape), queue._params(claim_plan.Moment(now), reaches))]
        for name, r in reaches[:1] + [item for item in reaches if item[1] is not queue.ALL][:1]:
            urgent, fifo = queue._locking_heads(r is not queue.ALL)
            params = queue._params(claim_plan.Moment(now), [(name, r)])
            statements += [(f"3a. lock {name}'s urgent head", urgent, params),
                           (f"3b. lock {name}'s FIFO head", fifo, params)]
        if database.kind == "mysql":
            import pymysql
            raw = pymysql.connect(**load.MYSQL, database=database.name)
            try:
                with contextlib.redirect_stdout(out):
                    claim_plan.show(raw, engine, "1. the reviewer's skills (sql.SKILLS_OF)",
                                    queue.sql.SKILLS_OF, {"reviewer_id": rid}, 50)
                    for label, statement, params in statements:
                        claim_plan.show(raw, engine, label, statement, params, 50)
            finally:
                raw.close()
        else:
            with engine.connect() as conn:
                for label, statement, params in statements:
                    compiled = statement.compile(dialect=engine.dialect)
                    values = compiled.construct_params(params)
                    print(f"--- {label}", file=out)
                    for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + compiled.string,
                                                    tuple(values[k] for k in compiled.positiontup)):
                        print(f"  {row[-1]}", file=out)
                    took = []
                    for _ in range(50):
                        t0 = time.perf_counter()
                        conn.execute(statement, params).all()
                        took.append(time.perf_counter() - t0)
                    print(f"  median {statistics.median(took) * 1000:.3f} ms over 50 runs\n",
                          file=out)
    finally:
        engine.dispose()
    return out.getvalue()


# --- the run ------------------------------------------------------------------------

async def run(args, cleanup: load.Cleanup, workdir: Path) -> dict:
    floor = plan_floor(args.reviewers, args.queues, args.seed)
    setups = {}
    for label in ("single", "multi"):
        database = cleanup.database(args.db, workdir)
        load.log(f"{label}: filling {args.tasks:,} tasks, {args.reviewers} reviewers ...")
        took = await asyncio.to_thread(fill, database.url, label == "multi", floor,
                                       args.tasks, args.seed)
        load.log(f"{label}: filled in {took:.0f} s")
        setups[label] = {"database": database, "fill_s": round(took, 1)}
    out = {"db": args.db, "tasks": args.tasks, "queues": args.queues,
           "reviewers": args.reviewers, "working": args.working, "rounds": args.rounds,
           "seconds": args.seconds, "warmup": args.warmup, "seed": args.seed,
           "skills_per_reviewer": statistics.mean(len(s) for s in floor["skills"]),
           "fill_s": {k: v["fill_s"] for k, v in setups.items()}, "phases": []}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        for label, setup in setups.items():
            server = cleanup.server("qc", args.mode, workdir, setup["database"],
                                    env={"QC_BENCH_NODELAY": "1"})
            api = load.Api(http, server)
            await api.login_admin()
            tokens = await load.bounded((api.login(f"r{n:05d}") for n in range(args.working)),
                                        8)
            failed = [t for t in tokens if isinstance(t, BaseException)]
            if failed:
                raise RuntimeError(f"{label}: {len(failed)} logins failed: {failed[0]!r}")
            setup.update(server=server, api=api, tokens=tokens)
        for round_ in range(args.rounds):
            for label, setup in setups.items():
                phase = await load.work_phase(setup["server"], setup["api"], http,
                                              setup["tokens"], args.working, args.seconds,
                                              args.warmup)
                phase.update(setup=label, round=round_ + 1)
                load.log(f"  round {round_ + 1} {label:6}: p50 {phase['p50_ms']} ms, "
                         f"{phase['rate']}/s, load {phase['load']}")
                out["phases"].append(phase)
    for setup in setups.values():
        cleanup.stop(setup["server"])
    summary = {}
    for label in setups:
        mine = [p for p in out["phases"] if p["setup"] == label]
        summary[label] = {
            "p50_ms": round(statistics.median(p["p50_ms"] for p in mine), 3),
            "p99_ms": round(statistics.median(p["p99_ms"] for p in mine), 3),
            "rate": round(statistics.median(p["rate"] for p in mine), 1),
            "sql_per_completion": statistics.median(p.get("sql_per_completion", 0)
                                                    for p in mine),
            "server_cpu_ms_per_completion": statistics.median(
                p["server_cpu_ms_per_completion"] for p in mine),
            "errors": sum(p["errors"] for p in mine)}
    single, multi = summary["single"], summary["multi"]
    summary["p50_ratio"] = round(multi["p50_ms"] / single["p50_ms"], 2)
    summary["rate_ratio"] = round(single["rate"] / multi["rate"], 2)
    summary["met"] = summary["p50_ratio"] <= TARGET and summary["rate_ratio"] <= TARGET
    out["summary"] = summary
    if args.explain:
        # The first reviewer with the most skills (its reach is printed: some may not qualify).
        busiest = max(range(len(floor["skills"])), key=lambda n: len(floor["skills"][n]))
        out["explain"] = await asyncio.to_thread(explain, setups["multi"]["database"],
                                                 f"r{busiest:05d}")
    for setup in setups.values():
        setup["database"].drop()
    return out


def report(res: dict) -> str:
    rows = [[p["round"], p["setup"], p["p50_ms"], p["p99_ms"], p["rate"],
             p.get("sql_per_completion"), p["server_cpu_ms_per_completion"], p["errors"],
             p["load"]] for p in res["phases"]]
    s = res["summary"]
    lines = [load.table(["round", "setup", "p50 ms", "p99 ms", "completions/s", "SQL/compl.",
                         "server CPU ms/compl.", "errors", "load 1 min"], rows), "",
             load.table(["setup", "median p50 ms", "median p99 ms", "median completions/s",
                         "SQL/compl.", "server CPU ms/compl.", "errors"],
                        [[k, s[k]["p50_ms"], s[k]["p99_ms"], s[k]["rate"],
                          s[k]["sql_per_completion"], s[k]["server_cpu_ms_per_completion"],
                          s[k]["errors"]] for k in ("single", "multi")]), "",
             f"- p50: multi {s['multi']['p50_ms']} ms / single {s['single']['p50_ms']} ms = "
             f"{s['p50_ratio']}x (target <= {TARGET}x)",
             f"- rate: single {s['single']['rate']}/s / multi {s['multi']['rate']}/s = "
             f"{s['rate_ratio']}x (target <= {TARGET}x)",
             f"- target {'MET' if s['met'] else 'NOT MET'}"]
    if res.get("explain"):
        lines += ["", "The claim at this size (multi database):", "", res["explain"]]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", default="sqlite", choices=("sqlite", "mysql"))
    parser.add_argument("--tasks", type=int, default=200_000)
    parser.add_argument("--queues", type=int, default=50)
    parser.add_argument("--reviewers", type=int, default=500, help="reviewers on the floor")
    parser.add_argument("--working", type=int, default=200,
                        help="reviewers connected and completing (default 200)")
    parser.add_argument("--rounds", type=int, default=4,
                        help="single+multi phase pairs, alternating (default 4)")
    parser.add_argument("--seconds", type=float, default=8, help="measured seconds per phase")
    parser.add_argument("--warmup", type=float, default=2, help="unmeasured seconds first")
    parser.add_argument("--mode", default="gevent", help="async mode (default gevent)")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--no-explain", dest="explain", action="store_false")
    parser.add_argument("--no-sql-stats", dest="sql_stats", action="store_false")
    parser.add_argument("--json", help="write the results here (default: bench/results/)")
    args = parser.parse_args(argv)
    if args.working > args.reviewers:
        parser.error("--working must not exceed --reviewers")
    load.SQL_STATS["on"] = args.sql_stats
    load.raise_fd_limit()
    load.log(f"load average {load.load_average()}")
    signal.signal(signal.SIGTERM, load._interrupt)
    cleanup = load.Cleanup()
    workdir = Path(tempfile.mkdtemp(prefix="qc_routing_"))
    try:
        started, load0 = time.time(), load.load_average()
        result = asyncio.run(run(args, cleanup, workdir))
        result.update(argv=sys.argv[1:], started=time.strftime(
            "%Y-%m-%d %H:%M:%S", time.gmtime(started)) + " UTC",
            wall_s=round(time.time() - started), load_before=load0,
            load_after=load.load_average(), machine=load.machine())
        path = load.save(f"routing-{args.db}", result, args.json)
        print(f"\n### routing, {args.db}, {args.tasks:,} tasks ({result['started']}, load "
              f"average {load0} -> {result['load_after']})\n")
        print(report(result))
        print(f"\n(results: {path})", flush=True)
    except KeyboardInterrupt:
        load.log("interrupted; cleaning up")
        return 130
    finally:
        cleanup.close()
        load.keep_logs(workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
