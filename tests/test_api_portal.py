"""The original portal's REST API: availability, my task, complete, assign,
release, health — and what each of them pushes to the reviewer's sockets."""
from api_support import (TASK_FIELDS, assert_error, execute, is_available, put_availability,
                         supervisor_token, two_busy_reviewers)
from live import Reviewer


# --- PUT /availability ------------------------------------------------------------

def test_reviewer_pauses_and_resumes_itself_with_0_1_or_booleans(server, connect):
    alice = server.reviewer("alice")
    sock = connect(alice["token"])
    assert sock.next("idle") == {"reason": "queue-empty"}
    for value, expected in ((0, 0), (1, 1), (False, 0), (True, 1), (0, 0)):
        response = put_availability(server, alice["token"], availability=value)
        assert response.status_code == 200, (value, response.text)
        body = response.json()
        assert isinstance(body["message"], str) and body["message"]
        assert body["availability"] == expected and type(body["availability"]) is int
        assert is_available(server, alice["id"]) is bool(expected)
    assert sock.next("idle") == {"reason": "paused"}

    # Paused: a new task waits. Resuming over REST claims it and pushes it.
    task = server.add_tasks({"name": "waiting"})[0]
    assert server.task(task["id"])["status"] == "pending"
    response = put_availability(server, alice["token"], availability=1, user_id=alice["id"])
    assert response.status_code == 200, response.text
    assert response.json()["availability"] == 1
    assert sock.task()["id"] == task["id"]
    assert server.task(task["id"])["assignee_id"] == alice["id"]


def test_supervisor_sets_any_reviewers_availability_reviewers_only_their_own(server):
    alice = server.reviewer("alice")
    bob = server.reviewer("bob")
    sue = supervisor_token(server)

    response = put_availability(server, sue, availability=0, user_id=alice["id"])
    assert response.status_code == 200, response.text
    assert response.json()["availability"] == 0 and isinstance(response.json()["message"], str)
    assert not is_available(server, alice["id"])
    response = put_availability(server, server.admin_token, availability=True,
                                 user_id=alice["id"])
    assert response.status_code == 200 and response.json()["availability"] == 1
    assert is_available(server, alice["id"])

    assert_error(put_availability(server, bob["token"], availability=0, user_id=alice["id"]),
                 403)
    assert is_available(server, alice["id"])
    assert_error(put_availability(server, sue, availability=0, user_id=999999), 404)
    # A supervisor has no availability of its own.
    assert_error(put_availability(server, sue, availability=0), {400, 403, 422})
    sue_id = server.login("sue")["user"]["id"]
    assert_error(put_availability(server, server.admin_token, availability=0, user_id=sue_id),
                 {400, 403, 422})


def test_bad_availability_values_are_refused_and_change_nothing(server):
    alice = server.reviewer("alice")
    sue = supervisor_token(server)
    cases = [
        ({"availability": 2}, 422),
        ({"availability": -1}, 422),
        ({"availability": "x"}, 400),
        ({"availability": "1"}, 400),
        ({"availability": "true"}, 400),
        ({"availability": 1.0}, 400),
        ({"availability": None}, 400),
        ({"availability": [1]}, 400),
        ({}, 400),
        ({"available": 0}, 400),
        ({"availability": 0, "user_id": str(alice["id"])}, 400),
        ({"availability": 0, "user_id": 0}, 422),
        ({"availability": 0, "user_id": 10**30}, 422),
    ]
    for token in (alice["token"], sue):
        for body, status in cases:
            response = server.request("PUT", "/availability", token, json=body)
            assert response.status_code == status, (body, response.text)
            assert_error(response, status)
    assert_error(server.request("PUT", "/availability", alice["token"], json=[0]), 400)
    assert is_available(server, alice["id"])


# --- GET /me/task ------------------------------------------------------------------

def test_me_task_shows_the_held_task_or_null(server, connect):
    alice = server.reviewer("alice")
    assert server.request("GET", "/me/task", alice["token"], expect=200).json() \
        == {"task": None, "form": None}
    sock = connect(alice["token"])
    sock.next("idle")
    task = server.add_tasks({"name": "mine"})[0]
    pushed = sock.task()
    body = server.request("GET", "/me/task", alice["token"], expect=200).json()
    assert set(body) == {"task", "form"} and set(body["task"]) == TASK_FIELDS
    assert body["task"] == pushed
    assert (body["task"]["id"], body["task"]["status"], body["task"]["assignee_id"]) \
        == (task["id"], "assigned", alice["id"])
    sock.complete(task["id"])
    sock.next("idle")
    assert server.request("GET", "/me/task", alice["token"], expect=200).json() \
        == {"task": None, "form": None}
    # Supervisors hold no tasks.
    assert_error(server.request("GET", "/me/task", supervisor_token(server)), 403)


# --- POST /complete_task -----------------------------------------------------------

