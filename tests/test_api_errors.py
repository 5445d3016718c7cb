"""One error shape everywhere, the right status, and never a 500 for bad input —
over REST and in the acks of the /reviewer socket's events."""
import json

from api_support import (assert_error, assert_error_ack, count, is_available,
                         supervisor_token, two_busy_reviewers)
from live import PASSWORD

# Every route that reads a JSON body: (method, path, who may call it).
BODY_ROUTES = [
    ("POST", "/login", None),
    ("POST", "/users", "admin"),
    ("POST", "/tasks", "admin"),
    ("PUT", "/availability", "reviewer"),
    ("POST", "/complete_task", "reviewer"),
    ("POST", "/assign_task", "admin"),
]


def _tokens(server) -> dict:
    alice = server.reviewer("alice")
    return {None: None, "admin": server.admin_token, "reviewer": alice["token"]}


def test_unknown_routes_are_404_and_wrong_methods_405_in_json(server):
    for path in ("/nope", "/tasks/abc", "/tasks/1/nope", "/users/x/y", "/me"):
        assert_error(server.request("GET", path, server.admin_token), 404, "not_found")
    assert_error(server.request("POST", "/nope"), 404, "not_found")
    for method, path, allowed in (("GET", "/login", "POST"), ("DELETE", "/healthz", "GET"),
                                  ("GET", "/refresh", "POST"), ("GET", "/complete_task", "POST"),
                                  ("POST", "/me/task", "GET"), ("PUT", "/tasks/1/release", "POST"),
                                  ("DELETE", "/assign_task", "POST")):
        response = server.request(method, path, server.admin_token)
        assert_error(response, 405, "method_not_allowed")
        assert allowed in response.headers.get("Allow", "").split(", "), response.headers


def test_a_body_over_the_size_limit_is_413_in_json(server):
    body = b'{"name": "x", "payload": {"b": "' + b"x" * (17 * 1024 * 1024) + b'"}}'
    response = server.request("POST", "/tasks", server.admin_token, data=body,
                              headers={"Content-Type": "application/json"})
    assert_error(response, 413)
    assert count(server.database, "tasks") == 0


def test_malformed_json_is_400_on_every_route_that_takes_a_body(server):
    tokens = _tokens(server)
    bodies = [
        b'{"name": "x",',                     # cut short
        b"{'name': 'x'}",                    # not JSON quoting
        b'{"name": "x"} trailing',
        b"\xff\xfe{\x00}",                    # not UTF-8
        b'{"name": "x", "payload": {"v": NaN}}',
        b'{"name": "x", "payload": {"v": Infinity}}',
        b'{"name": "x", "payload": {"v": 1e400}}',
        b"[" * 50_000 + b"]" * 50_000,        # nested deeper than the parser recurses
        b"",
    ]
    for method, path, who in BODY_ROUTES:
        for body in bodies:
            response = server.request(method, path, tokens[who], data=body,
                                      headers={"Content-Type": "application/json"})
            assert response.status_code == 400, (method, path, body[:40], response.text)
            assert_error(response, 400)
    assert count(server.database, "tasks") == 0


def test_a_json_body_not_declared_as_json_is_415_and_changes_nothing(server):
    alice = server.reviewer("alice")
    tokens = {None: None, "admin": server.admin_token, "reviewer": alice["token"]}
    task = server.add_tasks({"name": "t"})[0]
    routes = [
        ("POST", "/login", None, {"username": "alice", "password": PASSWORD}),
        ("POST", "/users", "admin", {"username": "carol", "password": PASSWORD}),
        ("POST", "/tasks", "admin", {"name": "new"}),
        ("PUT", "/availability", "reviewer", {"availability": 0}),
        ("POST", "/complete_task", "reviewer", {"task_id": task["id"]}),
        ("POST", "/assign_task", "admin", {"task_id": task["id"]}),
        ("PATCH", f"/tasks/{task['id']}", "admin", {"priority": 5}),
        ("PATCH", f"/users/{alice['id']}", "admin", {"username": "alicia"}),
        ("POST", "/me/password", "reviewer", {"current_password": PASSWORD,
                                              "new_password": "another-password"}),
    ]
    users_before, tasks_before = count(server.database, "users"), server.task(task["id"])
    for method, path, who, body in routes:
        text = json.dumps(body)
        xml = "<body>" + "".join(f"<{k}>{v}</{k}>" for k, v in body.items()) + "</body>"
        sends = [
            {"data": text},  # no Content-Type at all
            {"data": text, "headers": {"Content-Type": "text/plain"}},
            {"data": text, "headers": {"Content-Type": "text/plain; charset=utf-8"}},
            {"data": body},  # a form
            {"files": {"body": ("body.json", text, "application/json")}},  # multipart
            {"data": xml, "headers": {"Content-Type": "application/xml"}},
        ]
        for send in sends:
            response = server.request(method, path, tokens[who], **send)
            assert_error(response, 415, "unsupported_media_type")
        # An empty body is still a missing body, whatever its type.
        assert_error(server.request(method, path, tokens[who], data="",
                                    headers={"Content-Type": "text/plain"}), 400,
                     "missing_body")
    assert count(server.database, "users") == users_before
    assert server.task(task["id"]) == tasks_before
    assert server.login("alice")["user"]["username"] == "alice"  # no password changed
    # JSON under its other names is JSON.
    for content_type in ("application/json; charset=utf-8", "application/merge-patch+json"):
        response = server.request("POST", "/tasks", server.admin_token, data='{"name": "ok"}',
                                  headers={"Content-Type": content_type})
        assert response.status_code == 201, (content_type, response.text)


