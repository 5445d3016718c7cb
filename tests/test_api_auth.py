"""Login, refresh, logout and token checks, over REST and on the /reviewer socket."""
import jwt

from api_support import assert_error, execute, expired, forge_token, refused_connect
from live import ADMIN, PASSWORD, wait_until


def test_login_answers_tokens_and_the_user(server):
    alice = server.create_user("alice")
    body = server.login("alice")
    assert set(body) == {"token", "access_token", "refresh_token", "user"}
    assert body["token"] == body["access_token"]
    assert body["refresh_token"] != body["access_token"]
    assert body["user"] == {"id": alice["id"], "username": "alice", "role": "reviewer"}
    # The token is the reviewer's own: it reads the reviewer's task.
    assert server.request("GET", "/me/task", body["token"], expect=200).json() \
        == {"task": None, "form": None}

    admin = server.login(*ADMIN)
    assert admin["user"]["role"] == "admin" and admin["user"]["username"] == ADMIN[0]
    server.request("GET", "/users", admin["access_token"], expect=200)


def test_wrong_password_unknown_user_and_deactivated_user_look_the_same(server):
    server.create_user("alice")
    server.create_user("gone")
    execute(server.database, "UPDATE users SET active = %s WHERE username = %s", False, "gone")
    answers = [
        server.request("POST", "/login", json={"username": "alice", "password": "wrong-pass-1"}),
        server.request("POST", "/login", json={"username": "nobody", "password": PASSWORD}),
        server.request("POST", "/login", json={"username": "gone", "password": PASSWORD}),
        server.request("POST", "/login", json={"username": "alice", "password": ""}),
    ]
    for response in answers:
        assert_error(response, 401)
    assert len({response.text for response in answers}) == 1, [r.text for r in answers]


def test_login_refuses_missing_and_non_string_fields_with_400(server):
    server.create_user("alice")
    bodies = [
        {},
        {"username": "alice"},
        {"password": PASSWORD},
        {"username": "alice", "password": None},
        {"username": 7, "password": PASSWORD},
        {"username": "alice", "password": 12345678},
        {"username": ["alice"], "password": PASSWORD},
        {"username": "alice", "password": {"$ne": ""}},
        {"username": "alice", "password": PASSWORD, "remember": True},
        ["alice", PASSWORD],
        "alice",
        None,
    ]
    for body in bodies:
        response = server.request("POST", "/login", json=body)
        assert response.status_code == 400, (body, response.text)
        assert_error(response, 400)


def test_login_without_a_body_or_with_broken_json_is_400(server):
    assert_error(server.request("POST", "/login"), 400)
    assert_error(server.request("POST", "/login", data='{"username": "admin",',
                                headers={"Content-Type": "application/json"}), 400)


def test_refresh_token_gives_a_working_access_token(server):
    server.create_user("alice")
    tokens = server.login("alice")
    response = server.request("POST", "/refresh", tokens["refresh_token"], expect=200)
    assert set(response.json()) == {"access_token"}
    fresh = response.json()["access_token"]
    assert server.request("GET", "/me/task", fresh, expect=200).json() \
        == {"task": None, "form": None}


def test_an_access_token_cannot_refresh_and_a_refresh_token_cannot_access(server):
    server.create_user("alice")
    tokens = server.login("alice")
    assert_error(server.request("POST", "/refresh", tokens["access_token"]), 401)
    assert_error(server.request("POST", "/refresh"), 401)
    assert_error(server.request("GET", "/me/task", tokens["refresh_token"]), 401)
    assert_error(server.request("POST", "/logout", tokens["refresh_token"]), 401)


def test_logout_revokes_every_token_of_the_user_and_only_theirs(server):
    server.create_user("alice")
    server.create_user("bob")
    tokens = server.login("alice")
    refreshed = server.request("POST", "/refresh", tokens["refresh_token"],
                               expect=200).json()["access_token"]
    bob = server.login("bob")["access_token"]

    response = server.request("POST", "/logout", tokens["access_token"], expect=200)
    assert isinstance(response.json().get("message"), str)

    assert_error(server.request("GET", "/me/task", tokens["access_token"]), 401)
    assert_error(server.request("GET", "/me/task", refreshed), 401)
    assert_error(server.request("POST", "/refresh", tokens["refresh_token"]), 401)
    assert_error(server.request("POST", "/logout", tokens["access_token"]), 401)
    # Bob is untouched, and alice can log in again.
    server.request("GET", "/me/task", bob, expect=200)
    again = server.login("alice")["access_token"]
    server.request("GET", "/me/task", again, expect=200)