def test_complete_task_answers_the_next_task_and_pushes_it_to_every_tab(server, connect):
    alice = server.reviewer("alice")
    tab1, tab2 = connect(alice["token"]), connect(alice["token"])
    first, second = server.add_tasks({"name": "first", "priority": 2}, {"name": "second"})
    assert tab1.task()["id"] == first["id"]

    response = server.request("POST", "/complete_task", alice["token"], expect=200, json={
        "task_id": first["id"], "outcome": "fail", "note": "dent", "user_id": alice["id"]})
    body = response.json()
    assert {"message", "task", "next_task"} <= set(body)
    assert isinstance(body["message"], str) and body["message"]
    done = body["task"]
    assert set(done) == TASK_FIELDS
    assert (done["id"], done["status"], done["outcome"], done["note"], done["assignee_id"]) \
        == (first["id"], "completed", "fail", "dent", alice["id"])
    assert done["completed_at"] is not None
    supervised = server.task(first["id"])
    assert {k: supervised[k] for k in done} == done
    assert (supervised["final_outcome"], supervised["final_note"]) == ("fail", "dent")
    nxt = body["next_task"]
    assert (nxt["id"], nxt["status"], nxt["assignee_id"]) == (second["id"], "assigned",
                                                              alice["id"])
    # The same next task reaches both tabs over the socket.
    for tab in (tab1, tab2):
        pushed = tab.next("task-assigned")["task"]
        while pushed["id"] == first["id"]:  # the first assignment, if not read yet
            pushed = tab.next("task-assigned")["task"]
        assert pushed == nxt

    response = server.request("POST", "/complete_task", alice["token"], expect=200,
                              json={"task_id": second["id"]})
    body = response.json()
    assert body["next_task"] is None and body["task"]["outcome"] is None
    assert tab1.next("idle") == {"reason": "queue-empty"}


def test_complete_task_refusals(server, connect):
    alice, bob, _, _, a_task, b_task = two_busy_reviewers(server, connect)

    def complete(body, token=alice["token"]):
        return server.request("POST", "/complete_task", token, json=body)

    assert_error(complete({"task_id": b_task}), 403)
    assert_error(complete({"task_id": a_task, "user_id": bob["id"]}), 403)
    assert_error(complete({"task_id": 999999}), 404)
    assert_error(complete({}), 400)
    assert_error(complete({"task_id": str(a_task)}), 400)
    assert_error(complete({"task_id": a_task, "outcome": "maybe"}), 422)
    assert_error(complete({"task_id": a_task, "outcome": 1}), 400)
    assert_error(complete({"task_id": a_task, "note": 5}), 400)
    assert_error(complete({"task_id": a_task, "grade": "A"}), 400)
    assert_error(complete({"task_id": a_task}, supervisor_token(server)), 403)
    # None of that changed anything.
    assert server.task(a_task)["status"] == "assigned"
    assert server.task(b_task)["assignee_id"] == bob["id"]

    server.request("POST", "/complete_task", alice["token"], expect=200,
                   json={"task_id": a_task, "outcome": "pass"})
    assert_error(complete({"task_id": a_task}), 409)
    assert server.task(a_task)["outcome"] == "pass"


def test_completing_a_released_task_is_409_for_its_former_holder(server, connect):
    alice = server.reviewer("alice")
    sock = connect(alice["token"])
    sock.next("idle")
    assert sock.call("set-availability", {"available": False})["ok"] is True
    sock.next("idle")
    task = server.add_tasks({"name": "t"})[0]
    # Paused reviewers get nothing new; resume to get it, then pause again so
    # that the release does not hand it straight back.
    assert sock.call("set-availability", {"available": True})["ok"] is True
    assert sock.task()["id"] == task["id"]
    assert sock.call("set-availability", {"available": False})["ok"] is True
    server.request("POST", f"/tasks/{task['id']}/release", server.admin_token, expect=200)
    assert sock.next("task-revoked") == {"task_id": task["id"], "reason": "released"}
    assert server.task(task["id"])["status"] == "pending"
    response = server.request("POST", "/complete_task", alice["token"],
                              json={"task_id": task["id"]})
    assert_error(response, 409)
    assert server.task(task["id"])["status"] == "pending"


# --- POST /assign_task -------------------------------------------------------------

