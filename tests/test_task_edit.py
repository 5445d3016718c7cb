"""PATCH /tasks/<id> (edit, cancel) and GET /tasks/<id>/history, against a live
server with real reviewer sockets."""
from datetime import datetime

from api_support import SUPERVISED_TASK_FIELDS, assert_error, count


def _patch(server, task_id, body, token=None):
    return server.request("PATCH", f"/tasks/{task_id}", token or server.admin_token, json=body)


def _history(server, task_id, token=None) -> list[dict]:
    response = server.request("GET", f"/tasks/{task_id}/history", token or server.admin_token)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"task_id", "events"} and body["task_id"] == task_id
    for event in body["events"]:
        assert set(event) == {"at", "kind", "reviewer_id", "actor_id", "detail"}, event
    return body["events"]


def _supervisor(server) -> dict:
    user = server.create_user("sue", role="supervisor")
    return {**user, "token": server.login("sue")["access_token"]}


def test_edits_reach_the_holder_at_once_and_are_recorded(server, connect):
    sue = _supervisor(server)
    alice = server.reviewer("alice")
    # A new priority moves a pending task in the queue.
    low, high = server.add_tasks({"name": "low"}, {"name": "high", "priority": 5})
    edited = _patch(server, low["id"], {"priority": 9}).json()
    assert (edited["priority"], edited["status"]) == (9, "pending")
    sock = connect(alice["token"])
    assert sock.task()["id"] == low["id"]
    assert sock.complete(low["id"])["ok"] is True
    assert sock.task()["id"] == high["id"]
    assert sock.complete(high["id"])["ok"] is True
    assert sock.next("idle") == {"reason": "queue-empty"}
    task = server.add_tasks({"name": "lid", "payload": {"sku": "A"}, "priority": 1,
                             "deadline": "2031-01-01T00:00:00Z"})[0]
    assert sock.task()["id"] == task["id"]

    response = _patch(server, task["id"], {"name": "lid (recheck)", "payload": {"sku": "B"},
                                           "priority": 4}, sue["token"])
    assert response.status_code == 200, response.text
    edited = response.json()
    assert set(edited) == SUPERVISED_TASK_FIELDS
    assert (edited["name"], edited["payload"], edited["priority"], edited["status"],
            edited["assignee_id"]) == ("lid (recheck)", {"sku": "B"}, 4, "assigned", alice["id"])
    assert edited["deadline"] == task["deadline"]  # untouched fields stay
    pushed = sock.task()
    # The holder sees the new version, same id (without the supervisor's fields).
    assert pushed == {k: v for k, v in edited.items() if k in pushed}
    assert set(pushed) == SUPERVISED_TASK_FIELDS - {"expected_outcome", "audit",
                                                    "final_outcome", "final_note",
                                                    "finalized_at"}

    cleared = _patch(server, task["id"], {"deadline": None}, sue["token"]).json()
    assert cleared["deadline"] is None and sock.task()["deadline"] is None
    moved = _patch(server, task["id"], {"deadline": "2032-02-02T10:00:00+01:00"}).json()
    assert moved["deadline"] == "2032-02-02T09:00:00.000Z"
    pushed = sock.task()
    assert pushed == {k: v for k, v in moved.items() if k in pushed}
    assert server.task(task["id"]) == moved

    # An edit that changes nothing pushes nothing and records nothing.
    same = _patch(server, task["id"], {"name": "lid (recheck)"}).json()
    assert same == moved
    assert sock.quiet(0.5) == []

    kinds = [(e["kind"], e["reviewer_id"], e["actor_id"], e["detail"])
             for e in _history(server, task["id"])]
    admin_id = server.login("admin", "admin-password-1")["user"]["id"]
    assert kinds == [
        ("created", None, admin_id, None),
        ("assigned", alice["id"], None, None),
        ("updated", alice["id"], sue["id"], {"fields": ["name", "payload", "priority"]}),
        ("updated", alice["id"], sue["id"], {"fields": ["deadline"]}),
        ("updated", alice["id"], admin_id, {"fields": ["deadline"]}),
    ]


