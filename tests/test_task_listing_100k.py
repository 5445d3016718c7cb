"""GET /tasks over 100,000 tasks: paging, filtering and ordering stay exact.

The rows are written straight into the database (the API would take minutes to
create them); the listing is then read through the real server. Speed at a
million rows is measured by bench/list_tasks.py, not asserted here.
"""
import random
from datetime import datetime, timedelta

import pytest

N = 100_000


def _fill(database):
    rng = random.Random(7)
    start = datetime(2026, 1, 1)
    rows = [(f"t{i}", "{}", rng.choice((0, 0, 0, 1, 2, 5)),
             "pending" if i % 10 else "completed",
             start + timedelta(seconds=i // 3)) for i in range(N)]  # ties on created_at
    sql = ("INSERT INTO tasks (name, payload, priority, status, created_at, updated_at) "
           "VALUES (%s, %s, %s, %s, %s, %s)")
    rows = [(*r, r[4]) for r in rows]
    if database.kind == "sqlite":
        import sqlite3
        # SQLAlchemy's own text form for SQLite DateTime, which compares as text
        as_text = [(*r[:4], r[4].strftime("%Y-%m-%d %H:%M:%S.%f"),
                    r[5].strftime("%Y-%m-%d %H:%M:%S.%f")) for r in rows]
        with sqlite3.connect(database.url.removeprefix("sqlite:///")) as conn:
            conn.executemany(sql.replace("%s", "?"), as_text)
    else:
        import pymysql
        from live import MYSQL
        with pymysql.connect(**MYSQL, database=database.name) as conn:
            cur = conn.cursor()
            for at in range(0, N, 10_000):
                cur.executemany(sql, rows[at:at + 10_000])
            conn.commit()
    return rows


def _walk(server, query, pages=None):
    ids, cursor = [], None
    while pages is None or pages > 0:
        url = f"/tasks?{query}&limit=500" + (f"&cursor={cursor}" if cursor else "")
        body = server.request("GET", url, server.admin_token, expect=200).json()
        ids += [(t["id"], t["priority"], t["created_at"]) for t in body["tasks"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
        pages = None if pages is None else pages - 1
    return ids


@pytest.mark.slow
def test_paging_through_100k_tasks_returns_each_once_in_order(server):
    rows = _fill(server.database)
    pending = server.database.query("SELECT id, priority FROM tasks WHERE status = 'pending'")
    assert len(pending) == N - N // 10

    # three tasks share each created_at: 20 page boundaries fall among ties
    by_age = _walk(server, "status=pending&order_by=created_at", pages=20)
    assert [i for i, _, _ in by_age] == sorted(i for i, _ in pending)[:10_000]

    by_priority = _walk(server, "status=pending&order_by=priority")
    expected = sorted(pending, key=lambda r: (-r[1], r[0]))
    assert [i for i, _, _ in by_priority] == [i for i, _ in expected]

    fives = _walk(server, "status=pending&priority=5&order_by=-created_at")
    assert [i for i, _, _ in fives] == sorted((i for i, p in pending if p == 5), reverse=True)
    assert len(rows) == N
