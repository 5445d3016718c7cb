"""Who may do what: every REST route and every socket event, for anonymous, a
reviewer (who owns the task or account in question), another reviewer, a
supervisor and an admin.

The route list comes from the app's url_map and the socket handlers from the
Socket.IO server, so a new route or event without a row here fails the test.
Refused calls go first and must change nothing; permitted ones that change
state work on fresh tasks and users, so rows do not disturb each other.
"""
import itertools
import json
import subprocess
import sys
import time

import pytest
import socketio

from live import PASSWORD, ROOT, Reviewer

ANON, OWNER, OTHER, SUPERVISOR, ADMIN = ("anonymous", "reviewer", "other reviewer",
                                         "supervisor", "admin")
ROLES = (ANON, OWNER, OTHER, SUPERVISOR, ADMIN)
# Refusals first: they must not change what the permitted calls find.
RUN_ORDER = (ANON, OTHER, SUPERVISOR, ADMIN, OWNER)
MISSING = 999_999_999
_names = itertools.count()


def unique(prefix: str) -> str:
    return f"{prefix}{next(_names)}-{time.monotonic_ns() % 10**6}"


class World:
    """The people and things the matrix acts on."""

    def __init__(self, server, connect):
        self.server = server
        admin = server.admin_token
        self.alice = server.reviewer("alice")  # the owner
        self.bob = server.reviewer("bob")  # the other reviewer
        server.create_user("sue", role="supervisor")
        self.logins = {OWNER: server.login("alice"), OTHER: server.login("bob"),
                       SUPERVISOR: server.login("sue"),
                       ADMIN: server.login("admin", "admin-password-1")}
        self.admin = admin
        # Alice is online and always holds a task; new tasks therefore stay
        # pending (bob has no socket), and "alice's task" is whatever she holds.
        self.alice_socket = connect(self.logins[OWNER]["access_token"])
        self.alice_socket.next("idle")
        server.add_tasks({"name": "alice's first"}, {"name": "spare"})
        self.alice_socket.task()

    def token(self, role):
        return None if role == ANON else self.logins[role]["access_token"]

    def alice_task(self) -> int:
        task = self.server.request("GET", "/me/task", self.token(OWNER), expect=200).json()["task"]
        assert task is not None, "alice should always hold a task"
        return task["id"]

    def pending_task(self) -> int:
        return self.server.add_tasks({"name": unique("pending ")})[0]["id"]

    def fresh_user(self, role="reviewer") -> dict:
        name = unique(role)
        user = self.server.create_user(name, role=role)
        return {**user, "login": self.server.login(name)}

    def target_user(self, role) -> int:
        """Alice for the refused roles (her own account for the owner); a
        fresh reviewer for those allowed to change it."""
        return self.alice["id"] if role in (ANON, OWNER, OTHER) else self.fresh_user()["id"]

    def webhook(self) -> int:
        """A fresh subscription (to an address where nothing listens)."""
        return self.server.request("POST", "/webhooks", self.admin, expect=201, json={
            "url": "http://127.0.0.1:9/hook", "events": ["task.cancelled"],
            "secret": "a-secret-of-16-chars"}).json()["id"]

    def webhook_event(self) -> str:
        """A subscription with one event in its outbox: (its id, the event id)."""
        webhook_id = self.webhook()
        self.server.request("PATCH", f"/tasks/{self.pending_task()}", self.admin, expect=200,
                            json={"status": "cancelled"})
        [delivery] = self.server.request("GET", f"/webhooks/{webhook_id}/deliveries",
                                         self.admin, expect=200).json()["deliveries"]
        return f"/webhooks/{webhook_id}/deliveries/{delivery['event_id']}/redeliver"

    def call(self, role, method, path, token=True, **kwargs):
        return self.server.request(method, path, self.token(role) if token is True else token,
                                   **kwargs)


