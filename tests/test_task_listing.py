"""GET /tasks: filters, the four orders, and keyset cursors that give every row
exactly once, in order — checked against the database underneath; plus the
query plans (every page is index range reads, never a sort or a scan)."""
import base64
import itertools
import json
import random
from datetime import datetime, timedelta

import sqlalchemy as sa

from api_support import SUPERVISED_TASK_FIELDS, assert_error, execute

STATUSES = ("pending", "assigned", "completed", "cancelled", "expired")


def _page(server, query: str, token=None) -> dict:
    response = server.request("GET", "/tasks?" + query, token or server.admin_token)
    assert response.status_code == 200, (query, response.text)
    body = response.json()
    assert set(body) == {"tasks", "next_cursor"}
    return body


def _walk(server, query: str, limit: int) -> list[dict]:
    """Every page of a listing, following next_cursor to the end."""
    tasks, cursor, pages = [], None, 0
    while True:
        body = _page(server, f"{query}&limit={limit}" + (f"&cursor={cursor}" if cursor else ""))
        pages += 1
        assert len(body["tasks"]) <= limit
        if body["next_cursor"] is not None:
            assert len(body["tasks"]) == limit, "a page before the end is full"
        tasks += body["tasks"]
        cursor = body["next_cursor"]
        if cursor is None:
            return tasks
        assert pages < 1000, "the cursor chain does not end"


def _when(value):
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def _rows(database) -> list[dict]:
    """The tasks as the database holds them (full timestamp precision)."""
    return [{"id": i, "status": s, "priority": p, "assignee_id": a,
             "created_at": _when(c), "deadline": _when(d) if d is not None else None}
            for i, s, p, a, c, d in database.query(
                "SELECT id, status, priority, assignee_id, created_at, deadline FROM tasks")]


SORTS = {
    "created_at": lambda t: (t["created_at"], t["id"]),
    "-created_at": lambda t: (-t["created_at"].timestamp(), -t["id"]),
    "priority": lambda t: (-t["priority"], t["created_at"], t["id"]),
    "deadline": lambda t: (t["deadline"] is None, t["deadline"] or datetime.min, t["id"]),
}


def _fill(server, reviewers, connect) -> None:
    """2,000 tasks in lists of 250 (so created_at ties are common, as in real
    imports), then a realistic spread of statuses and assignees."""
    rng = random.Random(3)
    soon = datetime.utcnow() + timedelta(days=3)
    for batch in range(8):
        server.add_tasks(*[{
            "name": f"task {batch}-{n}", "priority": rng.choice([-1, 0, 0, 0, 1, 2, 3]),
            # Few distinct deadlines: ties on the deadline too.
            "deadline": (soon + timedelta(hours=rng.randrange(6))).isoformat() + "Z"
            if rng.random() < 0.3 else None,
        } for n in range(250)])
    # The reviewers come online and each claims a task, for real.
    held = {connect(reviewer["token"]).task()["id"] for reviewer in reviewers}
    # Finished tasks get their status underneath the API (listing only reads).
    ids = [row[0] for row in server.database.query("SELECT id FROM tasks ORDER BY id")
           if row[0] not in held]
    rng.shuffle(ids)
    groups = {}
    for n, task_id in enumerate(ids[:1100]):
        status = ("completed", "completed", "cancelled", "expired")[n % 4]
        groups.setdefault((status, reviewers[n % len(reviewers)]["id"]), []).append(task_id)
    for (status, reviewer_id), group in groups.items():
        marks = ", ".join(["%s"] * len(group))
        execute(server.database, f"UPDATE tasks SET status = %s, assignee_id = %s "
                f"WHERE id IN ({marks})", status, reviewer_id, *group)