def test_every_answer_tells_browsers_not_to_sniff(server):
    admin = server.admin_token
    answers = [
        server.request("GET", "/healthz"),
        server.request("GET", "/openapi.json"),
        server.request("GET", "/tasks", admin),
        server.request("GET", "/nope"),
        server.request("DELETE", "/healthz"),
        server.request("GET", "/users"),
        server.request("POST", "/login", json={"username": "x", "password": "y"}),
        server.request("POST", "/login", data="{", headers={"Content-Type": "application/json"}),
        server.request("POST", "/tasks", admin, data="name",
                       headers={"Content-Type": "text/plain"}),
        server.request("GET", "/"),
        server.request("GET", "/vendor/socket.io.min.js"),
        server.request("GET", "/static/css/app.css"),
        server.request("GET", "/static/nope.js"),
        server.request("GET", "/socket.io/?EIO=4&transport=polling"),
    ]
    for answer in answers:
        assert answer.headers.get("X-Content-Type-Options") == "nosniff", \
            (answer.request.method, answer.request.path_url, answer.status_code)
    statuses = {answer.status_code for answer in answers}
    assert {200, 400, 401, 404, 405} <= statuses, statuses


def test_control_characters_are_refused_in_text_and_notes_keep_their_lines(server, connect):
    admin = server.admin_token
    bad_text = ["nul\x00name", "esc\x1b[2J", "two\nlines", "tab\there", "del\x7f",
                "c1\x85next", "invoice\u202eexe.txt", "isolate\u2066x\u2069",
                "line\u2028separator"]
    for bad in bad_text:
        error = assert_error(server.request("POST", "/tasks", admin, json={"name": bad}), 422,
                             "control_character")
        assert "U+" in error["message"], error
        assert_error(server.request("POST", "/tasks", admin,
                                    json={"name": "ok", "external_id": bad}),
                     422, "control_character")
    listed = assert_error(server.request("POST", "/tasks", admin, json=[
        {"name": "fine"}, {"name": "bad\x00"}]), 422, "invalid_tasks")
    assert [(row["index"], row["code"]) for row in listed["rows"]] == \
        [(1, "control_character")]
    assert count(server.database, "tasks") == 0
    # Text that only looks unusual is fine: emoji built with zero-width
    # joiners, a left-to-right mark in Hebrew, a no-break space; blanks
    # around a name, a trailing line break included, are trimmed as before.
    names = ["\U0001f469\u200d\U0001f4bb review", "\u05e9\u05dc\u05d5\u05dd \u200e(2)",
             "Lot\u00a010", "pasted\n"]
    tasks = server.add_tasks(*[{"name": name} for name in names])
    assert [t["name"] for t in tasks] == names[:3] + ["pasted"]
    assert_error(server.request("PATCH", f"/tasks/{tasks[0]['id']}", admin,
                                json={"name": "a\x00b"}), 422, "control_character")
    assert server.task(tasks[0]["id"])["name"] == names[0]

    # Notes may hold several lines and tabs, not other control characters.
    alice = server.reviewer("alice")
    sock = connect(alice["token"])
    held = sock.task()
    assert_error(server.request("POST", "/complete_task", alice["token"],
                                json={"task_id": held["id"], "note": "a\x00b"}),
                 422, "control_character")
    assert_error_ack(sock.complete(held["id"], note="bell\x07"), "control_character")
    assert_error_ack(sock.complete(held["id"], note="\u202egnorw"), "control_character")
    note = "line one\r\nline two\tcolumn"
    assert sock.complete(held["id"], note=note)["ok"] is True
    assert server.task(held["id"])["note"] == note


