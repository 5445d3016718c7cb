"""POST /users and GET /users: who may create whom, what names may be, and
what the list shows."""
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import requests

from api_support import assert_error, count, execute, user_fields
from live import ADMIN, PASSWORD, ROOT, Reviewer, wait_until


def _users(server, token=None) -> dict:
    body = server.request("GET", "/users", token or server.admin_token, expect=200).json()
    assert set(body) == {"users"}
    return {user["username"]: user for user in body["users"]}


def _create(server, token, username, role, password=PASSWORD):
    return server.request("POST", "/users", token, json={"username": username,
                                                         "password": password, "role": role})


def test_admin_creates_reviewers_supervisors_and_admins_who_can_log_in(server):
    for role in ("reviewer", "supervisor", "admin"):
        response = _create(server, server.admin_token, f"new-{role}", role)
        assert response.status_code == 201, response.text
        user = response.json()
        assert set(user) == user_fields(role)
        assert (user["username"], user["role"], user["active"]) == (f"new-{role}", role, True)
        assert isinstance(user["id"], int)
        login = server.login(f"new-{role}")
        assert login["user"] == {"id": user["id"], "username": f"new-{role}", "role": role}
    # The new admin can create a supervisor; the new supervisor can list users.
    admin = server.login("new-admin")["access_token"]
    assert _create(server, admin, "sup-by-admin", "supervisor").status_code == 201
    supervisor = server.login("new-supervisor")["access_token"]
    assert set(_users(server, supervisor)) >= {"new-reviewer", "new-supervisor", "new-admin",
                                               "sup-by-admin"}


def test_supervisor_creates_reviewers_only(server):
    server.create_user("sue", role="supervisor")
    sue = server.login("sue")["access_token"]
    created = _create(server, sue, "carol", "reviewer")
    assert created.status_code == 201, created.text
    assert created.json()["role"] == "reviewer"
    before = count(server.database, "users")
    assert_error(_create(server, sue, "sup2", "supervisor"), 403)
    assert_error(_create(server, sue, "adm2", "admin"), 403)
    assert count(server.database, "users") == before
    assert {"sup2", "adm2"}.isdisjoint(_users(server))


def test_reviewer_can_neither_create_nor_list_users(server):
    alice = server.reviewer("alice")
    before = count(server.database, "users")
    for role in ("reviewer", "supervisor", "admin"):
        assert_error(_create(server, alice["token"], f"by-alice-{role}", role), 403)
    assert_error(server.request("GET", "/users", alice["token"]), 403)
    assert count(server.database, "users") == before


def test_duplicate_username_is_409_and_creates_nothing(server):
    server.create_user("alice")
    before = count(server.database, "users")
    assert_error(_create(server, server.admin_token, "alice", "reviewer"), 409)
    assert_error(_create(server, server.admin_token, "alice", "supervisor"), 409)
    # Surrounding blanks are trimmed, so this is the same name too.
    assert_error(_create(server, server.admin_token, " alice ", "reviewer"), 409)
    assert count(server.database, "users") == before
    # The first alice's password still works.
    server.login("alice")


def _login_status(server, username, password=PASSWORD) -> int:
    return server.request("POST", "/login", json={"username": username,
                                                  "password": password}).status_code


def test_usernames_are_unique_ignoring_case(server):
    admin = server.admin_token
    server.create_user("alice")
    server.create_user("Straße")
    before = count(server.database, "users")
    for twin in ("ALICE", "Alice", " aLiCe ", "\uff21\uff2c\uff29\uff23\uff25",  # full-width
                 "STRASSE", "strasse", "ADMIN"):
        error = assert_error(_create(server, admin, twin, "reviewer"), 409, "username_taken")
        assert "ignoring case" in error["message"], error
    assert count(server.database, "users") == before
    # One may log in with the name typed in another case.
    assert server.login("ALICE")["user"]["username"] == "alice"
    assert server.login("strasse")["user"]["username"] == "Straße"


def test_case_twins_of_an_older_database_each_log_in_by_their_exact_spelling(server):
    """A database from before the rule may hold 'alice' and 'ALICE': each keeps
    logging in by its exact spelling, a third spelling finds neither, and no
    third account is made."""
    alice = server.create_user("alice")
    server.create_user("temp", password="other-password-2")
    # As migration 0002 leaves the later twin: its spelling, no key.
    execute(server.database, "UPDATE users SET username = %s, username_key = NULL "
            "WHERE username = %s", "ALICE", "temp")
    assert server.login("alice")["user"]["id"] == alice["id"]
    assert server.login("ALICE", "other-password-2")["user"]["username"] == "ALICE"
    assert _login_status(server, "Alice") == 401
    assert _login_status(server, "Alice", "other-password-2") == 401
    before = count(server.database, "users")
    assert_error(_create(server, server.admin_token, "aLiCe", "reviewer"), 409,
                 "username_taken")
    bob = server.create_user("bob")
    assert_error(server.request("PATCH", f"/users/{bob['id']}", server.admin_token,
                                json={"username": "Alice"}), 409, "username_taken")
    assert count(server.database, "users") == before + 1