def _own_session(world, role, method, path, **kwargs):
    """Calls that end a session: made by a fresh user of the role."""
    if role == ANON:
        return world.call(role, method, path, **kwargs)
    kind = {OWNER: "reviewer", OTHER: "reviewer", SUPERVISOR: "supervisor", ADMIN: "admin"}[role]
    user = world.fresh_user(kind)
    return world.call(role, method, path, token=user["login"]["access_token"], **kwargs)


OK = 200
# (method, rule) -> (call(world, role), {role: status}) in ROLES order.
REST = {
    ("POST", "/login"): (
        lambda w, r: w.call(r, "POST", "/login", json={"username": "bob", "password": PASSWORD}),
        (OK, OK, OK, OK, OK)),
    ("POST", "/refresh"): (
        lambda w, r: w.call(r, "POST", "/refresh",
                            token=None if r == ANON else w.logins[r]["refresh_token"]),
        (401, OK, OK, OK, OK)),
    ("POST", "/logout"): (
        lambda w, r: _own_session(w, r, "POST", "/logout"), (401, OK, OK, OK, OK)),
    ("POST", "/me/password"): (
        lambda w, r: _own_session(w, r, "POST", "/me/password", json={
            "current_password": PASSWORD, "new_password": "a-new-password"}),
        (401, OK, OK, OK, OK)),
    ("PUT", "/availability"): (
        lambda w, r: w.call(r, "PUT", "/availability",
                            json={"availability": 1, "user_id": w.alice["id"]}),
        (401, OK, 403, OK, OK)),
    ("GET", "/me/task"): (
        lambda w, r: w.call(r, "GET", "/me/task"), (401, OK, OK, 403, 403)),
    ("POST", "/complete_task"): (
        lambda w, r: w.call(r, "POST", "/complete_task", json={"task_id": w.alice_task()}),
        (401, OK, 403, 403, 403)),
    ("POST", "/assign_task"): (
        lambda w, r: w.call(r, "POST", "/assign_task", json={"task_id": w.pending_task()}),
        (401, 403, 403, OK, OK)),
    ("GET", "/tasks"): (
        lambda w, r: w.call(r, "GET", "/tasks"), (401, 403, 403, OK, OK)),
    ("POST", "/tasks"): (
        lambda w, r: w.call(r, "POST", "/tasks", json={"name": unique("new ")}),
        (401, 403, 403, 201, 201)),
    ("POST", "/tasks/import"): (
        lambda w, r: w.call(r, "POST", "/tasks/import", data=f"name\n{unique('csv ')}\n",
                            headers={"Content-Type": "text/csv"}),
        (401, 403, 403, 201, 201)),
    ("GET", "/tasks/<int:task_id>"): (
        lambda w, r: w.call(r, "GET", f"/tasks/{w.alice_task()}"), (401, OK, 403, OK, OK)),
    ("PATCH", "/tasks/<int:task_id>"): (
        lambda w, r: w.call(r, "PATCH", f"/tasks/{w.alice_task()}",
                            json={"priority": next(_names) % 100}),
        (401, 403, 403, OK, OK)),
    ("GET", "/tasks/<int:task_id>/history"): (
        lambda w, r: w.call(r, "GET", f"/tasks/{w.alice_task()}/history"),
        (401, OK, 403, OK, OK)),
    ("POST", "/tasks/<int:task_id>/release"): (
        lambda w, r: w.call(r, "POST", f"/tasks/{w.alice_task()}/release"),
        (401, 403, 403, OK, OK)),
    ("GET", "/users"): (
        lambda w, r: w.call(r, "GET", "/users"), (401, 403, 403, OK, OK)),
    ("POST", "/users"): (
        lambda w, r: w.call(r, "POST", "/users", json={
            "username": unique("made "), "password": PASSWORD, "role": "reviewer"}),
        (401, 403, 403, 201, 201)),
    ("PATCH", "/users/<int:user_id>"): (
        lambda w, r: w.call(r, "PATCH", f"/users/{w.target_user(r)}",
                            json={"username": unique("renamed ")}),
        (401, 403, 403, OK, OK)),
    ("DELETE", "/users/<int:user_id>"): (
        lambda w, r: w.call(r, "DELETE", f"/users/{w.target_user(r)}"),
        (401, 403, 403, 204, 204)),
    ("POST", "/users/<int:user_id>/sign-out"): (
        lambda w, r: w.call(r, "POST", f"/users/{w.target_user(r)}/sign-out"),
        (401, 403, 403, OK, OK)),
    ("GET", "/users/<int:user_id>/stats"): (
        lambda w, r: w.call(r, "GET", f"/users/{w.alice['id']}/stats"), (401, OK, 403, OK, OK)),
    ("GET", "/tasks/export"): (
        lambda w, r: w.call(r, "GET", "/tasks/export", params={"format": "ndjson"}),
        (401, 403, 403, OK, OK)),
    ("POST", "/webhooks"): (
        lambda w, r: w.call(r, "POST", "/webhooks", json={
            "url": "http://127.0.0.1:9/hook", "events": ["task.completed"],
            "secret": "a-secret-of-16-chars"}),
        (401, 403, 403, 403, 201)),
    ("GET", "/webhooks"): (lambda w, r: w.call(r, "GET", "/webhooks"), (401, 403, 403, 403, OK)),
    ("DELETE", "/webhooks/<int:webhook_id>"): (
        lambda w, r: w.call(r, "DELETE", f"/webhooks/{w.webhook()}"),
        (401, 403, 403, 403, 204)),
    ("GET", "/webhooks/<int:webhook_id>/deliveries"): (
        lambda w, r: w.call(r, "GET", f"/webhooks/{w.webhook()}/deliveries"),
        (401, 403, 403, 403, OK)),
    ("POST", "/webhooks/<int:webhook_id>/deliveries/<event_id>/redeliver"): (
        lambda w, r: w.call(r, "POST", w.webhook_event()), (401, 403, 403, 403, 202)),
    ("GET", "/stats"): (lambda w, r: w.call(r, "GET", "/stats"), (401, 403, 403, OK, OK)),
    ("GET", "/stats/completions"): (lambda w, r: w.call(r, "GET", "/stats/completions"),
                                    (401, 403, 403, OK, OK)),
    ("GET", "/stats/reviewers"): (lambda w, r: w.call(r, "GET", "/stats/reviewers"),
                                  (401, 403, 403, OK, OK)),
    # Permitted, the call reaches the task: a pending one has no dispute (409
    # not_disputed; test_audits_api.py resolves real ones).
    ("POST", "/tasks/<int:task_id>/resolve"): (
        lambda w, r: w.call(r, "POST", f"/tasks/{w.pending_task()}/resolve",
                            json={"outcome": "pass"}), (401, 403, 403, 409, 409)),
    ("GET", "/board"): (lambda w, r: w.call(r, "GET", "/board"), (401, 403, 403, OK, OK)),
    ("GET", "/queues"): (lambda w, r: w.call(r, "GET", "/queues"), (401, 403, 403, OK, OK)),
    ("POST", "/queues"): (
        lambda w, r: w.call(r, "POST", "/queues", json={"name": unique("q").replace(" ", "")}),
        (401, 403, 403, 201, 201)),
    ("PATCH", "/queues/<string:name>"): (
        lambda w, r: w.call(r, "PATCH", "/queues/default",
                            json={"description": unique("the default queue ")}),
        (401, 403, 403, OK, OK)),
    ("GET", "/healthz"): (lambda w, r: w.call(r, "GET", "/healthz"), (OK,) * 5),
    ("GET", "/openapi.json"): (lambda w, r: w.call(r, "GET", "/openapi.json"), (OK,) * 5),
    # Open unless QC_METRICS_TOKEN is set (test_metrics.py): a token of any role is not it.
    ("GET", "/metrics"): (lambda w, r: w.call(r, "GET", "/metrics"), (OK,) * 5),
    ("GET", "/"): (lambda w, r: w.call(r, "GET", "/"), (OK,) * 5),
    ("GET", "/reviewer"): (lambda w, r: w.call(r, "GET", "/reviewer"), (OK,) * 5),
    ("GET", "/supervisor"): (lambda w, r: w.call(r, "GET", "/supervisor"), (OK,) * 5),
    ("GET", "/vendor/<name>"): (
        lambda w, r: w.call(r, "GET", "/vendor/socket.io.min.js"), (OK,) * 5),
    ("GET", "/static/<path:filename>"): (
        lambda w, r: w.call(r, "GET", "/static/favicon.svg"), (OK,) * 5),
}

