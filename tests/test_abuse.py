"""Floods and abuse are bounded, and everyone else carries on."""
import time

import socketio

from live import Reviewer, wait_until


def test_a_flooding_socket_is_rate_limited_and_others_are_unaffected(server, connect):
    mallory, alice = server.reviewer("mallory"), server.reviewer("alice")
    server.add_tasks([{"name": "one"}, {"name": "two"}, {"name": "three"}])
    flood = connect(mallory["token"])
    assert flood.task()["name"] == "one"
    worker = connect(alice["token"])
    first = worker.task()
    assert first["name"] == "two"
    started = time.monotonic()
    replies = [flood.call("set-availability", {"available": True}) for _ in range(80)]
    elapsed = time.monotonic() - started
    limited = [r for r in replies if not r["ok"]]
    assert limited and all(r["error"]["code"] == "rate_limited" for r in limited)
    # a burst of 30, then 10 a second: nothing more got through
    assert len(replies) - len(limited) <= 30 + 10 * elapsed + 1
    assert worker.complete(first["id"])["ok"] is True
    assert worker.task()["name"] == "three"
    time.sleep(1.2)  # the bucket refills: the flooder may speak again
    assert flood.call("set-availability", {"available": True})["ok"] is True


def test_one_token_cannot_open_hundreds_of_sockets(start_server):
    server = start_server(QC_MAX_SOCKETS_PER_USER="3")
    alice = server.reviewer("alice")
    sockets = [Reviewer(server, alice["token"]).connect() for _ in range(3)]
    extra = socketio.Client(reconnection=False)
    refused = []
    extra.on("connect_error", lambda data: refused.append(data), namespace="/reviewer")
    try:
        extra.connect(server.url, namespaces=["/reviewer"], auth={"token": alice["token"]},
                      wait_timeout=5)
        raise AssertionError("a fourth socket was accepted")
    except socketio.exceptions.ConnectionError:
        pass
    assert refused and refused[0]["code"] == "too_many_connections"
    sockets[0].disconnect()  # closing a tab frees a place, once the server has seen it close
    wait_until(lambda: server.database.query(
        "SELECT COUNT(*) FROM connections WHERE user_id = %s", alice["id"])[0][0] == 2,
        what="the closed tab forgotten")
    again = Reviewer(server, alice["token"]).connect()
    for sock in sockets[1:] + [again]:
        sock.disconnect()


def test_huge_and_malformed_event_payloads_are_refused_cleanly(server, connect):
    alice = server.reviewer("alice")
    [task] = server.add_tasks({"name": "t"})
    sock = connect(alice["token"])
    assert sock.task()["id"] == task["id"]
    for bad in (None, [], "x", 5, {"task_id": "1"}, {"task_id": task["id"], "note": "n" * 5000},
                {"task_id": task["id"], "extra": 1}):
        reply = sock.call("task-complete", bad)
        assert reply["ok"] is False and reply["error"]["code"] != "internal_error", bad
    # a message beyond the transport limit (1 MB) is dropped with its socket,
    # unprocessed; the other tab and the server carry on
    big = Reviewer(server, alice["token"]).connect(transports=["websocket"])
    big.client.emit("task-complete", {"task_id": task["id"], "outcome": "fail",
                                      "note": "x" * 2_000_000}, namespace="/reviewer")
    time.sleep(1)
    assert server.task(task["id"])["status"] == "assigned"
    assert sock.complete(task["id"])["ok"] is True
    assert server.task(task["id"])["outcome"] == "pass"
    big.disconnect()


def test_failed_logins_are_throttled_per_username_without_revealing_who_exists(server):
    server.create_user("alice")
    bodies = {}
    for name in ("alice", "nobody"):
        answers = [server.request("POST", "/login", json={"username": name,
                                                          "password": "wrong"})
                   for _ in range(11)]
        assert [a.status_code for a in answers[:10]] == [401] * 10
        assert answers[10].status_code == 429
        bodies[name] = (answers[0].json(), answers[10].json()["error"]["code"])
    assert bodies["alice"] == bodies["nobody"]  # same answers for real and unknown names
    # even the right password waits now; other users are not affected
    assert server.request("POST", "/login", json={"username": "alice",
                                                  "password": "reviewer-pass-1"}
                          ).status_code == 429
    server.create_user("bob")
    assert server.login("bob")["user"]["username"] == "bob"
