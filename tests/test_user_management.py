"""PATCH and DELETE /users/<id>, forcing a user offline, and changing one's own
password — with what each does to tokens, sockets and a held task."""
from api_support import REVIEWER_FIELDS, assert_error, refused_connect
from live import PASSWORD, Reviewer, wait_until


def _users(server) -> dict:
    body = server.request("GET", "/users", server.admin_token, expect=200).json()
    return {user["id"]: user for user in body["users"]}


def _accounts(server) -> dict:
    """The users without `online` (it follows sockets and the grace period)."""
    return {uid: {k: v for k, v in user.items() if k != "online"}
            for uid, user in _users(server).items()}


def _patch(server, user_id, body, token=None):
    return server.request("PATCH", f"/users/{user_id}", token or server.admin_token, json=body)


def _supervisor(server, name="sue") -> dict:
    user = server.create_user(name, role="supervisor")
    return {**user, "token": server.login(name)["access_token"]}


def _login_status(server, username, password=PASSWORD) -> int:
    return server.request("POST", "/login", json={"username": username,
                                                  "password": password}).status_code


def _signed_out_everywhere(server, sock: Reviewer, token: str) -> None:
    wait_until(lambda: not sock.client.connected, timeout=5, what="the socket disconnected")
    assert_error(server.request("GET", "/me/task", token), 401)
    assert refused_connect(server, token)["code"] == "unauthorized"


def test_rename_reset_password_and_who_may_change_whom(server):
    sue = _supervisor(server)
    alice = server.reviewer("alice")
    response = _patch(server, alice["id"], {"username": " alicia "}, sue["token"])
    assert response.status_code == 200, response.text
    row = response.json()
    assert set(row) == REVIEWER_FIELDS and row["skills"] == {"default": 1}
    assert (row["id"], row["username"]) == (alice["id"], "alicia")
    assert _login_status(server, "alicia") == 200
    assert _login_status(server, "alice") == 401
    # A rename alone keeps the sessions.
    server.request("GET", "/me/task", alice["token"], expect=200)

    server.create_user("bob")
    assert_error(_patch(server, alice["id"], {"username": "bob"}, sue["token"]), 409,
                 "username_taken")
    # Resetting the password ends the sessions; the new one works, the old not.
    row = _patch(server, alice["id"], {"password": "brand-new-pass"}, sue["token"]).json()
    assert row["username"] == "alicia"
    assert_error(server.request("GET", "/me/task", alice["token"]), 401)
    assert _login_status(server, "alicia") == 401
    assert _login_status(server, "alicia", "brand-new-pass") == 200

    # Who may change whom, and bad bodies: refused, nothing changes.
    alice = {**alice, "token": server.login("alicia", "brand-new-pass")["access_token"]}
    sam = _supervisor(server, "sam")
    admin_id = server.login("admin", "admin-password-1")["user"]["id"]
    before = _accounts(server)
    # Supervisors manage reviewers, but not their role, nor other supervisors or admins.
    assert_error(_patch(server, alice["id"], {"role": "supervisor"}, sue["token"]), 403)
    assert_error(_patch(server, alice["id"], {"role": "reviewer"}, sue["token"]), 403)
    assert_error(_patch(server, sam["id"], {"username": "x"}, sue["token"]), 403)
    assert_error(_patch(server, sue["id"], {"username": "x"}, sue["token"]), 403)
    assert_error(_patch(server, admin_id, {"username": "x"}, sue["token"]), 403)
    assert_error(_patch(server, alice["id"], {"username": "x"}, alice["token"]), 403)
    assert_error(_patch(server, 999999, {"username": "x"}, sue["token"]), 404, "user_not_found")
    assert_error(_patch(server, 2**64, {"username": "x"}), 404)
    cases = [
        ({}, 400), ([], 400), ({"name": "x"}, 400), ({"username": None}, 400),
        ({"username": 5}, 400), ({"username": ""}, 422), ({"username": "u" * 81}, 422),
        ({"role": "boss"}, 422), ({"role": None}, 400), ({"active": "no"}, 400),
        ({"active": 2}, 422), ({"password": "short"}, 422), ({"password": 12345678}, 400),
    ]
    for body, status in cases:
        response = _patch(server, alice["id"], body)
        assert response.status_code == status, (body, response.text)
        assert_error(response, status)
    # The last active admin can neither be demoted nor deactivated; nobody
    # deactivates themselves.
    assert_error(_patch(server, admin_id, {"role": "supervisor"}), 409, "last_admin")
    assert_error(_patch(server, admin_id, {"active": False}), 409, "cannot_deactivate_self")
    assert_error(server.request("DELETE", f"/users/{admin_id}", server.admin_token), 409)
    assert _accounts(server) == before


