"""Helpers for the REST tests: the error shape, forged tokens, refused sockets,
users in a given state, and writing to the database underneath a running server."""
import re
import time

import jwt
import pymysql
import socketio

from live import MYSQL, Reviewer

SNAKE_CASE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
TASK_FIELDS = {"id", "external_id", "name", "payload", "priority", "status", "assignee_id",
               "created_at", "assigned_at", "completed_at", "deadline", "outcome", "note",
               "queue", "reasons", "checklist", "kind", "review_of"}
# Supervisors' answers add what reviewers never see (docs/api.md, Second reviews and gold tasks).
SUPERVISED_TASK_FIELDS = TASK_FIELDS | {"expected_outcome", "audit", "final_outcome",
                                        "final_note", "finalized_at"}
USER_FIELDS = {"id", "username", "role", "active", "online", "available", "task_id",
               "completed_count"}
REVIEWER_FIELDS = USER_FIELDS | {"skills"}  # reviewers' user objects carry their skills


def user_fields(role: str) -> set:
    return REVIEWER_FIELDS if role == "reviewer" else USER_FIELDS


def check_error_body(body, where: str = "error body") -> dict:
    """`{"error": {"code": snake_case, "message": str, ...}}` and nothing beside it."""
    assert isinstance(body, dict) and set(body) == {"error"}, f"{where}: {body!r}"
    error = body["error"]
    assert isinstance(error, dict), f"{where}: {body!r}"
    assert isinstance(error.get("code"), str) and SNAKE_CASE.match(error["code"]), \
        f"{where}: code is not snake_case: {body!r}"
    assert isinstance(error.get("message"), str) and error["message"].strip(), \
        f"{where}: no message: {body!r}"
    return error


def assert_error(response, status, code: str | None = None) -> dict:
    """The response is a JSON error of `status` (an int or a set of ints) in the
    contract's shape; returns its `error` object."""
    allowed = status if isinstance(status, (set, frozenset, tuple)) else {status}
    where = f"{response.request.method} {response.request.path_url}"
    assert response.status_code in allowed, \
        f"{where}: expected {status}, got {response.status_code}: {response.text[:300]}"
    assert response.headers.get("Content-Type", "").startswith("application/json"), \
        f"{where}: not JSON: {response.headers.get('Content-Type')}"
    error = check_error_body(response.json(), where)
    if code is not None:
        assert error["code"] == code, f"{where}: code {error['code']!r}, expected {code!r}"
    return error


def assert_error_ack(ack, code: str | None = None) -> dict:
    """A refused socket event: `{"ok": false, "error": {"code", "message"}}`."""
    assert isinstance(ack, dict) and ack.get("ok") is False, f"not a refusal: {ack!r}"
    assert set(ack) == {"ok", "error"}, f"unexpected keys in the ack: {ack!r}"
    error = check_error_body({"error": ack["error"]}, "ack")
    if code is not None:
        assert error["code"] == code, f"ack code {error['code']!r}, expected {code!r}: {ack!r}"
    return error


def forge_token(server, token: str, **changes) -> str:
    """A token signed with the server's key: `token`'s claims with `changes`
    (a value of None removes the claim)."""
    key = server.env["QC_SECRET_KEY"]
    claims = jwt.decode(token, key, algorithms=["HS256"])
    for name, value in changes.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return jwt.encode(claims, key, algorithm="HS256")


def expired(server, token: str) -> str:
    now = int(time.time())
    return forge_token(server, token, iat=now - 3600, nbf=now - 3600, exp=now - 60)


def refused_connect(server, token=None, auth=True):
    """Try to open a /reviewer socket; assert it is refused and return the
    `connect_error` data the client received."""
    reviewer = Reviewer(server, token)
    options = {"auth": {"token": token}} if auth else {}
    try:
        reviewer.client.connect(server.url, namespaces=["/reviewer"], wait_timeout=10,
                                **options)
    except socketio.exceptions.ConnectionError:
        pass
    else:
        reviewer.disconnect()
        raise AssertionError(f"the /reviewer socket with {token!r} was accepted")
    finally:
        if reviewer.client.connected:
            reviewer.client.disconnect()
    return reviewer.connect_error


def supervisor_token(server, name: str = "sue") -> str:
    """Create a supervisor and log it in: its access token."""
    server.create_user(name, role="supervisor")
    return server.login(name)["access_token"]


def is_available(server, user_id: int) -> bool:
    """The reviewer's pause flag, read from the database."""
    rows = server.database.query("SELECT available FROM users WHERE id = %s", user_id)
    return bool(rows[0][0])


def put_availability(server, token, **body):
    return server.request("PUT", "/availability", token, json=body)


def two_busy_reviewers(server, connect):
    """alice and bob online, one task each: (alice, bob, alice's socket, bob's
    socket, alice's task id, bob's task id)."""
    alice = server.reviewer("alice")
    bob = server.reviewer("bob")
    a_sock = connect(alice["token"])
    a_sock.next("idle")
    b_sock = connect(bob["token"])
    b_sock.next("idle")
    server.add_tasks({"name": "one"}, {"name": "two"})
    return alice, bob, a_sock, b_sock, a_sock.task()["id"], b_sock.task()["id"]


def execute(database, sql: str, *args) -> None:
    """Write to the test database behind the server's back, committed."""
    if database.kind == "sqlite":
        import sqlite3
        conn = sqlite3.connect(database.url.removeprefix("sqlite:///"), timeout=10)
        try:
            with conn:
                conn.execute(sql.replace("%s", "?"), args)
        finally:
            conn.close()
        return
    with pymysql.connect(**MYSQL, database=database.name, autocommit=True) as conn:
        conn.cursor().execute(sql, args)


def count(database, table: str) -> int:
    return database.query(f"SELECT COUNT(*) FROM {table}")[0][0]
