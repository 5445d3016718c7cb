"""The board's results view and search over REST: GET /tasks with
order_by=-completed_at, outcome, completed_after/completed_before and q=, the
export's outcome filter, and GET /stats/completions (completions per bucket
from completed_at, so what happened before anyone looked is there)."""
import json
from datetime import datetime, timedelta, timezone

from api_support import assert_error, execute


def _ids(server, query: str) -> list[int]:
    response = server.request("GET", "/tasks?" + query, server.admin_token)
    assert response.status_code == 200, (query, response.text)
    return [task["id"] for task in response.json()["tasks"]]


def _walk(server, query: str) -> list[int]:
    """Every page at one task a page: the cursor chain of the listing."""
    ids, cursor = [], None
    for _ in range(50):
        body = server.request("GET", f"/tasks?{query}&limit=1" + (f"&cursor={cursor}" if cursor
                                                                   else ""),
                              server.admin_token, expect=200).json()
        ids += [task["id"] for task in body["tasks"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return ids
    raise AssertionError("the cursor chain does not end")


def _utc(moment: datetime) -> str:
    return moment.isoformat() + "Z"


def _floor(server, connect):
    """Five tasks completed for real by alice (then given known times, reviewers
    and reasons underneath), one cancelled, two left open."""
    server.request("POST", "/queues", server.admin_token, expect=201, json={"name": "fruit"})
    alice = server.request("POST", "/users", server.admin_token, expect=201, json={
        "username": "alice", "password": "a-Password-123", "skills": {"default": 1, "fruit": 1}
    }).json()
    alice["token"] = server.login("alice", "a-Password-123")["access_token"]
    bob = server.create_user("bob")
    tasks = server.add_tasks([
        {"name": "Apple crate 1", "external_id": "ext-a1"},
        {"name": "Apple crate 2", "queue": "fruit"},
        {"name": "Pear box", "queue": "fruit", "external_id": "lot_7%"},
        {"name": "Banana"},
        {"name": "Cherry"},
        {"name": "Old plum"},
        {"name": "100% apple"},
        {"name": "100x apple"},
    ])
    server.request("PATCH", f"/tasks/{tasks[5]['id']}", server.admin_token, expect=200,
                   json={"status": "cancelled"})
    sock = connect(alice["token"])
    verdicts = [("pass", None), ("fail", "soft spot"), ("fail", None), ("pass", None),
                ("pass", None)]
    for task, (outcome, note) in zip(tasks[:5], verdicts):
        assert sock.task()["id"] == task["id"]
        extra = {"note": note} if note else {}
        assert sock.complete(task["id"], outcome, **extra)["ok"] is True
    # Microseconds as SQLAlchemy writes them (SQLite compares the stored text).
    now = datetime.now(timezone.utc).replace(tzinfo=None, microsecond=123456)
    base = now - timedelta(hours=2)
    times = [base + timedelta(minutes=10), base + timedelta(minutes=20),
             base + timedelta(minutes=30), base + timedelta(minutes=30),  # a tie: by id
             now - timedelta(hours=9)]
    owners = [alice["id"], alice["id"], bob["id"], bob["id"], alice["id"]]
    for task, done, owner in zip(tasks[:5], times, owners):
        execute(server.database, "UPDATE tasks SET completed_at = %s, assigned_at = %s, "
                "assignee_id = %s WHERE id = %s", done, done - timedelta(seconds=30), owner,
                task["id"])
    execute(server.database, "UPDATE tasks SET reasons = %s WHERE id = %s",
            json.dumps(["bruised"]), tasks[1]["id"])
    return tasks, times, base, alice, bob


def test_results_newest_completion_first_with_filters_and_search(server, connect):
    tasks, times, base, alice, bob = _floor(server, connect)
    t1, t2, t3, t4, t5, cancelled, hundred, hundred_x = [t["id"] for t in tasks]
    results = "status=completed&order_by=-completed_at"

    # Newest completion first; a tie on completed_at by id, descending; every
    # row exactly once along the cursor chain. Never-completed tasks are not listed.
    assert _ids(server, results) == [t4, t3, t2, t1, t5]
    assert _walk(server, results) == [t4, t3, t2, t1, t5]
    assert _ids(server, "order_by=-completed_at") == [t4, t3, t2, t1, t5]
    shown = server.request("GET", f"/tasks?{results}&outcome=fail", server.admin_token,
                           expect=200).json()["tasks"]
    assert [(t["id"], t["outcome"], t["reasons"], t["note"], t["assignee_id"]) for t in shown] \
        == [(t3, "fail", None, None, bob["id"]),
            (t2, "fail", ["bruised"], "soft spot", alice["id"])]
    assert shown[1]["completed_at"] == times[1].isoformat(timespec="milliseconds") + "Z"

    # Each filter narrows; they combine.
    assert _ids(server, f"{results}&outcome=pass") == [t4, t1, t5]
    assert _ids(server, f"{results}&queue=fruit") == [t3, t2]
    assert _ids(server, f"{results}&assignee_id={bob['id']}") == [t4, t3]
    assert _walk(server, f"{results}&assignee_id={alice['id']}") == [t2, t1, t5]
    # The window: completed_after inclusive, completed_before exclusive.
    assert _ids(server, f"{results}&completed_after={_utc(times[1])}") == [t4, t3, t2]
    assert _ids(server, f"{results}&completed_before={_utc(times[1])}") == [t1, t5]
    assert _ids(server, f"{results}&completed_after={_utc(base)}"
                f"&completed_before={_utc(times[2])}") == [t2, t1]
    assert _walk(server, f"{results}&completed_after={_utc(base)}") == [t4, t3, t2, t1]
    assert _ids(server, f"{results}&outcome=fail&queue=fruit"
                f"&completed_before={_utc(base + timedelta(minutes=25))}") == [t2]
    assert _ids(server, f"{results}&outcome=pass&queue=fruit") == []

    # Refusals: the window belongs to the -completed_at order; a bad outcome.
    assert_error(server.request("GET", f"/tasks?completed_after={_utc(base)}",
                                server.admin_token), 422, "bad_order")
    assert_error(server.request("GET", "/tasks?order_by=-completed_at&outcome=maybe",
                                server.admin_token), 422, "bad_outcome")
    assert_error(server.request("GET", "/tasks?order_by=-completed_at&completed_after=soon",
                                server.admin_token), 422)
    assert_error(server.request("GET", f"/tasks?{results}", bob_token(server)), 403)

    # Search: external_id exactly, or the start of a name (% and _ are letters).
    assert _ids(server, "q=ext-a1") == [t1]
    assert _ids(server, "q=ext-a") == []  # not a prefix match on external_id
    assert _ids(server, "q=Apple") == [t1, t2]
    assert _ids(server, "q=Apple%20crate%202") == [t2]
    assert _ids(server, "q=pple") == []  # a prefix, not a substring
    assert _ids(server, "q=lot_7%25") == [t3]
    assert _ids(server, "q=lot") == []
    assert _ids(server, "q=100%25") == [hundred]
    assert _ids(server, "q=100_") == []
    assert _ids(server, "q=%20Banana%20&order_by=-created_at") == [t4]
    assert _ids(server, "q=Apple&order_by=-created_at") == [t2, t1]
    assert _ids(server, f"q=Apple&status=completed&assignee_id={alice['id']}") == [t1, t2]
    assert _ids(server, "q=Old") == [cancelled]
    assert _ids(server, "q=100") == [hundred, hundred_x]
    assert_error(server.request("GET", "/tasks?q=", server.admin_token), 422)
    assert_error(server.request("GET", "/tasks?q=" + "x" * 256, server.admin_token), 422)

    # The export shares the filters: outcome and the window.
    lines = server.request("GET", f"/tasks/export?format=ndjson&outcome=fail"
                           f"&completed_after={_utc(base)}", server.admin_token,
                           expect=200).text.splitlines()
    assert [json.loads(line)["id"] for line in lines] == [t2, t3]


def bob_token(server) -> str:
    return server.login("bob")["access_token"]


def test_completions_per_bucket_from_the_servers_history(server, connect):
    tasks, times, base, _alice, _bob = _floor(server, connect)
    body = server.request("GET", "/stats/completions?hours=8&bucket_s=3600",
                          server.admin_token, expect=200).json()
    assert set(body) == {"hours", "bucket_s", "at", "buckets"}
    assert (body["hours"], body["bucket_s"]) == (8, 3600)
    buckets = body["buckets"]
    starts = [datetime.fromisoformat(b["start"].replace("Z", "")) for b in buckets]
    at = datetime.fromisoformat(body["at"].replace("Z", ""))
    # Whole hours, one after the other, from at or before now - 8 h to the one holding now.
    assert all(s.minute == s.second == s.microsecond == 0 for s in starts)
    assert all(b - a == timedelta(hours=1) for a, b in zip(starts, starts[1:]))
    assert starts[0] <= at - timedelta(hours=8) < starts[0] + timedelta(hours=1)
    assert starts[-1] <= at < starts[-1] + timedelta(hours=1)
    for bucket in buckets:
        assert set(bucket) == {"start", "completed", "pass", "fail"}
    # The four completions of the last 8 hours, in the buckets their times fall in
    # (the one 9 hours ago is outside).
    expected = {}
    for done, outcome in zip(times[:4], ("pass", "fail", "fail", "pass")):
        start = done.replace(minute=0, second=0, microsecond=0)
        figures = expected.setdefault(start, {"completed": 0, "pass": 0, "fail": 0})
        figures["completed"] += 1
        figures[outcome] += 1
    got = {s: {k: b[k] for k in ("completed", "pass", "fail")}
           for s, b in zip(starts, buckets) if b["completed"]}
    assert got == expected
    assert sum(b["completed"] for b in buckets) == 4

    # A wider span reaches the one 9 hours ago; narrower buckets split the tie's neighbours.
    wide = server.request("GET", "/stats/completions?hours=24&bucket_s=1800",
                          server.admin_token, expect=200).json()["buckets"]
    assert sum(b["completed"] for b in wide) == 5
    assert sum(b["pass"] for b in wide) == 3 and sum(b["fail"] for b in wide) == 2
    assert len(wide) in (48, 49)
    fine = server.request("GET", "/stats/completions?hours=3&bucket_s=600",
                          server.admin_token, expect=200).json()["buckets"]
    assert sorted(b["completed"] for b in fine if b["completed"]) == [1, 1, 2]
    # Defaults: the last 8 hours in 10-minute buckets.
    default = server.request("GET", "/stats/completions", server.admin_token,
                             expect=200).json()
    assert (default["hours"], default["bucket_s"]) == (8, 600)
    assert len(default["buckets"]) in (48, 49)

    # A new completion counts at once, in the last bucket.
    sock = connect(server.login("alice", "a-Password-123")["access_token"])
    held = sock.task()
    assert sock.complete(held["id"], "fail")["ok"] is True
    after = server.request("GET", "/stats/completions?hours=8&bucket_s=3600",
                           server.admin_token, expect=200).json()["buckets"]
    assert after[-1]["completed"] == buckets[-1]["completed"] + 1
    assert after[-1]["fail"] == buckets[-1]["fail"] + 1

    for query, status, code in (("hours=0", 422, "out_of_range"),
                                ("hours=169", 422, "out_of_range"),
                                ("bucket_s=59", 422, "out_of_range"),
                                ("hours=168&bucket_s=60", 422, "too_many_buckets"),
                                ("hours=x", 400, None), ("span=3", 400, "unknown_field")):
        assert_error(server.request("GET", f"/stats/completions?{query}", server.admin_token),
                     status, code)
    assert_error(server.request("GET", "/stats/completions", bob_token(server)), 403)
    assert_error(server.request("GET", "/stats/completions"), 401)


def test_completions_read_a_range_of_the_completion_index(app):
    """GET /stats/completions reads status = completed AND completed_at in the
    window from ix_tasks_completed: never a scan of the table."""
    import sqlalchemy as sa

    from qc_live.extensions import db
    from test_task_listing import _insert_tasks, _plans
    _insert_tasks(db.session, 3000)
    sqlite = db.engine.dialect.name == "sqlite"
    db.session.execute(sa.text("ANALYZE" if sqlite else "ANALYZE TABLE tasks"))
    db.session.commit()
    plans = _plans(app, "/stats/completions?hours=24&bucket_s=600")
    assert len(plans) == 1
    statement, plan = plans[0]
    where = f"{statement}\n{plan}"
    if sqlite:
        details = [row[-1] for row in plan]
        assert details[0].startswith("SEARCH tasks USING INDEX ix_tasks_completed "
                                     "(status=? AND completed_at>? AND completed_at<?)"), where
    else:
        assert [(row[3], row[5]) for row in plan] == [("range", "ix_tasks_completed")], where