def test_assign_task_goes_to_the_longest_idle_free_reviewer(start_server):
    # No sweep (it would dispatch the task first) and leases that outlive the test.
    server = start_server(QC_SWEEP_SECONDS="600", QC_LEASE_SECONDS="600",
                          QC_HEARTBEAT_SECONDS="300")
    alice = server.reviewer("alice")
    bob = server.reviewer("bob")
    sue = supervisor_token(server)
    sockets = []
    try:
        # Bob comes online first, so he has been idle longer although his id is higher.
        for reviewer in (bob, alice):
            sock = Reviewer(server, reviewer["token"]).connect()
            sockets.append(sock)
            assert sock.next("idle") == {"reason": "queue-empty"}
        b_sock, a_sock = sockets
        for sock in sockets:
            assert sock.call("set-availability", {"available": False})["ok"] is True
        task = server.add_tasks({"name": "by hand"})[0]
        assert server.task(task["id"])["status"] == "pending"
        # Both free again, behind the server's back: nothing dispatches but assign_task.
        execute(server.database, "UPDATE users SET available = %s WHERE id IN (%s, %s)",
                True, alice["id"], bob["id"])

        response = server.request("POST", "/assign_task", sue, expect=200,
                                  json={"task_id": task["id"]})
        body = response.json()
        assert set(body) >= {"message", "task"} and isinstance(body["message"], str)
        assert set(body["task"]) == TASK_FIELDS
        assert (body["task"]["id"], body["task"]["status"], body["task"]["assignee_id"]) \
            == (task["id"], "assigned", bob["id"])
        assert b_sock.task()["id"] == task["id"]
        assert not [e for e in a_sock.quiet(0.3) if e[0] == "task-assigned"]
        assert server.task(task["id"])["assignee_id"] == bob["id"]
    finally:
        for sock in sockets:
            sock.disconnect()


def test_assign_task_leaves_the_task_pending_when_nobody_is_free(server, connect):
    sue = supervisor_token(server)
    nobody = server.add_tasks({"name": "nobody online"})[0]
    response = server.request("POST", "/assign_task", sue, expect=200,
                              json={"task_id": nobody["id"]})
    body = response.json()
    assert isinstance(body["message"], str) and body["message"]
    assert (body["task"]["status"], body["task"]["assignee_id"]) == ("pending", None)

    # Online but busy is not free either.
    alice = server.reviewer("alice")
    sock = connect(alice["token"])
    assert sock.task()["id"] == nobody["id"]
    waiting = server.add_tasks({"name": "waiting"})[0]
    body = server.request("POST", "/assign_task", sue, expect=200,
                          json={"task_id": waiting["id"]}).json()
    assert (body["task"]["status"], body["task"]["assignee_id"]) == ("pending", None)
    assert server.task(waiting["id"])["status"] == "pending"


def test_assign_task_refusals(server, connect):
    sue = supervisor_token(server)
    alice = server.reviewer("alice")
    sock = connect(alice["token"])
    sock.next("idle")
    held = server.add_tasks({"name": "held"})[0]
    assert sock.task()["id"] == held["id"]

    def assign(body, token=sue):
        return server.request("POST", "/assign_task", token, json=body)

    assert_error(assign({"task_id": held["id"]}), 409)
    sock.complete(held["id"])
    sock.next("idle")
    assert_error(assign({"task_id": held["id"]}), 409)
    assert_error(assign({"task_id": 999999}), 404)
    assert_error(assign({}), 400)
    assert_error(assign({"task_id": "1"}), 400)
    assert_error(assign({"task_id": 0}), 422)
    assert_error(assign({"task_id": held["id"], "user_id": alice["id"]}), 400)
    pending = server.add_tasks({"name": "p"})[0]
    assert sock.task()["id"] == pending["id"]
    assert_error(assign({"task_id": pending["id"]}, alice["token"]), 403)
    assert server.task(held["id"])["status"] == "completed"


# --- POST /tasks/<id>/release -------------------------------------------------------

def test_release_revokes_the_task_from_its_holder(server, connect):
    alice = server.reviewer("alice")
    tab1, tab2 = connect(alice["token"]), connect(alice["token"])
    task = server.add_tasks({"name": "t", "priority": 4})[0]
    assert tab1.task()["id"] == task["id"]
    sue = supervisor_token(server)

    response = server.request("POST", f"/tasks/{task['id']}/release", sue, expect=200)
    released = response.json()
    assert set(released) == TASK_FIELDS
    assert (released["id"], released["status"], released["assignee_id"], released["priority"]) \
        == (task["id"], "pending", None, 4)
    assert released["created_at"] == task["created_at"]  # keeps its place in the queue
    for tab in (tab1, tab2):
        assert tab.next("task-revoked") == {"task_id": task["id"], "reason": "released"}


def test_release_refusals(server, connect):
    alice = server.reviewer("alice")
    sue = supervisor_token(server)
    pending = server.add_tasks({"name": "nobody online"})[0]
    assert_error(server.request("POST", f"/tasks/{pending['id']}/release", sue), 409)
    assert_error(server.request("POST", "/tasks/999999/release", sue), 404)
    sock = connect(alice["token"])
    assert sock.task()["id"] == pending["id"]
    assert_error(server.request("POST", f"/tasks/{pending['id']}/release", alice["token"]), 403)
    assert not [e for e in sock.quiet(0.3) if e[0] == "task-revoked"]
    assert server.task(pending["id"])["assignee_id"] == alice["id"]


# --- GET /healthz ------------------------------------------------------------------

def test_healthz_needs_no_token(server):
    response = server.request("GET", "/healthz")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["status"] == "ok"