def test_cancelling_a_held_task_revokes_it_and_hands_out_the_next(server, connect):
    alice = server.reviewer("alice")
    sock = connect(alice["token"])
    sock.next("idle")
    first, second = server.add_tasks({"name": "first", "priority": 1}, {"name": "second"})
    assert sock.task()["id"] == first["id"]

    response = _patch(server, first["id"], {"status": "cancelled"})
    assert response.status_code == 200, response.text
    cancelled = response.json()
    assert (cancelled["id"], cancelled["status"]) == (first["id"], "cancelled")
    assert sock.next("task-revoked") == {"task_id": first["id"], "reason": "cancelled"}
    assert sock.task()["id"] == second["id"]
    assert server.task(first["id"])["status"] == "cancelled"
    # Completing it now is a conflict; so is cancelling or editing it again.
    assert sock.complete(first["id"])["ok"] is False
    assert_error(_patch(server, first["id"], {"status": "cancelled"}), 409, "task_final")
    assert_error(_patch(server, first["id"], {"name": "again"}), 409, "task_final")
    kinds = [(e["kind"], e["reviewer_id"]) for e in _history(server, first["id"])]
    assert kinds == [("created", None), ("assigned", alice["id"]), ("cancelled", alice["id"])]

    # A cancelled pending task is never handed out.
    third = server.add_tasks({"name": "third"})[0]
    _patch(server, third["id"], {"status": "cancelled"})
    assert sock.complete(second["id"])["ok"] is True
    assert sock.next("idle") == {"reason": "queue-empty"}
    assert server.task(third["id"])["status"] == "cancelled"


def test_bad_patches_are_refused_and_change_nothing(server):
    task = server.add_tasks({"name": "t", "payload": {"a": 1}, "priority": 2})[0]
    cases = [
        ({}, 400), ([], 400), ("x", 400), (None, 400),
        ({"colour": "red"}, 400), ({"name": "n", "external_id": "e"}, 400),
        ({"status": "completed"}, 422), ({"status": "pending"}, 422), ({"status": 1}, 400),
        ({"status": "cancelled", "name": "n"}, 400),
        ({"name": None}, 400), ({"name": ""}, 422), ({"name": "  "}, 422),
        ({"name": "n" * 256}, 422), ({"name": 5}, 400),
        ({"payload": None}, 400), ({"payload": [1]}, 400), ({"payload": {"b": "x" * 70_000}}, 422),
        ({"priority": None}, 400), ({"priority": "1"}, 400), ({"priority": 10**9}, 422),
        ({"priority": True}, 400),
        ({"deadline": "soon"}, 422), ({"deadline": 17}, 400),
    ]
    for body, status in cases:
        response = _patch(server, task["id"], body)
        assert response.status_code == status, (body, response.text)
        assert_error(response, status)
    assert_error(server.request("PATCH", f"/tasks/{task['id']}", server.admin_token,
                                data=b"{nope", headers={"Content-Type": "application/json"}),
                 400, "invalid_json")
    assert_error(_patch(server, 999999, {"name": "x"}), 404, "task_not_found")
    assert_error(_patch(server, 2**64, {"name": "x"}), 404)
    assert server.task(task["id"]) == task
    assert count(server.database, "task_events") == 1  # "created" only


def test_history_for_supervisors_and_the_reviewers_who_held_the_task(server, connect):
    alice = server.reviewer("alice")
    bob = server.reviewer("bob")
    carol = server.reviewer("carol")
    a_sock = connect(alice["token"])
    a_sock.next("idle")
    task = server.add_tasks({"name": "passed around"})[0]
    assert a_sock.task()["id"] == task["id"]
    # Released while bob waits: bob gets it (alice, freed last, is idle shortest).
    b_sock = connect(bob["token"])
    b_sock.next("idle")
    server.request("POST", f"/tasks/{task['id']}/release", server.admin_token, expect=200)
    assert a_sock.next("task-revoked")["reason"] == "released"
    assert b_sock.task()["id"] == task["id"]
    assert b_sock.complete(task["id"], outcome="fail")["ok"] is True

    events = _history(server, task["id"])
    assert [(e["kind"], e["reviewer_id"]) for e in events] == [
        ("created", None), ("assigned", alice["id"]), ("released", alice["id"]),
        ("assigned", bob["id"]), ("completed", bob["id"])]
    assert events[-1]["detail"] == {"outcome": "fail"}
    times = [datetime.fromisoformat(e["at"].replace("Z", "+00:00")) for e in events]
    assert times == sorted(times)

    # Both holders may read it (also after it left them), alice without bob's
    # verdict (she could be its blind auditor); carol may not.
    assert _history(server, task["id"], alice["token"]) == \
        events[:-1] + [{**events[-1], "detail": None}]
    assert _history(server, task["id"], bob["token"]) == events
    assert_error(server.request("GET", f"/tasks/{task['id']}/history", carol["token"]), 403,
                 "not_your_task")
    for token in (server.admin_token, alice["token"]):
        assert_error(server.request("GET", "/tasks/999999/history", token), 404)
    assert_error(server.request("GET", f"/tasks/{task['id']}/history"), 401)