def test_usernames_are_printable_characters_only(server):
    admin = server.admin_token
    alice = server.create_user("alice")
    before = count(server.database, "users")
    bad_names = ["al\x00ice", "al\tice", "al\nice", "\x1b[31mred", "del\x7f", "c1\x85x",
                 "zero\u200bwidth", "\u202eecila", "no\u00a0break", "line\u2028sep",
                 "private\ue000"]
    for bad in bad_names:
        error = assert_error(_create(server, admin, bad, "reviewer"), 422, "invalid_username")
        assert "U+" in error["message"], error
        assert_error(server.request("PATCH", f"/users/{alice['id']}", admin,
                                    json={"username": bad}), 422, "invalid_username")
    assert count(server.database, "users") == before
    assert server.request("GET", f"/users/{alice['id']}/stats", admin,
                          expect=200).json()["username"] == "alice"
    # Letters of any script, inner spaces and punctuation are printable.
    for good in ("élodie", "Ana María", "李雷", "o'brien", "ŞEYMA"):
        assert _create(server, admin, good, "reviewer").status_code == 201, good
        assert server.login(good)["user"]["username"] == good


def test_simultaneous_creates_of_one_name_in_different_cases_make_one_account(server):
    headers = {"Authorization": f"Bearer {server.admin_token}"}

    def create(name):
        return requests.post(server.url + "/users", headers=headers, timeout=30, json={
            "username": name, "password": PASSWORD, "role": "reviewer"}).status_code
    names = ("carol", "daniel", "esther")
    for name in names:
        spellings = [name, name.upper()] + [name[:i] + name[i].upper() + name[i + 1:]
                                            for i in range(len(name))]
        with ThreadPoolExecutor(len(spellings)) as pool:
            statuses = list(pool.map(create, spellings))
        assert sorted(statuses) == [201] + [409] * (len(spellings) - 1), (name, statuses)
    assert count(server.database, "users") == 1 + len(names)


