"""An offer nobody acknowledges is taken back and handed on (QC_ACK_TIMEOUT)."""
import threading
import time

import socketio

from live import Reviewer, wait_until


def test_a_frozen_tab_loses_its_offer_to_the_next_reviewer_and_is_paused(start_server):
    server = start_server(QC_ACK_TIMEOUT="1.5")
    frozen_user, ready_user = server.reviewer("frozen"), server.reviewer("ready")
    thaw = threading.Event()
    seen = []

    # A tab whose script hangs on the first task: the client's event loop is
    # blocked, so no Socket.IO ack ever goes back.
    frozen = socketio.Client(reconnection=False)

    @frozen.on("task-assigned", namespace="/reviewer")
    def hang(data):
        seen.append(("task-assigned", data))
        thaw.wait(30)
        return {"ok": True}

    for kind in ("task-revoked", "idle"):
        frozen.on(kind, lambda data, kind=kind: seen.append((kind, data)),
                  namespace="/reviewer")
    frozen.connect(server.url, namespaces=["/reviewer"], auth={"token": frozen_user["token"]},
                   wait_timeout=10)
    try:
        wait_until(lambda: seen == [("idle", {"reason": "queue-empty"})], what="idle")
        seen.clear()
        [task] = server.add_tasks({"name": "hot potato"})
        wait_until(lambda: seen, what="the offer to the frozen tab")
        assert seen[0][1]["task"]["id"] == task["id"]

        ready = Reviewer(server, ready_user["token"]).connect()
        got = ready.task(timeout=10)  # once the offer times out it moves on
        assert got["id"] == task["id"] and got["assignee_id"] == ready_user["id"]
        assert server.task(task["id"])["assignee_id"] == ready_user["id"]

        thaw.set()  # the tab wakes up and learns why
        wait_until(lambda: len(seen) >= 3, what="revoked and idle after thawing")
        assert seen[1] == ("task-revoked", {"task_id": task["id"], "reason": "unacknowledged"})
        assert seen[2] == ("idle", {"reason": "paused"})
        users = server.request("GET", "/users", server.admin_token, expect=200).json()["users"]
        assert next(u for u in users if u["id"] == frozen_user["id"])["available"] is False
        ready.disconnect()
    finally:
        thaw.set()
        frozen.disconnect()


def test_an_acknowledged_offer_stays_however_long_the_task_takes(start_server, connect):
    server = start_server(QC_ACK_TIMEOUT="1")
    alice = server.reviewer("alice")
    [task] = server.add_tasks({"name": "slow work"})
    sock = connect(alice["token"], on=server)
    assert sock.task()["id"] == task["id"]
    assert sock.quiet(2.5) == []  # well past the timeout: acked, so nothing happens
    assert server.task(task["id"])["assignee_id"] == alice["id"]
    assert sock.complete(task["id"])["ok"] is True


def test_a_task_handed_out_over_rest_counts_as_acknowledged(start_server):
    server = start_server(QC_ACK_TIMEOUT="1", QC_GRACE_SECONDS="30")
    alice = server.reviewer("alice")
    server.add_tasks([{"name": "one"}, {"name": "two"}])
    claimed = server.request("PUT", "/availability", alice["token"], expect=200,
                             json={"availability": 1}).json()["task"]
    nxt = server.request("POST", "/complete_task", alice["token"], expect=200,
                         json={"task_id": claimed["id"]}).json()["next_task"]
    time.sleep(2.5)  # past the ack timeout
    assert server.task(nxt["id"])["assignee_id"] == alice["id"]
    mine = server.request("GET", "/me/task", alice["token"], expect=200).json()["task"]
    assert mine["id"] == nxt["id"]


def test_a_reviewer_whose_tab_closed_before_the_ack_is_not_paused(start_server):
    # The offer reached no socket that could answer it: the grace period
    # decides (the same task back on reconnect, or requeued after it), not the
    # ack timeout, and nobody is paused for it.
    # An ack timeout with room for a loaded machine: a lagging client (the
    # reconnected tab's ack, bob's) or a late disconnect is not a frozen tab,
    # which is the first test's case.
    server = start_server(QC_ACK_TIMEOUT="3", QC_GRACE_SECONDS="8")
    alice, bob = server.reviewer("alice"), server.reviewer("bob")
    offered, closed = threading.Event(), threading.Event()
    gone = socketio.Client(reconnection=False)

    @gone.on("task-assigned", namespace="/reviewer")
    def closing(data):
        offered.set()
        closed.wait(10)  # the tab is closed before it gets to answer
        return {"ok": True}

    gone.connect(server.url, namespaces=["/reviewer"], auth={"token": alice["token"]},
                 wait_timeout=10)
    [task] = server.add_tasks({"name": "sent as the tab closed"})
    assert offered.wait(10)
    gone.disconnect()
    closed.set()
    time.sleep(4.5)  # well past the ack timeout, within the grace
    assert server.task(task["id"])["assignee_id"] == alice["id"]
    back = Reviewer(server, alice["token"]).connect()
    assert back.task()["id"] == task["id"]  # the same task on reconnect
    back.disconnect()
    later = Reviewer(server, bob["token"]).connect()
    assert later.task(timeout=25)["id"] == task["id"]  # requeued once the grace ran out
    users = server.request("GET", "/users", server.admin_token, expect=200).json()["users"]
    assert all(u["available"] for u in users if u["role"] == "reviewer"), users
    later.disconnect()


def test_a_tab_reopened_after_the_ack_timeout_gets_its_own_time_to_answer(start_server):
    """The first tab closed without answering; the reopened one is shown the
    task after the ack timeout has passed for the first copy. It answers in
    0.6 s, within the timeout: a sweep (every 0.2 s here) in between must not
    take the task back and pause the reviewer."""
    server = start_server(QC_ACK_TIMEOUT="1", QC_GRACE_SECONDS="60", QC_SWEEP_SECONDS="0.2")
    alice = server.reviewer("alice")
    offered, closed = threading.Event(), threading.Event()
    gone = socketio.Client(reconnection=False)

    @gone.on("task-assigned", namespace="/reviewer")
    def never_answers(data):
        offered.set()
        closed.wait(10)  # the tab closes before it answers
        return {"ok": True}

    gone.connect(server.url, namespaces=["/reviewer"], auth={"token": alice["token"]},
                 wait_timeout=10)
    [task] = server.add_tasks({"name": "offered to a tab that closed"})
    assert offered.wait(10)
    gone.disconnect()
    closed.set()
    time.sleep(2)  # past the ack timeout for the first copy

    answered = threading.Event()
    slow = socketio.Client(reconnection=False)

    @slow.on("task-assigned", namespace="/reviewer")
    def answers_in_a_while(data):
        time.sleep(0.6)
        answered.set()
        return {"ok": True}

    slow.connect(server.url, namespaces=["/reviewer"], auth={"token": alice["token"]},
                 wait_timeout=10)
    assert answered.wait(10)
    time.sleep(1.5)  # several sweeps
    held = server.task(task["id"])
    assert (held["status"], held["assignee_id"]) == ("assigned", alice["id"])
    users = server.request("GET", "/users", server.admin_token, expect=200).json()["users"]
    assert [u["available"] for u in users if u["id"] == alice["id"]] == [True], users
    slow.disconnect()