# Routes naming an id or a file, called with one that does not exist: the
# role check comes first (no probing), then 404.
UNKNOWN = {
    ("GET", "/tasks/<int:task_id>"): (f"/tasks/{MISSING}", None, (401, 404, 404, 404, 404)),
    ("PATCH", "/tasks/<int:task_id>"): (f"/tasks/{MISSING}", {"name": "x"},
                                        (401, 403, 403, 404, 404)),
    ("GET", "/tasks/<int:task_id>/history"): (f"/tasks/{MISSING}/history", None,
                                              (401, 404, 404, 404, 404)),
    ("POST", "/tasks/<int:task_id>/release"): (f"/tasks/{MISSING}/release", None,
                                               (401, 403, 403, 404, 404)),
    ("POST", "/tasks/<int:task_id>/resolve"): (f"/tasks/{MISSING}/resolve", {"outcome": "pass"},
                                               (401, 403, 403, 404, 404)),
    ("PATCH", "/users/<int:user_id>"): (f"/users/{MISSING}", {"username": "x"},
                                        (401, 403, 403, 404, 404)),
    ("DELETE", "/users/<int:user_id>"): (f"/users/{MISSING}", None, (401, 403, 403, 404, 404)),
    ("POST", "/users/<int:user_id>/sign-out"): (f"/users/{MISSING}/sign-out", None,
                                                (401, 403, 403, 404, 404)),
    ("GET", "/users/<int:user_id>/stats"): (f"/users/{MISSING}/stats", None,
                                            (401, 403, 403, 404, 404)),
    ("PATCH", "/queues/<string:name>"): ("/queues/nothing", {"description": "x"},
                                         (401, 403, 403, 404, 404)),
    ("DELETE", "/webhooks/<int:webhook_id>"): (f"/webhooks/{MISSING}", None,
                                               (401, 403, 403, 403, 404)),
    ("GET", "/webhooks/<int:webhook_id>/deliveries"): (f"/webhooks/{MISSING}/deliveries", None,
                                                       (401, 403, 403, 403, 404)),
    ("POST", "/webhooks/<int:webhook_id>/deliveries/<event_id>/redeliver"): (
        f"/webhooks/{MISSING}/deliveries/no-such-event/redeliver", None,
        (401, 403, 403, 403, 404)),
    ("GET", "/vendor/<name>"): ("/vendor/nothing.js", None, (404,) * 5),
    ("GET", "/static/<path:filename>"): ("/static/nothing.css", None, (404,) * 5),
}

