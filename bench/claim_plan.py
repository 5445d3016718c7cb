"""The claim's SQL with queues and skills, and MariaDB's plan for each statement.

Builds a scratch MariaDB database (dropped at the end) with the head schema,
`--queues` queues and `--tasks` pending tasks spread over them (priorities
0..2, some with deadlines), and a reviewer with skills in three queues (one
of which it qualifies for only after relax_after_s). Then prints, for the
statements queue.next_task runs (queue.py): the SQL as MariaDB receives it
and its EXPLAIN, and the time of each statement (median of 200 runs).

    .venv/bin/python bench/claim_plan.py                        # 50 queues, 200,000 tasks
    .venv/bin/python bench/claim_plan.py --tasks 1000000        # the issue's size (slow to fill)

docs/benchmarks.md ("The claim's query plan") records a run.
"""
import argparse
import random
import statistics
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pymysql
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qc_live import queue  # noqa: E402
from qc_live.extensions import db  # noqa: E402
from qc_live.models import Queue, Skill, Task, User  # noqa: E402,F401

MYSQL = "mysql+pymysql://root@127.0.0.1:3306"
NAME = "qc_claim_plan"


class Moment:
    """What queue._params needs of a Work: its `now`."""

    def __init__(self, now):
        self.now = now


def fill(engine, queues: int, tasks: int) -> None:
    db.metadata.create_all(engine)
    now = datetime.utcnow()
    rng = random.Random(14)
    with engine.begin() as conn:
        conn.execute(sa.insert(Queue.__table__), [
            {"name": f"q{i:02d}", "description": "", "min_level": 1 + i % 5,
             "relax_after_s": 300 if i % 7 == 0 else None, "created_at": now}
            for i in range(queues)] + [{"name": "default", "description": "", "min_level": 1,
                                        "relax_after_s": None, "created_at": now}])
        conn.execute(sa.insert(User.__table__).values(
            id=1, username="r1", username_key="r1", password_hash="x", role="reviewer",
            active=True, available=True, token_version=0, created_at=now))
        # q00 needs level 1, q03 level 4 (ours: 5), q07 level 3 relaxing after 300 s (ours: 1)
        conn.execute(sa.insert(Skill.__table__), [
            {"user_id": 1, "queue": "q00", "level": 2}, {"user_id": 1, "queue": "q03", "level": 5},
            {"user_id": 1, "queue": "q07", "level": 1}])
        batch = []
        for i in range(tasks):
            due = now + timedelta(minutes=rng.choice([10, 20, 120])) if i % 10 == 0 else None
            batch.append({"name": f"t{i}", "payload": {}, "priority": rng.randint(0, 2),
                          "status": "pending", "queue": f"q{rng.randrange(queues):02d}",
                          "created_at": now - timedelta(seconds=rng.randint(0, 3600)),
                          "updated_at": now, "deadline": due})
            if len(batch) == 5000:
                conn.execute(sa.insert(Task.__table__), batch)
                batch = []
        if batch:
            conn.execute(sa.insert(Task.__table__), batch)
        conn.execute(sa.text("ANALYZE TABLE tasks, skills, queues"))


def show(raw, engine, label: str, statement, params: dict, runs: int) -> None:
    compiled = statement.compile(dialect=engine.dialect)
    values = compiled.construct_params(params)
    text = compiled.string
    shown = {k: f"'{v}'" if isinstance(v, (str, datetime)) else v for k, v in values.items()}
    print(f"--- {label}\n{text % shown}\n")
    with raw.cursor() as cursor:
        cursor.execute("EXPLAIN " + text, values)
        names = [d[0] for d in cursor.description]
        for row in cursor.fetchall():
            plan = dict(zip(names, row))
            print(f"  {plan['id']} {plan['select_type']:<12} {str(plan['table']):<14} "
                  f"type={plan['type']:<6} key={plan['key']} rows={plan['rows']} "
                  f"extra={plan['Extra']}")
        took = []
        for _ in range(runs):
            started = time.perf_counter()
            cursor.execute(text, values)
            cursor.fetchall()
            took.append(time.perf_counter() - started)
        raw.rollback()
    print(f"  median {statistics.median(took) * 1000:.3f} ms over {runs} runs\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--queues", type=int, default=50)
    parser.add_argument("--tasks", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    admin = sa.create_engine(MYSQL)
    with admin.begin() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {NAME}"))
        conn.execute(sa.text(f"CREATE DATABASE {NAME} CHARACTER SET utf8mb4"))
    engine = sa.create_engine(f"{MYSQL}/{NAME}")
    try:
        started = time.perf_counter()
        fill(engine, args.queues, args.tasks)
        print(f"{args.tasks} pending tasks in {args.queues} queues "
              f"(filled in {time.perf_counter() - started:.0f} s)\n")
        now = datetime.utcnow()
        with engine.connect() as conn:
            reaches = [(row.queue, queue.reach(row.level, row.min_level, row.relax_after_s, now))
                       for row in conn.execute(queue.sql.SKILLS_OF, {"reviewer_id": 1})]
            version = conn.execute(sa.text("SELECT VERSION()")).scalar()
        reaches.sort()
        print(f"MariaDB {version}; the reviewer's reach: "
              f"{[(q, 'all' if r is queue.ALL else 'created before ' + str(r)) for q, r in reaches]}\n")
        raw = pymysql.connect(host="127.0.0.1", port=3306, user="root", database=NAME)
        try:
            show(raw, engine, "1. the reviewer's skills (sql.SKILLS_OF)", queue.sql.SKILLS_OF,
                 {"reviewer_id": 1}, args.runs)
            shape = tuple(r is not queue.ALL for _, r in reaches)
            show(raw, engine, "2. every qualified queue's heads, one UNION (queue._heads)",
                 queue._heads(shape), queue._params(Moment(now), reaches), args.runs)
            for queue_name, r in reaches[:1] + [item for item in reaches
                                                if item[1] is not queue.ALL][:1]:
                urgent, fifo = queue._locking_heads(r is not queue.ALL)
                params = queue._params(Moment(now), [(queue_name, r)])
                show(raw, engine, f"3a. lock {queue_name}'s urgent head (queue._lock_head)",
                     urgent, params, args.runs)
                show(raw, engine, f"3b. lock {queue_name}'s FIFO head (queue._lock_head)",
                     fifo, params, args.runs)
        finally:
            raw.close()
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {NAME}"))
        admin.dispose()


if __name__ == "__main__":
    main()