def test_wrong_shapes_of_json_never_give_500(server):
    tokens = _tokens(server)
    bodies = [None, [], {}, "text", 0, -1, True, [{}], {"": ""}, {"task_id": None},
              {"task_id": []}, {"task_id": {"id": 1}}, {"username": {}, "password": []},
              {"availability": {}}, {"name": ["x"]}, {"name": "x", "payload": None}]
    for method, path, who in BODY_ROUTES:
        for body in bodies:
            response = server.request(method, path, tokens[who], json=body)
            if path == "/tasks" and body == {"name": "x", "payload": None}:
                assert response.status_code == 201, response.text  # payload null = {}
                continue
            assert response.status_code in (400, 401, 403, 404, 409, 422), \
                (method, path, body, response.status_code, response.text)
            assert_error(response, response.status_code)


def test_edge_values_give_4xx_not_500(server, connect):
    admin = server.admin_token
    alice = server.reviewer("alice")
    huge = 10**20
    surrogate = "bad\ud800text"
    cases = [
        # (method, path, token, json body, expected status)
        ("GET", f"/tasks/{huge}", admin, None, 404),
        ("GET", f"/tasks/{2**63}", admin, None, 404),
        ("GET", f"/tasks/{2**63 - 1}", admin, None, 404),
        ("POST", f"/tasks/{huge}/release", admin, None, 404),
        ("POST", "/assign_task", admin, {"task_id": huge}, 422),
        ("POST", "/assign_task", admin, {"task_id": 2**63 - 1}, 404),
        ("POST", "/complete_task", alice["token"], {"task_id": huge}, 422),
        ("POST", "/complete_task", alice["token"], {"task_id": 2**63 - 1}, 404),
        ("POST", "/complete_task", alice["token"], {"task_id": 1, "user_id": huge}, 422),
        ("PUT", "/availability", admin, {"availability": 1, "user_id": huge}, 422),
        ("PUT", "/availability", admin, {"availability": 1, "user_id": 2**63 - 1}, 404),
        ("POST", "/tasks", admin, {"name": surrogate}, 400),
        ("POST", "/tasks", admin, {"name": "t", "external_id": surrogate}, 400),
        ("POST", "/tasks", admin, {"name": "t", "payload": {"k": [surrogate]}}, 400),
        ("POST", "/tasks", admin, {"name": "t", "payload": {surrogate: 1}}, 400),
        ("POST", "/tasks", admin, {"name": "t", "deadline": "0001-01-01T00:00:00+01:00"}, 422),
        ("POST", "/tasks", admin, {"name": "t", "priority": 10**400}, 422),
        ("POST", "/users", admin, {"username": surrogate, "password": PASSWORD,
                                   "role": "reviewer"}, 400),
        ("POST", "/users", admin, {"username": "carol", "password": surrogate * 3,
                                   "role": "reviewer"}, 400),
        ("POST", "/login", None, {"username": "alice", "password": surrogate}, 400),
        ("POST", "/login", None, {"username": surrogate, "password": PASSWORD}, 400),
        ("POST", "/complete_task", alice["token"], {"task_id": 1, "note": surrogate}, 400),
    ]
    for method, path, token, body, status in cases:
        response = server.request(method, path, token, json=body)
        assert response.status_code == status, (method, path, body, response.text)
        assert_error(response, status)
    assert count(server.database, "tasks") == 0
    assert count(server.database, "users") == 2  # admin and alice


def test_unusual_but_valid_values_are_stored_and_read_back(server):
    payload = {"big": 10**30, "neg": -(10**20), "pi": 3.25, "text": "n\u00e4\u00efve \U0001f600",
               "nested": {"a": [None, True, {"b": ""}]}, "": "empty key"}
    tasks = server.add_tasks(
        {"name": "\U0001f600 emoji and \u00e9", "payload": payload, "external_id": "\u00e9-1"},
        {"name": "deadline at the edge", "deadline": "9999-12-31T23:59:59Z"},
        {"name": "priority at the edge", "priority": 1_000_000},
        {"name": "n" * 255, "external_id": "e" * 191})
    for task in tasks:
        assert server.task(task["id"]) == task
    assert tasks[0]["payload"] == payload
    assert tasks[1]["deadline"].startswith("9999-12-31T23:59:59")
    assert tasks[2]["priority"] == 1_000_000


