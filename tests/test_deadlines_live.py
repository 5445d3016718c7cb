"""Deadlines: expiry by the server itself, and urgency within a priority."""
from datetime import datetime, timedelta, timezone

from live import wait_until


def at(seconds: float) -> str:
    return (datetime.now(timezone.utc) + timedelta(seconds=seconds)).isoformat()


def test_a_task_past_its_deadline_is_revoked_from_its_holder_and_expired(server, connect):
    alice = server.reviewer("alice")
    doomed, later = server.add_tasks([{"name": "doomed", "deadline": at(1.5)},
                                      {"name": "later"}])
    sock = connect(alice["token"])
    assert sock.task()["id"] == doomed["id"]  # due soon, so first
    assert sock.next("task-revoked", timeout=6) == {"task_id": doomed["id"],
                                                    "reason": "expired"}
    assert sock.task()["id"] == later["id"]  # and the next one follows
    assert server.task(doomed["id"])["status"] == "expired"
    late = sock.complete(doomed["id"])
    assert late["ok"] is False and late["error"]["code"] == "task_not_assigned"


def test_a_pending_task_past_its_deadline_expires_without_anyone_holding_it(server):
    [task] = server.add_tasks({"name": "nobody here", "deadline": at(0.5)})
    wait_until(lambda: server.task(task["id"])["status"] == "expired", timeout=6,
               what="expiry")


def test_tasks_due_soon_go_first_within_their_priority_but_not_above_it(server, connect):
    alice = server.reviewer("alice")
    made = server.add_tasks([
        {"name": "old, no deadline"},
        {"name": "due in 20 min", "deadline": at(1200)},
        {"name": "due in 5 min", "deadline": at(300)},
        {"name": "due next week", "deadline": at(7 * 86400)},
        {"name": "high priority", "priority": 3},
    ])
    sock = connect(alice["token"])
    order = []
    task = sock.task()
    while True:
        order.append(task["name"])
        sock.complete(task["id"])
        kind, data = sock.next()
        if kind != "task-assigned":
            break
        task = data["task"]
    assert order == ["high priority", "due in 5 min", "due in 20 min", "old, no deadline",
                     "due next week"]
    assert len(order) == len(made)