# (namespace, event) -> outcome per role: "ok", "refused" (at connect), or the
# error code of the ack. "disconnect" needs no permission: it is the socket's own.
SOCKETS = {
    ("/reviewer", "connect"): ("refused", "ok", "ok", "refused", "refused"),
    ("/reviewer", "task-complete"): ("refused", "ok", "not_your_task", "refused", "refused"),
    ("/reviewer", "set-availability"): ("refused", "ok", "ok", "refused", "refused"),
    ("/board", "connect"): ("refused", "refused", "refused", "ok", "ok"),
}
NOT_GUARDED = {"disconnect"}


ROUTES_SCRIPT = """
import json, sys
from qc_live import create_app
from qc_live.config import Config
from qc_live.extensions import socketio
app = create_app(Config(database_url="sqlite:///" + sys.argv[1], secret_key="r" * 48,
                        async_mode="threading", instance_path=sys.argv[2],
                        admin_username="a", admin_password="a-password", log_level="WARNING"))
json.dump({"rest": [[m, r.rule] for r in app.url_map.iter_rules()
                    for m in r.methods - {"HEAD", "OPTIONS"}],
           "events": [[ns, e] for ns, handlers in socketio.server.handlers.items()
                      for e in handlers]}, sys.stdout)
"""


@pytest.fixture
def routes(tmp_path):
    """The app's routes and socket events. Read in a fresh interpreter:
    Flask-SocketIO binds the handlers to the first app a process builds only."""
    out = subprocess.run([sys.executable, "-c", ROUTES_SCRIPT, str(tmp_path / "routes.sqlite3"),
                          str(tmp_path / "routes")], cwd=ROOT, capture_output=True, text=True,
                         timeout=60, check=True).stdout
    found = json.loads(out)
    return {tuple(x) for x in found["rest"]}, {tuple(x) for x in found["events"]}


