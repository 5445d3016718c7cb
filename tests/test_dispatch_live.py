"""Push on connect, complete -> next, tabs, pause/resume: against a real server."""
import threading
import time

from live import Reviewer, wait_until


def test_connect_pushes_the_next_task_and_completion_pushes_the_one_after(server, connect):
    alice = server.reviewer("alice")
    low, high = server.add_tasks([{"name": "low", "priority": 0},
                                  {"name": "high", "priority": 5}])
    sock = connect(alice["token"])
    first = sock.task()
    assert first["id"] == high["id"]
    assert first["status"] == "assigned" and first["assignee_id"] == alice["id"]
    ack = sock.complete(first["id"], "fail", note="scratch on lid")
    assert ack["ok"] is True and ack["task_id"] == first["id"]
    second = sock.task()
    assert second["id"] == low["id"]
    sock.complete(second["id"])
    assert sock.next("idle") == {"reason": "queue-empty"}
    done = server.task(first["id"])
    assert (done["status"], done["outcome"], done["note"]) == ("completed", "fail",
                                                               "scratch on lid")


def test_ack_of_task_complete_arrives_before_the_next_task(server, connect):
    alice = server.reviewer("alice")
    server.add_tasks([{"name": "one"}, {"name": "two"}])
    sock = connect(alice["token"])
    first = sock.task()
    sock.complete(first["id"])
    sock.task()
    kinds = [kind for kind, _ in sock.log]
    assert kinds == ["task-assigned", "ack:task-complete", "task-assigned"]


def test_connect_with_empty_queue_says_idle_and_a_new_task_is_pushed(server, connect):
    alice = server.reviewer("alice")
    sock = connect(alice["token"])
    assert sock.next("idle") == {"reason": "queue-empty"}
    [created] = server.add_tasks({"name": "fresh"})
    assert sock.task()["id"] == created["id"]


def test_new_task_goes_to_the_longest_idle_reviewer(server, connect):
    first, second = server.reviewer("first"), server.reviewer("second")
    a = connect(first["token"])
    a.next("idle")
    b = connect(second["token"])
    b.next("idle")
    [task] = server.add_tasks({"name": "t"})
    assert a.task()["id"] == task["id"]
    assert b.quiet(0.5) == []


def test_each_task_goes_to_one_reviewer_and_each_reviewer_gets_one(server, connect):
    people = [server.reviewer(f"r{i}") for i in range(3)]
    socks = [connect(p["token"]) for p in people]
    for sock in socks:
        sock.next("idle")
    tasks = server.add_tasks([{"name": f"t{i}"} for i in range(5)])
    got = [sock.task()["id"] for sock in socks]
    assert sorted(got) == sorted(t["id"] for t in tasks[:3])
    for sock in socks:
        assert [k for k, _ in sock.quiet(0.3)] == []


def test_two_tabs_share_one_presence_and_both_see_every_push(server, connect):
    alice = server.reviewer("alice")
    server.add_tasks([{"name": "one"}, {"name": "two"}])
    tab1 = connect(alice["token"])
    first = tab1.task()
    tab2 = connect(alice["token"])
    assert tab2.task()["id"] == first["id"]  # the same task, not a second one
    tab2.complete(first["id"])
    nxt = tab1.task()
    assert tab2.task()["id"] == nxt["id"]
    # completing from the other tab too: the first tab's retry is refused, not doubled
    assert tab1.complete(first["id"])["error"]["code"] == "task_not_assigned"
    tab1.disconnect()
    users = server.request("GET", "/users", server.admin_token, expect=200).json()["users"]
    me = next(u for u in users if u["id"] == alice["id"])
    assert me["online"] is True and me["task_id"] == nxt["id"]


def test_reconnect_within_grace_gets_the_same_task_back(start_server, connect):
    server = start_server(QC_GRACE_SECONDS="4")
    alice = server.reviewer("alice")
    server.add_tasks([{"name": "one"}, {"name": "two"}])
    sock = connect(alice["token"], on=server)
    held = sock.task()
    sock.disconnect()
    time.sleep(1.5)
    again = connect(alice["token"], on=server)
    assert again.task()["id"] == held["id"]
    time.sleep(4)  # past the grace the task would have gone; being online, it stays
    assert server.task(held["id"])["assignee_id"] == alice["id"]


