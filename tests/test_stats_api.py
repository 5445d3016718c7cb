"""GET /stats (the floor) and GET /users/<id>/stats (one reviewer)."""
from datetime import datetime, timedelta, timezone

from api_support import assert_error, execute

STATS_FIELDS = {"id", "username", "completed_today", "completed_total", "passed", "failed",
                "median_handle_s", "fail_reasons"}


def test_floor_and_reviewer_stats_follow_completions(server, connect):
    alice = server.reviewer("alice")
    bob = server.reviewer("bob")
    sock = connect(alice["token"])
    sock.next("idle")
    first, second, _third, _fourth = server.add_tasks(
        {"name": "a", "priority": 3}, {"name": "b", "priority": 3}, {"name": "c", "priority": 1},
        {"name": "d"})
    assert sock.task()["id"] == first["id"]
    assert sock.complete(first["id"], "pass")["ok"] is True
    assert sock.task()["id"] == second["id"]
    assert sock.complete(second["id"], "fail")["ok"] is True
    sock.task()
    # Handling times a test can predict: 30 s and 90 s.
    done = datetime.now(timezone.utc).replace(tzinfo=None, microsecond=123456)
    for task, seconds in ((first, 30), (second, 90)):
        execute(server.database, "UPDATE tasks SET assigned_at = %s, completed_at = %s "
                "WHERE id = %s", done - timedelta(seconds=seconds), done, task["id"])

    stats = server.request("GET", "/stats", server.admin_token, expect=200).json()
    assert set(stats) == {"queue", "reviewers", "fail_reasons", "at"}
    assert stats["fail_reasons"] == {}  # no queue has a form: fails without reasons
    assert stats["queue"] == {"pending": 1, "assigned": 1, "by_priority": {"0": 1},
                              "oldest_pending_age_s": stats["queue"]["oldest_pending_age_s"],
                              "completed_last_hour": 2, "median_handle_s": 60.0}
    assert stats["queue"]["oldest_pending_age_s"] >= 0
    rows = {row["username"]: row for row in stats["reviewers"]}
    assert set(rows) == {"alice", "bob"}
    assert rows["alice"] == {"id": alice["id"], "username": "alice", "completed_today": 2,
                             "completed_total": 2, "passed": 1, "failed": 1,
                             "median_handle_s": 60.0, "fail_reasons": {}}
    assert rows["bob"]["completed_total"] == 0 and rows["bob"]["median_handle_s"] is None
    # The same figures as the board.
    board = server.request("GET", "/board", server.admin_token, expect=200).json()
    assert {k: board["queue"][k] for k in ("pending", "assigned", "by_priority")} == \
        {k: stats["queue"][k] for k in ("pending", "assigned", "by_priority")}
    # (fail_reasons: GET /stats only, tests/test_forms_api.py)
    assert board["stats"]["reviewers"] == [{k: v for k, v in r.items() if k != "fail_reasons"}
                                           for r in stats["reviewers"]]

    # One reviewer: itself, or a supervisor.
    mine = server.request("GET", f"/users/{alice['id']}/stats", alice["token"], expect=200).json()
    assert set(mine) == STATS_FIELDS and mine == rows["alice"]
    assert server.request("GET", f"/users/{alice['id']}/stats", server.admin_token,
                          expect=200).json() == rows["alice"]
    assert_error(server.request("GET", f"/users/{alice['id']}/stats", bob["token"]), 403)
    assert_error(server.request("GET", f"/users/{alice['id']}/stats"), 401)
    assert_error(server.request("GET", "/users/999999/stats", server.admin_token), 404)
    admin_id = server.login("admin", "admin-password-1")["user"]["id"]
    assert_error(server.request("GET", f"/users/{admin_id}/stats", server.admin_token), 422,
                 "not_a_reviewer")
    assert_error(server.request("GET", "/stats", alice["token"]), 403)
