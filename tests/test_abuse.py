"""Floods and abuse are bounded, and everyone else carries on."""
import time

import socketio

from api_support import assert_error
from live import ADMIN, PASSWORD, Reviewer, wait_until


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


# --- login throttling behind a proxy: the address is the X-Forwarded-For one ---

def _login(server, username, password, address):
    return server.request("POST", "/login", json={"username": username, "password": password},
                          headers={"X-Forwarded-For": address})


def test_a_guesser_is_throttled_while_the_admin_logs_in_from_elsewhere(start_server):
    server = start_server(QC_PROXY_HOPS="1")
    guesser = "203.0.113.7"
    for _ in range(10):
        assert _login(server, "admin", "wrong", guesser).status_code == 401
    refused = _login(server, "admin", "wrong", guesser)
    error = assert_error(refused, 429, "too_many_attempts")
    assert 1 <= int(refused.headers["Retry-After"]) <= 300
    assert error["retry_after"] == int(refused.headers["Retry-After"])
    # From the guesser's address even the right password waits, in any case.
    assert_error(_login(server, "admin", ADMIN[1], guesser), 429, "too_many_attempts")
    assert_error(_login(server, "ADMIN", "wrong", guesser), 429, "too_many_attempts")
    # The admin, elsewhere, is not locked out.
    assert _login(server, "admin", ADMIN[1], "198.51.100.20").status_code == 200


def test_guessing_from_rotating_addresses_cannot_lock_the_user_out(start_server):
    server = start_server(QC_PROXY_HOPS="1")
    server.create_user("alice")
    for n in range(30):
        assert _login(server, "alice", "wrong", f"203.0.113.{n}").status_code == 401
    assert _login(server, "alice", PASSWORD, "198.51.100.20").status_code == 200
    # One failure from this address is far from its budget.
    assert _login(server, "alice", PASSWORD, "203.0.113.0").status_code == 200


def test_one_address_guessing_many_usernames_is_stopped(start_server):
    server = start_server(QC_PROXY_HOPS="1")
    server.create_user("alice")
    server.create_user("mallory")
    guesser = "203.0.113.7"
    for n in range(49):
        assert _login(server, f"user{n}", "wrong", guesser).status_code == 401
    # Logging in to an account of its own does not give the address its budget back.
    assert _login(server, "mallory", PASSWORD, guesser).status_code == 200
    assert _login(server, "user49", "wrong", guesser).status_code == 401
    assert_error(_login(server, "user50", "wrong", guesser), 429, "too_many_attempts")
    assert_error(_login(server, "alice", PASSWORD, guesser), 429, "too_many_attempts")
    assert _login(server, "alice", PASSWORD, "198.51.100.20").status_code == 200


def test_a_success_clears_its_name_and_address_and_a_new_password_clears_the_name(
        start_server):
    server = start_server(QC_PROXY_HOPS="1")
    alice = server.create_user("alice")
    bob = server.reviewer("bob")
    here = "198.51.100.20"
    for _ in range(9):
        assert _login(server, "alice", "wrong", here).status_code == 401
    assert _login(server, "alice", PASSWORD, here).status_code == 200
    for _ in range(10):  # a fresh count after the success
        assert _login(server, "alice", "wrong", here).status_code == 401
    assert_error(_login(server, "alice", PASSWORD, here), 429, "too_many_attempts")
    # An admin's reset lifts it at once.
    server.request("PATCH", f"/users/{alice['id']}", server.admin_token,
                   json={"password": "alices-new-password"}, expect=200)
    assert _login(server, "alice", "alices-new-password", here).status_code == 200
    # So does changing one's own password (from another device).
    for _ in range(10):
        assert _login(server, "bob", "wrong", here).status_code == 401
    assert_error(_login(server, "bob", PASSWORD, here), 429, "too_many_attempts")
    server.request("POST", "/me/password", bob["token"], expect=200,
                   json={"current_password": PASSWORD, "new_password": "bobs-new-password"})
    assert _login(server, "bob", "bobs-new-password", here).status_code == 200