def test_paging_gives_every_row_exactly_once_in_order_for_every_order_and_filter(server,
                                                                                 connect):
    reviewers = [server.reviewer(f"rev{n}") for n in range(3)]
    _fill(server, reviewers, connect)
    rows = _rows(server.database)
    assert len(rows) == 2000
    alice = reviewers[0]["id"]
    filters = {
        "": lambda t: True,
        "status=pending": lambda t: t["status"] == "pending",
        "status=completed,cancelled": lambda t: t["status"] in ("completed", "cancelled"),
        "status=assigned&status=expired": lambda t: t["status"] in ("assigned", "expired"),
        f"assignee_id={alice}": lambda t: t["assignee_id"] == alice,
        "priority=2": lambda t: t["priority"] == 2,
        "status=pending&priority=0": lambda t: t["status"] == "pending" and t["priority"] == 0,
        f"status=completed&assignee_id={alice}":
            lambda t: t["status"] == "completed" and t["assignee_id"] == alice,
    }
    for query, keep in filters.items():
        for order_by, sort in SORTS.items():
            expected = [t["id"] for t in sorted(filter(keep, rows), key=sort)]
            limit = 97 if not query else 41
            got = _walk(server, f"order_by={order_by}&{query}", limit)
            ids = [t["id"] for t in got]
            assert len(ids) == len(set(ids)), (query, order_by, "a row came twice")
            assert ids == expected, (query, order_by)
            for task in got[:3]:
                assert set(task) == SUPERVISED_TASK_FIELDS
    # The shown fields agree with the filters.
    for task in _walk(server, f"status=completed&assignee_id={alice}", 500):
        assert (task["status"], task["assignee_id"]) == ("completed", alice)


def test_defaults_limits_the_end_of_the_chain_and_bad_queries(server):
    server.add_tasks(*[{"name": f"t{n}"} for n in range(120)])
    body = _page(server, "")
    assert len(body["tasks"]) == 50 and body["next_cursor"]  # default limit 50
    # Default order: oldest first (created_at, then id).
    assert [t["id"] for t in body["tasks"]] == sorted(t["id"] for t in body["tasks"])
    body = _page(server, "limit=500")
    assert len(body["tasks"]) == 120 and body["next_cursor"] is None
    body = _page(server, "limit=120")
    assert len(body["tasks"]) == 120 and body["next_cursor"] is None
    body = _page(server, "limit=119")
    last = _page(server, f"limit=119&cursor={body['next_cursor']}")
    assert len(last["tasks"]) == 1 and last["next_cursor"] is None
    assert _page(server, "status=expired") == {"tasks": [], "next_cursor": None}
    assert _page(server, "assignee_id=424242") == {"tasks": [], "next_cursor": None}

    # Bad queries: 400 (wrong type, unknown, not our cursor) or 422 (bad value).
    cursor = _page(server, "limit=1&order_by=priority")["next_cursor"]
    forged = base64.urlsafe_b64encode(json.dumps(
        {"o": "priority", "p": 0, "k": ["high", "x", 1]}).encode()).decode().rstrip("=")
    cases = [
        ("status=done", 422), ("status=pending,bogus", 422), ("status=", 422),
        ("order_by=name", 422), ("order_by=", 422), ("order_by=created_at&order_by=priority", 400),
        ("limit=0", 422), ("limit=501", 422), ("limit=-5", 422), ("limit=ten", 400),
        ("limit=1.5", 400), ("limit=99999999999999999999999", 400),
        ("priority=high", 400), ("priority=1000001", 422),
        ("assignee_id=0", 422), ("assignee_id=x", 400), ("assignee_id=9223372036854775808", 422),
        ("sort=priority", 400), ("offset=10", 400),
        ("cursor=not-a-cursor", 400), ("cursor=%%%", 400), ("cursor=" + "A" * 600, 400),
        (f"order_by=created_at&cursor={cursor}", 400),  # made for order_by=priority
        (f"order_by=priority&cursor={forged}", 400),
        ("order_by=priority&cursor=" + base64.urlsafe_b64encode(b"[1, 2]").decode(), 400),
    ]
    for query, status in cases:
        response = server.request("GET", "/tasks?" + query, server.admin_token)
        assert response.status_code == status, (query, response.text)
        error = assert_error(response, status)
        if query.startswith(("cursor", "order_by=created_at&cursor", "order_by=priority&c")):
            assert error["code"] == "bad_cursor", (query, error)
    # The good cursor still works with its own order.
    assert len(_page(server, f"order_by=priority&limit=1&cursor={cursor}")["tasks"]) == 1


# --- query plans ------------------------------------------------------------------