def test_after_grace_the_task_returns_to_the_queue_keeping_its_place(start_server, connect):
    server = start_server(QC_GRACE_SECONDS="1")
    alice, bob = server.reviewer("alice"), server.reviewer("bob")
    first, second = server.add_tasks([{"name": "first"}, {"name": "second"}])
    a = connect(alice["token"], on=server)
    assert a.task()["id"] == first["id"]
    a.disconnect()
    wait_until(lambda: server.task(first["id"])["status"] == "pending", timeout=6,
               what="requeue after grace")
    assert server.task(first["id"])["assignee_id"] is None
    b = connect(bob["token"], on=server)
    assert b.task()["id"] == first["id"]  # still ahead of "second"
    users = server.request("GET", "/users", server.admin_token, expect=200).json()["users"]
    assert next(u for u in users if u["id"] == alice["id"])["online"] is False


def test_pause_keeps_the_task_then_nothing_new_until_resume(server, connect):
    alice = server.reviewer("alice")
    server.add_tasks([{"name": "one"}, {"name": "two"}])
    sock = connect(alice["token"])
    held = sock.task()
    assert sock.call("set-availability", {"available": False}) == {"ok": True,
                                                                   "available": False}
    assert sock.quiet(0.3) == []  # keeps its task: nothing revoked
    sock.complete(held["id"])
    assert sock.next("idle") == {"reason": "paused"}
    assert sock.call("set-availability", {"available": True})["ok"] is True
    assert sock.task()["name"] == "two"


def test_paused_reviewer_is_passed_over_for_new_tasks(server, connect):
    alice, bob = server.reviewer("alice"), server.reviewer("bob")
    a = connect(alice["token"])
    a.next("idle")
    b = connect(bob["token"])
    b.next("idle")
    a.call("set-availability", {"available": False})
    assert a.next("idle") == {"reason": "paused"}
    [task] = server.add_tasks({"name": "t"})
    assert b.task()["id"] == task["id"]
    assert a.quiet(0.3) == []


def test_rest_completion_pushes_the_next_task_to_the_sockets(server, connect):
    alice = server.reviewer("alice")
    server.add_tasks([{"name": "one"}, {"name": "two"}])
    sock = connect(alice["token"])
    held = sock.task()
    body = server.request("POST", "/complete_task", alice["token"], expect=200,
                          json={"task_id": held["id"], "outcome": "pass"}).json()
    assert body["task"]["status"] == "completed"
    assert sock.task()["id"] == body["next_task"]["id"]


def test_logout_hands_the_task_on_at_once_without_waiting_for_grace(start_server, connect):
    server = start_server(QC_GRACE_SECONDS="60")
    alice, bob = server.reviewer("alice"), server.reviewer("bob")
    [task] = server.add_tasks({"name": "t"})
    a = connect(alice["token"], on=server)
    assert a.task()["id"] == task["id"]
    b = connect(bob["token"], on=server)
    b.next("idle")
    server.request("POST", "/logout", alice["token"], expect=200)
    assert a.next("task-revoked") == {"task_id": task["id"], "reason": "released"}
    assert b.task(timeout=5)["id"] == task["id"]  # not 60 s later


def test_no_one_is_told_the_queue_is_empty_while_tasks_are_pending(server, database):
    """50 reviewers connect at once with 200 tasks queued, complete three
    each and get a fourth: every claim finds a task, each exactly once. (A claim's locking read whose plan
    locked rows it did not return made concurrent claims skip every pending
    task and answer `idle`/queue-empty: seen on MariaDB.)"""
    users = [server.reviewer(f"r{i:02d}") for i in range(50)]
    server.add_tasks(*[{"name": f"t{i}"} for i in range(200)])
    seen, failures, sockets = [], [], []

    def work(user):
        sock = Reviewer(server, user["token"])
        sockets.append(sock)
        try:
            sock.connect(transports=["websocket"])
            for round_ in range(4):  # three completions, and the fourth task
                kind, data = sock.next(timeout=20)
                seen.append(kind)
                if kind != "task-assigned":
                    failures.append((user["username"], kind, data))
                    return
                if round_ < 3:
                    assert sock.complete(data["task"]["id"])["ok"]
        except Exception as exc:  # reported below, with the reviewer's name
            failures.append((user["username"], "error", repr(exc)))

    threads = [threading.Thread(target=work, args=(u,)) for u in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    try:
        assert failures == []
        assert seen.count("task-assigned") == 200
        # Still connected: a socket gone for the grace period (2 s here) would
        # have its task requeued before this read on a slow machine.
        assert sorted(database.query("SELECT status, COUNT(*) FROM tasks GROUP BY status")) \
            == [("assigned", 50), ("completed", 150)]
    finally:
        for sock in sockets:
            sock.disconnect()