def test_admin_changes_roles_and_the_user_signs_in_again(server, connect):
    alice = server.reviewer("alice")
    sock = connect(alice["token"])
    sock.next("idle")
    task = server.add_tasks({"name": "t"})[0]
    assert sock.task()["id"] == task["id"]
    row = _patch(server, alice["id"], {"role": "supervisor"}).json()
    assert row["role"] == "supervisor" and row["task_id"] is None
    _signed_out_everywhere(server, sock, alice["token"])
    assert server.task(task["id"])["status"] == "pending"  # back in the queue
    token = server.login("alice")["access_token"]
    server.request("GET", "/tasks", token, expect=200)  # a supervisor now
    assert_error(server.request("GET", "/me/task", token), 403)

    # Two admins: now one may step down.
    second = server.create_user("root2", role="admin")
    admin_id = server.login("admin", "admin-password-1")["user"]["id"]
    assert _patch(server, second["id"], {"role": "reviewer"}).json()["role"] == "reviewer"
    assert _patch(server, second["id"], {"role": "admin"}).json()["role"] == "admin"
    root2 = server.login("root2")["access_token"]
    assert _patch(server, admin_id, {"role": "supervisor"}, root2).status_code == 200


def test_deactivating_or_forcing_offline_returns_the_task(server, connect):
    sue = _supervisor(server)
    alice = server.reviewer("alice")
    bob = server.reviewer("bob")
    a_sock = connect(alice["token"])
    a_sock.next("idle")
    task = server.add_tasks({"name": "t"})[0]
    assert a_sock.task()["id"] == task["id"]
    b_sock = connect(bob["token"])
    b_sock.next("idle")

    response = server.request("DELETE", f"/users/{alice['id']}", sue["token"])
    assert response.status_code == 204 and response.content == b""
    _signed_out_everywhere(server, a_sock, alice["token"])
    assert b_sock.task()["id"] == task["id"]  # at once, no grace period
    assert _login_status(server, "alice") == 401
    row = _users(server)[alice["id"]]
    assert (row["active"], row["task_id"]) == (False, None)
    events = server.request("GET", f"/tasks/{task['id']}/history", server.admin_token,
                            expect=200).json()["events"]
    assert [(e["kind"], e["reviewer_id"], e["actor_id"]) for e in events][1:] == [
        ("assigned", alice["id"], None), ("signed_out", alice["id"], sue["id"]),
        ("assigned", bob["id"], None)]
    # Again: still 204. PATCH active=true brings the account back (old tokens stay dead).
    assert server.request("DELETE", f"/users/{alice['id']}", sue["token"]).status_code == 204
    assert _patch(server, alice["id"], {"active": True}, sue["token"]).json()["active"] is True
    assert _login_status(server, "alice") == 200
    assert_error(server.request("GET", "/me/task", alice["token"]), 401)
    # And PATCH active=false is the same as DELETE.
    assert _patch(server, alice["id"], {"active": False}, sue["token"]).json()["active"] is False
    assert _login_status(server, "alice") == 401

    # Forcing a reviewer offline: the same, but the account stays active.
    assert b_sock.complete(task["id"])["ok"] is True
    b_sock.disconnect()
    carol = server.reviewer("carol")
    sock = connect(carol["token"])
    sock.next("idle")
    task = server.add_tasks({"name": "t"})[0]
    assert sock.task()["id"] == task["id"]
    response = server.request("POST", f"/users/{carol['id']}/sign-out", sue["token"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["user_id"], body["task"]["id"], body["task"]["status"]) == \
        (carol["id"], task["id"], "pending")
    assert sock.next("task-revoked") == {"task_id": task["id"], "reason": "released"}
    _signed_out_everywhere(server, sock, carol["token"])
    # The account stays active: carol may log in again, and gets the task back.
    again = connect(server.login("carol")["access_token"])
    assert again.task()["id"] == task["id"]
    # Nobody holding anything: task null. Supervisors cannot sign out a supervisor.
    dave = server.reviewer("dave")
    assert server.request("POST", f"/users/{dave['id']}/sign-out", sue["token"],
                          expect=200).json()["task"] is None
    assert_error(server.request("POST", f"/users/{sue['id']}/sign-out", sue["token"]), 403)
    assert_error(server.request("POST", "/users/999999/sign-out", sue["token"]), 404)


def test_changing_your_own_password(server, connect):
    alice = server.reviewer("alice")
    old = server.login("alice")
    sock = connect(alice["token"])
    sock.next("idle")
    task = server.add_tasks({"name": "t"})[0]
    assert sock.task()["id"] == task["id"]

    def change(body, token=alice["token"]):
        return server.request("POST", "/me/password", token, json=body)
    assert_error(change({"current_password": "wrong-password", "new_password": "another-one"}),
                 403, "wrong_password")
    assert_error(change({"current_password": PASSWORD, "new_password": "short"}), 422,
                 "weak_password")
    assert_error(change({"current_password": PASSWORD}), 400)
    assert_error(change({"current_password": PASSWORD, "new_password": "another-one",
                         "user_id": 1}), 400)
    assert_error(change({"current_password": PASSWORD, "new_password": "another-one"}, None),
                 401)
    response = change({"current_password": PASSWORD, "new_password": "another-one"})
    assert response.status_code == 200, response.text
    fresh = response.json()
    assert {"message", "token", "access_token", "refresh_token", "user"} <= set(fresh)
    assert fresh["user"] == {"id": alice["id"], "username": "alice", "role": "reviewer"}
    # Every earlier token is dead, sockets are disconnected; the fresh token works.
    for token in (alice["token"], old["access_token"]):
        assert_error(server.request("GET", "/me/task", token), 401)
    assert_error(server.request("POST", "/refresh", old["refresh_token"]), 401)
    wait_until(lambda: not sock.client.connected, timeout=5, what="the socket disconnected")
    server.request("POST", "/refresh", fresh["refresh_token"], expect=200)
    # Back within the grace period: the same task (this was not a sign-out).
    assert connect(fresh["access_token"]).task()["id"] == task["id"]
    assert _login_status(server, "alice") == 401
    assert _login_status(server, "alice", "another-one") == 200
    # Supervisors and admins change theirs too.
    sue = _supervisor(server)
    assert server.request("POST", "/me/password", sue["token"], json={
        "current_password": PASSWORD, "new_password": "sue-new-password"}).status_code == 200


def test_renames_follow_the_rules_on_names(server):
    alice = server.reviewer("alice")
    server.create_user("bob")
    assert_error(_patch(server, alice["id"], {"username": "BOB"}), 409, "username_taken")
    assert_error(_patch(server, alice["id"], {"username": " Bob "}), 409, "username_taken")
    assert_error(_patch(server, alice["id"], {"username": "ali\x00ce"}), 422,
                 "invalid_username")
    assert _users(server)[alice["id"]]["username"] == "alice"
    # Her own name in another case is hers to take; both spellings log her in.
    assert _patch(server, alice["id"], {"username": "Alice"}).json()["username"] == "Alice"
    assert _login_status(server, "Alice") == 200 and _login_status(server, "alice") == 200
    server.request("GET", "/me/task", alice["token"], expect=200)  # a rename keeps sessions