def test_every_route_and_event_has_a_row(routes):
    rest, events = routes
    assert rest - set(REST) == set(), "routes without a row in the matrix"
    assert set(REST) - rest == set(), "rows for routes the app does not have"
    with_arguments = {(m, r) for m, r in rest if "<" in r}
    assert set(UNKNOWN) == with_arguments
    guarded = {(ns, event) for ns, event in events if event not in NOT_GUARDED}
    assert guarded == set(SOCKETS)


def _socket_outcome(world, role, namespace, event):
    token = world.token(role)
    if namespace == "/board":
        client = socketio.Client(reconnection=False)
        try:
            client.connect(world.server.url, namespaces=["/board"], auth={"token": token},
                           wait_timeout=10)
        except socketio.exceptions.ConnectionError:
            return "refused"
        client.disconnect()
        return "ok"
    sock = Reviewer(world.server, token)
    try:
        sock.connect()
    except socketio.exceptions.ConnectionError:
        return "refused"
    try:
        if event == "connect":
            return "ok"
        if event == "set-availability":
            ack = sock.call("set-availability", {"available": True})
        else:
            ack = sock.call("task-complete", {"task_id": world.alice_task()})
        return "ok" if ack.get("ok") else ack["error"]["code"]
    finally:
        sock.disconnect()


def test_the_role_matrix(server, connect, routes):
    world = World(server, connect)
    table = {}
    for (method, rule), (call, expected) in REST.items():
        got = {}
        for role in RUN_ORDER:
            response = call(world, role)
            got[role] = response.status_code
            if response.status_code >= 400:
                assert response.headers["Content-Type"].startswith("application/json"), \
                    (method, rule, role)
        table[(method, rule)] = (tuple(got[r] for r in ROLES), expected)
    for (method, rule), (path, body, expected) in UNKNOWN.items():
        got = tuple(world.call(role, method, path, **({"json": body} if body else {}))
                    .status_code for role in ROLES)
        table[("missing id", method, rule)] = (got, expected)
    for (namespace, event), expected in SOCKETS.items():
        got = tuple(_socket_outcome(world, role, namespace, event) for role in RUN_ORDER)
        got = tuple(got[RUN_ORDER.index(role)] for role in ROLES)
        table[(namespace, event)] = (got, expected)
    wrong = {key: {"got": dict(zip(ROLES, got)), "expected": dict(zip(ROLES, expected))}
             for key, (got, expected) in table.items() if got != expected}
    assert not wrong, "\n".join(f"{key}: {value}" for key, value in wrong.items())