def test_logout_disconnects_the_reviewers_sockets_and_only_theirs(server, connect):
    alice = server.reviewer("alice")
    bob = server.reviewer("bob")
    tab1, tab2 = connect(alice["token"]), connect(alice["token"])
    other = connect(bob["token"])
    wait_until(lambda: _online(server, "alice") and _online(server, "bob"), timeout=5,
               what="both reviewers online")

    server.request("POST", "/logout", alice["token"], expect=200)

    wait_until(lambda: not tab1.client.connected and not tab2.client.connected, timeout=5,
               what="alice's sockets disconnected")
    wait_until(lambda: not _online(server, "alice"), timeout=5, what="alice offline")
    assert other.client.connected and _online(server, "bob")
    # The revoked token cannot open a new socket either.
    error = refused_connect(server, alice["token"])
    assert error["code"] == "unauthorized"


def _online(server, username: str) -> bool:
    users = server.request("GET", "/users", server.admin_token, expect=200).json()["users"]
    return next(u for u in users if u["username"] == username)["online"]


def test_tokens_that_are_missing_garbage_forged_or_expired_get_401(server):
    alice = server.reviewer("alice")
    token = alice["token"]
    other_key = jwt.encode(jwt.decode(token, options={"verify_signature": False}),
                           "another-secret-key-that-is-long-enough-too", algorithm="HS256")
    unsigned = jwt.encode(jwt.decode(token, options={"verify_signature": False}), None,
                          algorithm="none")
    headers = {
        "no header": {},
        "empty bearer": {"Authorization": "Bearer "},
        "garbage": {"Authorization": "Bearer not.a.jwt"},
        "not bearer": {"Authorization": f"Basic {token}"},
        "other key": {"Authorization": f"Bearer {other_key}"},
        "alg none": {"Authorization": f"Bearer {unsigned}"},
        "expired": {"Authorization": f"Bearer {expired(server, token)}"},
        "stale version": {"Authorization": f"Bearer {forge_token(server, token, ver=99)}"},
        "unknown user": {"Authorization": f"Bearer {forge_token(server, token, sub='99999')}"},
        "sub not a number": {"Authorization": f"Bearer {forge_token(server, token, sub='x')}"},
        "sub too large": {"Authorization":
                          f"Bearer {forge_token(server, token, sub=str(10**30))}"},
    }
    calls = [("GET", "/me/task", None), ("GET", "/users", None),
             ("POST", "/tasks", {"name": "t"}), ("PUT", "/availability", {"availability": 1}),
             ("POST", "/logout", None)]
    for label, header in headers.items():
        for method, path, body in calls:
            response = server.request(method, path, headers=dict(header), json=body)
            assert response.status_code == 401, (label, method, path, response.text)
            assert_error(response, 401, "unauthorized")
    # Nothing was created by any of those.
    assert server.database.query("SELECT COUNT(*) FROM tasks")[0][0] == 0
    server.request("GET", "/me/task", token, expect=200)


def test_reviewer_socket_refuses_bad_tokens_and_non_reviewers(server):
    alice = server.reviewer("alice")
    supervisor = server.create_user("sue", role="supervisor")
    sue = server.login("sue")["access_token"]
    refresh = server.login("alice")["refresh_token"]
    assert supervisor["role"] == "supervisor"
    attempts = {
        "no auth": refused_connect(server, auth=False),
        "no token": refused_connect(server, None),
        "empty token": refused_connect(server, ""),
        "garbage": refused_connect(server, "not.a.jwt"),
        "expired": refused_connect(server, expired(server, alice["token"])),
        "stale version": refused_connect(server, forge_token(server, alice["token"], ver=5)),
        "sub not a number": refused_connect(server, forge_token(server, alice["token"],
                                                                 sub="x")),
        "refresh token": refused_connect(server, refresh),
        "supervisor": refused_connect(server, sue),
        "admin": refused_connect(server, server.admin_token),
    }
    for label, data in attempts.items():
        assert isinstance(data, dict) and data.get("code") == "unauthorized", (label, data)
    # None of those counted as a presence; the real token still works.
    assert not _online(server, "alice")
    assert server.database.query("SELECT COUNT(*) FROM connections")[0][0] == 0