def _insert_tasks(session, count: int) -> None:
    from qc_live.models import Task
    rng = random.Random(5)
    start = datetime(2025, 1, 1)
    session.execute(sa.insert(Task), [{
        "name": f"t{n}", "payload": {}, "priority": rng.choice([0, 0, 1, 2]),
        "status": STATUSES[n % 5] if n % 5 != 1 else "completed",
        "assignee_id": None, "created_at": start + timedelta(seconds=n // 10),
        "updated_at": start, "deadline": start + timedelta(hours=n % 50) if n % 3 else None,
        "completed_at": start + timedelta(seconds=n // 7) if n % 5 in (1, 2) else None,
        "outcome": ("pass", "fail")[n % 2] if n % 5 in (1, 2) else None,
    } for n in range(count)])
    session.commit()


def _plans(app, url: str) -> list[tuple[str, list]]:
    """(statement, plan rows) of every query on `tasks` one request runs."""
    from qc_live.extensions import db
    statements = []

    def capture(_conn, _cursor, statement, parameters, _context, _many):
        if statement.lstrip().upper().startswith("SELECT") and "FROM tasks" in statement:
            if " OFFSET " in statement:
                # SQLAlchemy's SQLite dialect always writes OFFSET; it must skip nothing.
                assert statement.rstrip().endswith("LIMIT ? OFFSET ?") and parameters[-1] == 0
            statements.append((statement, parameters))
    client = app.test_client()
    token = client.post("/login", json={"username": "admin", "password": "admin-password-1"}) \
        .json["access_token"]
    sa.event.listen(db.engine, "before_cursor_execute", capture)
    try:
        response = client.get(url, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.json
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", capture)
    sqlite = db.engine.dialect.name == "sqlite"
    with db.engine.connect() as conn:
        return [(statement, conn.exec_driver_sql(
            ("EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN ") + statement, parameters).all())
            for statement, parameters in statements]


def test_every_page_is_index_range_reads_without_sorting(app):
    """No OFFSET, no full scan, no sort step, at any depth: what keeps a page
    fast at a million rows (bench/list_tasks.py measures it)."""
    from qc_live.extensions import db
    from qc_live.listing import ORDERS, encode_cursor
    _insert_tasks(db.session, 3000)
    sqlite = db.engine.dialect.name == "sqlite"
    db.session.execute(sa.text("ANALYZE" if sqlite else "ANALYZE TABLE tasks"))
    db.session.commit()
    deep = {"created_at": (0, (datetime(2025, 1, 1, 0, 2), 1500)),
            "-created_at": (0, (datetime(2025, 1, 1, 0, 2), 1500)),
            "priority": (0, (1, datetime(2025, 1, 1, 0, 2), 1500)),
            "deadline": (0, (datetime(2025, 1, 1, 20), 1500)),
            "-completed_at": (0, (datetime(2025, 1, 1, 0, 2), 1500))}
    queries = ["", "status=pending", "status=completed,cancelled", "status=pending&priority=1",
               "priority=2", "q=t12", "queue=default&outcome=fail"]
    window = "status=completed&outcome=pass&completed_after=2025-01-01T00:01:00" \
        "&completed_before=2025-01-01T00:04:00"
    for query, order_by in [*itertools.product(queries, ORDERS), (window, "-completed_at")]:
        for cursor in (None, encode_cursor(order_by, *deep[order_by])):
            url = f"/tasks?order_by={order_by}&limit=50&{query}" + \
                (f"&cursor={cursor}" if cursor else "")
            plans = _plans(app, url)
            assert plans, url
            for statement, plan in plans:
                where = f"{url}\n{statement}\n{plan}"
                if sqlite:
                    details = [row[-1] for row in plan]
                    assert all(d.startswith("SEARCH tasks USING") for d in details), where
                    assert not any("TEMP B-TREE" in d for d in details), where
                else:
                    for row in plan:  # id, select_type, table, type, keys, key, len, ref, rows, Extra
                        extra = row[9] or ""
                        if extra.startswith("Impossible WHERE"):
                            continue  # e.g. priority=2 and a cursor part at priority 1: no read
                        assert "filesort" not in extra, where
                        if "tasks.id IN" in statement:
                            assert row[5] == "PRIMARY", where
                            continue
                        # A part ending in "id > i" must seek on the id too ("range"):
                        # "ref" would walk the equal prefix from its start.
                        seeks = ("range",) if ".id >" in statement or ".id <" in statement \
                            else ("range", "ref")
                        assert row[3] in seeks, where
