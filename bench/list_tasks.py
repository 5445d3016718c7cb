"""Benchmark GET /tasks at a million rows: page 1 and a page deep in the cursor
chain, for each order and some filters. One command, not a test:

    .venv/bin/python bench/list_tasks.py                       # SQLite, 1,000,000 tasks
    .venv/bin/python bench/list_tasks.py --database-url mysql+pymysql://root@127.0.0.1:3306/qc_bench
    .venv/bin/python bench/list_tasks.py --rows 100000 --explain

The tasks are bulk-inserted (not through the API: that is bench/import_tasks.py)
with a realistic mix: 80% completed, 12% pending, 6% cancelled or expired, one
assigned task per reviewer; 100 reviewers; priorities mostly 0; a quarter with
deadlines; half created in batches of 1,000 sharing one created_at (as POST
/tasks and the CSV import do), so ties are common. The schema (and every index)
comes from create_app, exactly as the server makes it.

Requests go through the Flask test client with an admin token, so a figure is
the whole endpoint: validation, queries, JSON. For each case the deep cursor is
the row half-way through the result (found once with OFFSET, untimed), and the
page it gives is checked against the same page read with OFFSET. For
comparison, the OFFSET query itself is timed at that depth.
"""
import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from qc_live import create_app, prepare_database  # noqa: E402
from qc_live.config import Config  # noqa: E402
from qc_live.extensions import db  # noqa: E402
from qc_live.listing import ORDERS, encode_cursor  # noqa: E402
from qc_live.models import Role, Task, User  # noqa: E402

REVIEWERS = 100
ADMIN = ("admin", "bench-admin-password")
LIMIT = 50

# (label, query string without order_by/cursor/limit)
FILTERS = [
    ("all statuses", ""),
    ("status=pending", "status=pending"),
    ("status=completed", "status=completed"),
    ("status=pending,assigned", "status=pending,assigned"),
    ("status=pending&priority=2", "status=pending&priority=2"),
    ("assignee_id=7", "assignee_id=7"),
    ("assignee_id=7&status=completed", "assignee_id=7&status=completed"),
]


def make_app(url: str, instance: str):
    app = create_app(Config(database_url=url, secret_key="bench-secret-key-" + "x" * 32,
                            async_mode="threading", instance_path=instance,
                            admin_username=ADMIN[0], admin_password=ADMIN[1],
                            log_level="WARNING"))
    prepare_database(app)
    return app