def test_the_cli_and_the_first_start_follow_the_same_rules(start_server, database, tmp_path):
    server = start_server()
    env = {**os.environ, "DATABASE_URL": database.url, "QC_INSTANCE_PATH": str(tmp_path),
           "QC_SECRET_KEY": server.env["QC_SECRET_KEY"]}

    def cli(name):
        return subprocess.run(
            [sys.executable, "-m", "flask", "--app", "qc_live", "create-user", name,
             "--password", "carol-password"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    taken = cli("Admin")
    assert taken.returncode != 0 and "taken" in taken.stderr, taken.stderr
    control = cli("car\x01ol")
    assert control.returncode != 0 and "U+0001" in control.stderr, control.stderr
    assert count(server.database, "users") == 1
    # A configured admin name that is the existing admin's in another case is
    # that admin, not a second one.
    server.stop()
    again = start_server(QC_ADMIN_USERNAME="ADMIN", QC_ADMIN_PASSWORD="another-admin-pass")
    assert count(again.database, "users") == 1
    assert again.login("ADMIN", ADMIN[1])["user"]["username"] == "admin"


def test_bad_user_fields_are_refused_and_create_nothing(server):
    admin = server.admin_token
    before = count(server.database, "users")
    cases = [
        # (body, status)
        ({"username": "u1", "password": "short12", "role": "reviewer"}, 422),  # 7 chars
        ({"username": "u2", "password": "", "role": "reviewer"}, 422),
        ({"username": "u3", "password": PASSWORD, "role": "boss"}, 422),
        ({"username": "u4", "password": PASSWORD, "role": "Reviewer"}, 422),
        ({"username": "", "password": PASSWORD, "role": "reviewer"}, 422),
        ({"username": "   ", "password": PASSWORD, "role": "reviewer"}, 422),
        ({"username": "u" * 81, "password": PASSWORD, "role": "reviewer"}, 422),
        ({"username": "u5", "password": PASSWORD, "role": 1}, 400),
        ({"username": 5, "password": PASSWORD, "role": "reviewer"}, 400),
        ({"username": "u6", "password": 12345678, "role": "reviewer"}, 400),
        ({"password": PASSWORD, "role": "reviewer"}, 400),
        ({"username": "u7", "role": "reviewer"}, 400),
        ({"username": "u8", "password": PASSWORD, "role": "reviewer", "admin": True}, 400),
        (["u9", PASSWORD, "reviewer"], 400),
    ]
    for body, status in cases:
        response = server.request("POST", "/users", admin, json=body)
        assert response.status_code == status, (body, response.text)
        assert_error(response, status)
    assert count(server.database, "users") == before
    # Exactly the minimum length is enough.
    assert _create(server, admin, "u10", "reviewer", password="12345678").status_code == 201


def test_users_list_has_exactly_the_contract_fields(server):
    server.create_user("alice")
    server.create_user("sue", role="supervisor")
    users = _users(server)
    assert set(users) == {"admin", "alice", "sue"}
    for user in users.values():
        assert set(user) == user_fields(user["role"]), user
        assert isinstance(user["id"], int)
        assert isinstance(user["active"], bool) and isinstance(user["online"], bool)
        assert isinstance(user["available"], bool)
        assert isinstance(user["completed_count"], int)
    assert users["alice"] == {"id": users["alice"]["id"], "username": "alice",
                              "role": "reviewer", "active": True, "online": False,
                              "available": True, "task_id": None, "completed_count": 0,
                              "skills": {"default": 1}}
    assert users["sue"]["role"] == "supervisor" and users["admin"]["role"] == "admin"
    execute(server.database, "UPDATE users SET active = %s WHERE username = %s", False, "sue")
    assert _users(server)["sue"]["active"] is False
    users["sue"]["active"] = False
    # A supervisor sees the same list.
    server.create_user("sam", role="supervisor")
    users["sam"] = _users(server)["sam"]
    assert _users(server, server.login("sam")["access_token"]) == users


def test_users_list_follows_sockets_tasks_completions_and_pauses(server, connect):
    alice = server.reviewer("alice")
    server.reviewer("bob")
    sock = connect(alice["token"])
    sock.next("idle")
    wait_until(lambda: _users(server)["alice"]["online"], timeout=5, what="alice online")
    assert _users(server)["alice"]["task_id"] is None

    first, second = server.add_tasks([{"name": "first", "priority": 1}, {"name": "second"}])
    assert sock.task()["id"] == first["id"]
    alice_row = _users(server)["alice"]
    assert (alice_row["task_id"], alice_row["completed_count"]) == (first["id"], 0)

    assert sock.complete(first["id"])["ok"] is True
    assert sock.task()["id"] == second["id"]
    alice_row = _users(server)["alice"]
    assert (alice_row["task_id"], alice_row["completed_count"]) == (second["id"], 1)

    assert sock.call("set-availability", {"available": False})["ok"] is True
    assert sock.complete(second["id"])["ok"] is True
    alice_row = _users(server)["alice"]
    assert (alice_row["available"], alice_row["task_id"], alice_row["completed_count"]) \
        == (False, None, 2)

    sock.disconnect()
    # Online through the grace period (QC_GRACE_SECONDS=2 here), then not.
    wait_until(lambda: not _users(server)["alice"]["online"], timeout=6,
               what="alice offline after disconnect")
    bob_row = _users(server)["bob"]
    assert (bob_row["online"], bob_row["task_id"], bob_row["completed_count"]) == (False, None, 0)


def test_users_list_keeps_a_reviewer_online_through_the_grace_period(start_server):
    # As on the board: a reload is not a logout. Long grace, so only the
    # disconnect itself can change what the list says.
    server = start_server(QC_GRACE_SECONDS="60")
    alice = server.reviewer("alice")
    sock = Reviewer(server, alice["token"]).connect()
    try:
        task = server.add_tasks({"name": "t"})[0]
        assert sock.task()["id"] == task["id"]
        sock.disconnect()
        wait_until(lambda: count(server.database, "connections") == 0, timeout=5,
                   what="the disconnect recorded")
        row = _users(server)["alice"]
        assert (row["online"], row["task_id"]) == (True, task["id"])
        sock = Reviewer(server, alice["token"]).connect()
        assert sock.task()["id"] == task["id"]
        assert _users(server)["alice"]["online"] is True
    finally:
        sock.disconnect()


def test_a_signed_out_user_is_offline_at_once_where_a_dropped_socket_gets_its_grace(
        start_server):
    # Long grace: anything still "online" below is because of it.
    server = start_server(QC_GRACE_SECONDS="60")
    names = ("alice", "bob", "carol", "dave")
    users = {name: server.reviewer(name) for name in names}
    sockets = [Reviewer(server, users[name]["token"]).connect() for name in names]
    try:
        for sock in sockets:
            sock.next("idle")
        sockets[3].disconnect()  # dave's socket drops: a reload, not a logout
        wait_until(lambda: count(server.database, "connections") == 3, timeout=10,
                   what="dave's disconnect recorded")
        server.request("POST", "/logout", users["alice"]["token"], expect=200)
        server.request("POST", f"/users/{users['bob']['id']}/sign-out", server.admin_token,
                       expect=200)
        server.request("DELETE", f"/users/{users['carol']['id']}", server.admin_token,
                       expect=204)

        listed = _users(server)
        assert {name: listed[name]["online"] for name in names} == \
            {"alice": False, "bob": False, "carol": False, "dave": True}
        board = server.request("GET", "/board", server.admin_token, expect=200).json()
        on_board = {row["username"]: row["online"] for row in board["reviewers"]}
        assert on_board == {"alice": False, "bob": False, "dave": True}  # carol is inactive
    finally:
        for sock in sockets:
            sock.disconnect()