def test_external_ids_the_database_calls_equal_never_give_500(server):
    # On MariaDB "Case-1" and "case-1" collide (see test_api_tasks); whatever the
    # answer, it is not a crash and not a second copy of an existing task.
    first = server.add_tasks({"name": "a", "external_id": "Case-1"})[0]
    response = server.request("POST", "/tasks", server.admin_token,
                              json={"name": "b", "external_id": "case-1"})
    assert response.status_code in (201, 409), response.text
    if response.status_code == 409:
        assert_error(response, 409)
        assert count(server.database, "tasks") == 1
    else:
        assert response.json()["tasks"][0]["external_id"] == "case-1"
    assert server.task(first["id"]) == first


def test_wrong_roles_are_403(server):
    alice = server.reviewer("alice")["token"]
    sue = supervisor_token(server)
    task = server.add_tasks({"name": "t"})[0]
    for method, path, body in (("GET", "/users", None), ("POST", "/tasks", {"name": "t"}),
                               ("POST", "/assign_task", {"task_id": task["id"]}),
                               ("POST", f"/tasks/{task['id']}/release", None),
                               ("POST", "/users", {"username": "x", "password": PASSWORD,
                                                   "role": "reviewer"})):
        assert_error(server.request(method, path, alice, json=body), 403)
    for token in (sue, server.admin_token):
        for method, path, body in (("GET", "/me/task", None),
                                   ("POST", "/complete_task", {"task_id": task["id"]})):
            assert_error(server.request(method, path, token, json=body), 403)
    assert count(server.database, "tasks") == 1
    assert server.task(task["id"])["status"] == "pending"


# --- socket acks -------------------------------------------------------------------

def test_task_complete_refusals_ack_with_the_rest_codes(server, connect):
    _, bob, a_sock, _, a_task, b_task = two_busy_reviewers(server, connect)

    refusals = [
        ({}, "missing_field"),
        ({"outcome": "pass"}, "missing_field"),
        ({"task_id": None}, "missing_field"),
        ({"task_id": str(a_task)}, None),
        ({"task_id": a_task, "outcome": "maybe"}, "bad_outcome"),
        ({"task_id": a_task, "note": 7}, None),
        ({"task_id": a_task, "note": "bad\ud800"}, None),
        ({"task_id": a_task, "extra": 1}, None),
        ({"task_id": b_task}, "not_your_task"),
        ({"task_id": 999999}, "task_not_found"),
        ({"task_id": 10**20}, None),
        ("not an object", None),
        ([a_task], None),
    ]
    for data, code in refusals:
        ack = a_sock.call("task-complete", data)
        error = assert_error_ack(ack, code)
        assert error["code"] != "internal_error", (data, ack)
    # No data at all is a refusal too.
    assert_error_ack(a_sock.client.call("task-complete", namespace="/reviewer", timeout=10))
    assert server.task(a_task)["status"] == "assigned"
    assert server.task(b_task)["assignee_id"] == bob["id"]

    ok = a_sock.complete(a_task)
    assert ok["ok"] is True and ok["task_id"] == a_task
    assert_error_ack(a_sock.complete(a_task), "task_not_assigned")  # 409: no longer assigned
    assert server.task(a_task)["status"] == "completed"


def test_rest_and_socket_refusals_use_the_same_codes(server, connect):
    """The socket's codes are the REST codes for the same mistake (and REST
    gives them the status the contract names)."""
    alice, _, a_sock, _, a_task, b_task = two_busy_reviewers(server, connect)
    done = server.add_tasks({"name": "done"})[0]

    mistakes = [({}, 400), ({"task_id": a_task, "outcome": "maybe"}, 422),
                ({"task_id": b_task}, 403), ({"task_id": 999999}, 404)]
    for data, status in mistakes:
        rest = assert_error(server.request("POST", "/complete_task", alice["token"], json=data),
                            status)
        ack = assert_error_ack(a_sock.call("task-complete", data))
        assert ack["code"] == rest["code"], (data, ack, rest)

    a_sock.complete(a_task)
    assert a_sock.task()["id"] == done["id"]
    rest = assert_error(server.request("POST", "/complete_task", alice["token"],
                                       json={"task_id": a_task}), 409)
    ack = assert_error_ack(a_sock.call("task-complete", {"task_id": a_task}))
    assert ack["code"] == rest["code"]


def test_set_availability_refusals_ack_with_an_error(server, connect):
    alice = server.reviewer("alice")
    sock = connect(alice["token"])
    sock.next("idle")
    for data, code in (({}, "missing_field"), ({"available": 2}, "out_of_range"),
                       ({"available": "yes"}, "wrong_type"), ({"availability": 1}, None),
                       ("yes", None), (None, None)):
        assert_error_ack(sock.call("set-availability", data), code)
    assert is_available(server, alice["id"])
    assert sock.call("set-availability", {"available": False}) == {"ok": True,
                                                                  "available": False}