def prepare_mysql(url: str, fresh: bool) -> None:
    base, _, name = url.rpartition("/")
    engine = sa.create_engine(base + "/")
    with engine.begin() as conn:
        if fresh:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
        conn.exec_driver_sql(f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4")
    engine.dispose()


def fill(rows: int, seed: int = 7) -> None:
    """Bulk-insert `rows` tasks (and the reviewers), in chunks, with Core."""
    rng = random.Random(seed)
    session = db.session
    session.execute(sa.insert(User), [
        {"username": f"reviewer{n:03d}", "password_hash": "x", "role": Role.REVIEWER.value,
         "active": True, "available": True, "token_version": 0,
         "created_at": datetime(2024, 1, 1)} for n in range(REVIEWERS)])
    session.commit()
    reviewer_ids = list(session.scalars(sa.select(User.id).where(
        User.role == Role.REVIEWER.value).order_by(User.id)))
    start = datetime(2024, 1, 1)
    span = timedelta(days=90).total_seconds()
    holders = list(reviewer_ids)  # one assigned task each, at the end
    chunk, batch_time = [], None
    begun = time.perf_counter()
    for n in range(rows):
        # Half the rows come in batches of 1,000 sharing one created_at (an
        # import); the rest one by one, a little out of id order.
        position = start + timedelta(seconds=span * n / rows)
        if (n // 1000) % 2 == 0:
            if n % 1000 == 0:
                batch_time = position
            created = batch_time
        else:
            created = position + timedelta(seconds=rng.uniform(-600, 600))
        remaining = rows - n
        if remaining <= len(holders):
            status = "assigned"
        else:
            roll = rng.random()
            status = ("completed" if roll < 0.80 else "pending" if roll < 0.92
                      else "cancelled" if roll < 0.95 else "expired")
        priority = rng.choices([0, 1, 2, 3, 5, -1], [70, 10, 8, 6, 3, 3])[0]
        deadline = (created + timedelta(hours=rng.uniform(1, 24 * 30))
                    if rng.random() < 0.25 else None)
        row = {"name": f"task {n}", "payload": {"sku": f"SKU-{n % 9973}"},
               "priority": priority, "status": status, "created_at": created,
               "updated_at": created, "deadline": deadline, "external_id": None,
               "assignee_id": None, "holder_id": None, "assigned_at": None,
               "completed_at": None, "outcome": None}
        if status == "assigned":
            reviewer = holders.pop()
            row.update(assignee_id=reviewer, holder_id=reviewer, assigned_at=created)
        elif status != "pending":
            row["assignee_id"] = rng.choice(reviewer_ids)
            row["assigned_at"] = created + timedelta(minutes=rng.uniform(1, 600))
            if status == "completed":
                row["completed_at"] = row["assigned_at"] + timedelta(seconds=rng.uniform(20, 600))
                row["outcome"] = "pass" if rng.random() < 0.9 else "fail"
        chunk.append(row)
        if len(chunk) == 10_000:
            session.execute(sa.insert(Task), chunk)
            session.commit()
            chunk = []
            if (n + 1) % 100_000 == 0:
                print(f"  {n + 1:>9,} rows  {time.perf_counter() - begun:6.1f} s", flush=True)
    if chunk:
        session.execute(sa.insert(Task), chunk)
        session.commit()
    if session.get_bind().dialect.name == "sqlite":
        session.execute(sa.text("ANALYZE"))
    else:
        session.execute(sa.text("ANALYZE TABLE tasks"))
    session.commit()


def reference_rows(query: str, order_by: str, offset: int, limit: int) -> list[tuple]:
    """(phase, key values) of rows offset..offset+limit, read with OFFSET."""
    filters = []
    for part in filter(None, query.split("&")):
        name, value = part.split("=")
        if name == "status":
            filters.append(Task.status.in_(value.split(",")))
        elif name == "assignee_id":
            filters.append(Task.assignee_id == int(value))
        elif name == "priority":
            filters.append(Task.priority == int(value))
    phases = ORDERS[order_by]
    if order_by == "deadline":
        columns = [Task.deadline, Task.id]
        order = [Task.deadline.is_(None), Task.deadline, Task.id]
    else:
        columns = [k.column for k in phases[0].keys]
        order = [k.column.desc() if k.descending else k.column for k in phases[0].keys]
    found = db.session.execute(sa.select(*columns).where(*filters).order_by(*order)
                               .offset(offset).limit(limit)).all()
    if order_by == "deadline":
        return [(0, (d, i)) if d is not None else (1, (i,)) for d, i in found]
    return [(0, tuple(row)) for row in found]


def count(query: str) -> int:
    filters = []
    for part in filter(None, query.split("&")):
        name, value = part.split("=")
        column = {"status": Task.status, "assignee_id": Task.assignee_id,
                  "priority": Task.priority}[name]
        filters.append(column.in_(value.split(",")) if name == "status"
                       else column == int(value))
    return db.session.scalar(sa.select(sa.func.count()).select_from(Task).where(*filters))


def timed(call, repeat: int = 5) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        begun = time.perf_counter()
        result = call()
        times.append((time.perf_counter() - begun) * 1000)
    return statistics.median(times), result


def explain(client, headers, url):
    """Print the plan of every statement one request runs."""
    statements = []
    engine = db.engine

    def capture(_conn, _cursor, statement, parameters, _context, _many):
        statements.append((statement, parameters))
    sa.event.listen(engine, "before_cursor_execute", capture)
    try:
        client.get(url, headers=headers)
    finally:
        sa.event.remove(engine, "before_cursor_execute", capture)
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as conn:
        for statement, parameters in statements:
            if not statement.lstrip().upper().startswith("SELECT") or "FROM tasks" not in statement:
                continue
            prefix = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN "
            plan = conn.exec_driver_sql(prefix + statement, parameters).all()
            print("    " + " ".join(statement.split())[:160])
            for row in plan:
                print("      ", row[-1] if sqlite else (row[3], row[5], row[9]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--database-url", help="default: a SQLite file in a temp folder")
    parser.add_argument("--reuse", action="store_true",
                        help="use the tasks already in --database-url (no fill)")
    parser.add_argument("--explain", action="store_true", help="print query plans")
    parser.add_argument("--walk", type=int, default=20,
                        help="pages to walk from the deep cursor (average per page)")
    args = parser.parse_args()

    instance = tempfile.mkdtemp(prefix="qc-bench-")
    url = args.database_url or f"sqlite:///{instance}/bench.sqlite3"
    if url.startswith("mysql"):
        prepare_mysql(url, fresh=not args.reuse)
    app = make_app(url, instance)
    with app.app_context():
        if not args.reuse:
            print(f"filling {args.rows:,} tasks into {url}", flush=True)
            begun = time.perf_counter()
            fill(args.rows)
            print(f"filled in {time.perf_counter() - begun:.1f} s", flush=True)
        total = db.session.scalar(sa.select(sa.func.count()).select_from(Task))
        client = app.test_client()
        token = client.post("/login", json={"username": ADMIN[0], "password": ADMIN[1]}) \
            .json["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        dialect = db.engine.dialect.name
        version = db.session.scalar(sa.text("SELECT sqlite_version()" if dialect == "sqlite"
                                            else "SELECT VERSION()"))
        print(f"\n{total:,} tasks, {dialect} {version}, limit={LIMIT}; median of 5 runs (ms)\n")
        print(f"| filter | order_by | matching rows | page 1 | deep page (row) | "
              f"next {args.walk} pages, per page | OFFSET at that depth |")
        print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
        failures = 0
        for label, query in FILTERS:
            matching = count(query)
            for order_by in ORDERS:
                base = f"/tasks?order_by={order_by}&limit={LIMIT}" + (f"&{query}" if query else "")

                def page(cursor=None, base=base):
                    response = client.get(base + (f"&cursor={cursor}" if cursor else ""),
                                          headers=headers)
                    assert response.status_code == 200, response.json
                    return response.json

                first_ms, _ = timed(page)
                depth = matching // 2
                if depth < 1:
                    print(f"| {label} | {order_by} | {matching:,} | {first_ms:.1f} | – | – | – |")
                    continue
                anchor = reference_rows(query, order_by, depth - 1, 1)[0]
                cursor = encode_cursor(order_by, *anchor)
                deep_ms, body = timed(lambda: page(cursor))
                offset_ms, expected = timed(
                    lambda: reference_rows(query, order_by, depth, LIMIT), repeat=3)
                got = [t["id"] for t in body["tasks"]]
                if got != [values[-1] for _, values in expected]:
                    failures += 1
                    print(f"MISMATCH {label} {order_by}: keyset page != OFFSET page")
                begun, pages, next_cursor = time.perf_counter(), 0, body["next_cursor"]
                while next_cursor and pages < args.walk:
                    next_cursor = page(next_cursor)["next_cursor"]
                    pages += 1
                walk_ms = (time.perf_counter() - begun) * 1000 / max(pages, 1)
                print(f"| {label} | {order_by} | {matching:,} | {first_ms:.1f} | "
                      f"{deep_ms:.1f} ({depth:,}) | {walk_ms:.1f} | {offset_ms:.1f} |",
                      flush=True)
                if args.explain:
                    explain(client, headers, base + f"&cursor={cursor}")
        print("\nall deep pages equal their OFFSET reference" if not failures
              else f"\n{failures} MISMATCH(ES)")
        db.session.remove()
        db.engine.dispose()
    if not args.database_url:
        for name in os.listdir(instance):
            os.remove(os.path.join(instance, name))
        os.rmdir(instance)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
