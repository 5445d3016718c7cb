"""Queues and skills over REST, on a real server: /queues, skills on users, the
task's queue (POST /tasks, the CSV import, PATCH, GET /tasks?queue=),
POST /assign_task to a named reviewer, `waiting`, and the board's queues."""
from api_support import assert_error

QUEUE_FIELDS = {"name", "description", "min_level", "relax_after_s", "pending", "assigned",
                "oldest_pending_age_s", "online_qualified", "form", "audit_rate"}


def _queue(server, token=None, expect=201, **fields):
    return server.request("POST", "/queues", token or server.admin_token, json=fields,
                          expect=expect)


def _skilled(server, name, skills):
    user = server.request("POST", "/users", server.admin_token, expect=201, json={
        "username": name, "password": "password-long-1", "role": "reviewer",
        "skills": skills}).json()
    return {**user, "token": server.login(name, "password-long-1")["access_token"]}


def test_supervisors_create_list_and_edit_queues(server):
    server.create_user("sue", role="supervisor")
    sue = server.login("sue")["access_token"]
    made = _queue(server, sue, name="lang:de-DE", description="German listings",
                  min_level=3, relax_after_s=120).json()
    assert made == {"name": "lang:de-DE", "description": "German listings", "min_level": 3,
                    "relax_after_s": 120, "audit_rate": 0, "pending": 0, "assigned": 0,
                    "oldest_pending_age_s": None, "online_qualified": 0, "form": None}
    listed = server.request("GET", "/queues", sue, expect=200).json()["queues"]
    assert [q["name"] for q in listed] == ["default", "lang:de-DE"]
    assert all(set(q) == QUEUE_FIELDS for q in listed)
    assert listed[0] == {**listed[0], "min_level": 1, "relax_after_s": None}
    changed = server.request("PATCH", "/queues/lang:de-DE", sue, expect=200,
                             json={"min_level": 2, "relax_after_s": None}).json()
    assert (changed["min_level"], changed["relax_after_s"], changed["description"]) == \
        (2, None, "German listings")


def test_queue_refusals(server):
    _queue(server, name="en")
    assert_error(_queue(server, name="en", expect=None), 409, "conflict")
    assert_error(_queue(server, name="has space", expect=None), 422, "invalid_queue_name")
    assert_error(_queue(server, name="x" * 65, expect=None), 422)
    assert_error(_queue(server, name="fr", min_level=11, expect=None), 422, "out_of_range")
    assert_error(_queue(server, name="fr", min_level=0, expect=None), 422, "out_of_range")
    assert_error(_queue(server, name="fr", relax_after_s=-1, expect=None), 422, "out_of_range")
    assert_error(_queue(server, name="fr", min_level="3", expect=None), 400, "wrong_type")
    assert_error(_queue(server, name="fr", colour="red", expect=None), 400, "unknown_field")
    patch = server.request("PATCH", "/queues/nowhere", server.admin_token,
                           json={"min_level": 2})
    assert_error(patch, 404, "queue_not_found")
    patch = server.request("PATCH", "/queues/en", server.admin_token, json={"min_level": None})
    assert_error(patch, 400, "wrong_type")
    patch = server.request("PATCH", "/queues/en", server.admin_token, json={"name": "x"})
    assert_error(patch, 400, "unknown_field")
    alice = server.reviewer("alice")
    assert_error(server.request("GET", "/queues", alice["token"]), 403)
    assert_error(_queue(server, alice["token"], name="mine", expect=None), 403)
    names = [q["name"] for q in server.request("GET", "/queues", server.admin_token,
                                               expect=200).json()["queues"]]
    assert names == ["default", "en"]


def test_skills_on_users_are_checked_and_shown_for_reviewers_only(server):
    _queue(server, name="en")
    alice = server.create_user("alice")
    assert alice["skills"] == {"default": 1}
    bob = _skilled(server, "bob", {"en": 7, "default": 2})
    assert bob["skills"] == {"default": 2, "en": 7}
    users = {u["username"]: u for u in server.request("GET", "/users", server.admin_token,
                                                      expect=200).json()["users"]}
    assert users["bob"]["skills"] == {"default": 2, "en": 7}
    assert "skills" not in users["admin"]

    def patch(user_id, body):
        return server.request("PATCH", f"/users/{user_id}", server.admin_token, json=body)
    assert patch(alice["id"], {"skills": {"en": 4}}).json()["skills"] == {"en": 4}
    for skills, status, code in (({"nowhere": 1}, 422, "unknown_queue"),
                                 ({"en": 0}, 422, "bad_level"), ({"en": 11}, 422, "bad_level"),
                                 ({"en": "5"}, 400, "wrong_type"),
                                 ({"en": True}, 400, "wrong_type"),
                                 ([1], 400, "wrong_type")):
        assert_error(patch(alice["id"], {"skills": skills}), status, code)
    admin_id = users["admin"]["id"]
    assert_error(patch(admin_id, {"skills": {"en": 1}}), 422, "not_a_reviewer")
    made = server.request("POST", "/users", server.admin_token, json={
        "username": "carol", "password": "password-long-1", "role": "reviewer",
        "skills": {"nowhere": 1}})
    assert_error(made, 422, "unknown_queue")
    assert "carol" not in {u["username"] for u in server.request(
        "GET", "/users", server.admin_token, expect=200).json()["users"]}
    assert patch(alice["id"], {"skills": {}}).json()["skills"] == {}


def test_tasks_carry_their_queue_and_an_unknown_queue_is_refused_with_its_rows(server):
    _queue(server, name="en")
    plain, english = server.add_tasks({"name": "plain"}, {"name": "english", "queue": "en"})
    assert (plain["queue"], english["queue"]) == ("default", "en")
    one = server.request("POST", "/tasks", server.admin_token,
                         json={"name": "x", "queue": "nowhere"})
    assert_error(one, 422, "unknown_queue")
    many = server.request("POST", "/tasks", server.admin_token, json=[
        {"name": "a", "queue": "en"}, {"name": "b", "queue": "nowhere"}, {"name": "c"},
        {"name": "d", "queue": "elsewhere"}])
    error = assert_error(many, 422, "unknown_queue")
    assert [(r["index"], r["code"]) for r in error["rows"]] == \
        [(1, "unknown_queue"), (3, "unknown_queue")]
    mixed = server.request("POST", "/tasks", server.admin_token, json=[
        {"name": "a", "queue": "nowhere"}, {"name": "b", "priority": "high"}])
    error = assert_error(mixed, 400, "invalid_tasks")
    assert [r["code"] for r in error["rows"]] == ["unknown_queue", "wrong_type"]
    listed = server.request("GET", "/tasks?queue=en", server.admin_token, expect=200).json()
    assert [t["name"] for t in listed["tasks"]] == ["english"]  # nothing of the refused lists
    by_priority = server.request("GET", "/tasks?queue=default&order_by=priority",
                                 server.admin_token, expect=200).json()["tasks"]
    assert [t["name"] for t in by_priority] == ["plain"]
    assert_error(server.request("GET", "/tasks?queue=a%20b", server.admin_token), 422,
                 "invalid_queue_name")


def test_the_csv_import_takes_a_queue_column_with_per_row_errors(server):
    _queue(server, name="en")
    csv = "name,queue\nfirst,en\nsecond,nowhere\nthird,\nfourth,en\n"
    refused = server.request("POST", "/tasks/import", server.admin_token, data=csv,
                             headers={"Content-Type": "text/csv"})
    error = assert_error(refused, 422, "invalid_tasks")
    assert [(r["line"], r["field"], r["code"]) for r in error["rows"]] == \
        [(3, "queue", "unknown_queue")]
    done = server.request("POST", "/tasks/import?skip_invalid=1", server.admin_token,
                          data=csv, headers={"Content-Type": "text/csv"}, expect=201).json()
    assert (done["created"], done["invalid_rows"]) == (3, 1)
    queues = {server.task(i)["name"]: server.task(i)["queue"] for i in done["task_ids"]}
    assert queues == {"first": "en", "third": "default", "fourth": "en"}


def test_a_pending_task_moves_queue_and_reaches_who_qualifies_there(server, connect):
    _queue(server, name="en")
    alice = _skilled(server, "alice", {"en": 1})
    sock = connect(alice["token"])
    sock.next("idle")
    [task] = server.add_tasks({"name": "t"})
    assert sock.quiet(0.5) == []
    moved = server.request("PATCH", f"/tasks/{task['id']}", server.admin_token,
                           json={"queue": "en"}, expect=200).json()
    assert moved["queue"] == "en"
    assert sock.task()["id"] == task["id"]
    again = server.request("PATCH", f"/tasks/{task['id']}", server.admin_token,
                           json={"queue": "default"})
    assert_error(again, 409, "task_not_pending")
    [other] = server.add_tasks({"name": "o"})
    nowhere = server.request("PATCH", f"/tasks/{other['id']}", server.admin_token,
                             json={"queue": "nowhere"})
    assert_error(nowhere, 422, "unknown_queue")


def test_assign_to_a_named_reviewer_and_why_a_task_waits(server, connect):
    _queue(server, name="expert", min_level=5)
    junior = _skilled(server, "junior", {"expert": 2})
    senior = _skilled(server, "senior", {"expert": 6})
    j = connect(junior["token"])
    j.next("idle")
    [task] = server.add_tasks({"name": "hard", "queue": "expert"})
    waiting = server.request("GET", f"/tasks/{task['id']}", server.admin_token,
                             expect=200).json()["waiting"]
    assert waiting["reason"] == "no_qualified_reviewer_online"
    assert (waiting["level_needed"], waiting["online_qualified"]) == (5, 0)

    def assign(reviewer_id=None):
        body = {"task_id": task["id"]}
        if reviewer_id is not None:
            body["reviewer_id"] = reviewer_id
        return server.request("POST", "/assign_task", server.admin_token, json=body)
    error = assert_error(assign(junior["id"]), 409, "not_qualified")
    assert "level 2" in error["message"] and "asks for 5" in error["message"]
    assert_error(assign(senior["id"]), 409, "reviewer_unavailable")  # not online
    stays = assign().json()
    assert stays["task"]["assignee_id"] is None and "stays pending" in stays["message"]
    assert_error(assign(999_999), 404, "user_not_found")
    server.request("PUT", "/availability", server.admin_token, expect=200,
                   json={"availability": 0, "user_id": senior["id"]})
    s = connect(senior["token"])
    s.next("idle")
    assert server.request("GET", f"/tasks/{task['id']}", server.admin_token,
                          expect=200).json()["waiting"]["reason"] == "qualified_paused"
    assert_error(assign(senior["id"]), 409, "reviewer_unavailable")
    server.request("PUT", "/availability", server.admin_token, expect=200,
                   json={"availability": 1, "user_id": senior["id"]})
    assert s.task()["id"] == task["id"]
    got = server.task(task["id"])
    assert (got["status"], got["assignee_id"]) == ("assigned", senior["id"])
    assert "waiting" not in server.request("GET", f"/tasks/{task['id']}", server.admin_token,
                                           expect=200).json()
    # A reviewer never sees `waiting`, even for its own pending task.
    done = s.complete(task["id"])
    assert done["ok"]
    seen = server.request("GET", f"/tasks/{task['id']}", senior["token"], expect=200).json()
    assert "waiting" not in seen
    [free_task] = server.add_tasks({"name": "easy"})  # default: nobody has it
    named = server.request("PATCH", f"/users/{junior['id']}", server.admin_token,
                           json={"skills": {"default": 1}}, expect=200)
    assert named.json()["skills"] == {"default": 1}
    assert j.task()["id"] == free_task["id"]  # dispatched after the skill change


def test_the_board_has_the_queues_and_each_reviewers_skills(server, connect):
    _queue(server, name="en", min_level=2)
    alice = _skilled(server, "alice", {"en": 3})
    connect(alice["token"]).next("idle")
    server.add_tasks({"name": "d"}, {"name": "e1", "queue": "en"}, {"name": "e2", "queue": "en"})
    board = server.request("GET", "/board", server.admin_token, expect=200).json()
    queues = {q["name"]: q for q in board["queues"]}
    assert set(queues) == {"default", "en"}
    assert all(set(q) == QUEUE_FIELDS for q in queues.values())
    assert (queues["en"]["pending"], queues["en"]["assigned"],
            queues["en"]["online_qualified"]) == (1, 1, 1)
    assert (queues["default"]["pending"], queues["default"]["online_qualified"]) == (1, 0)
    assert queues["default"]["oldest_pending_age_s"] >= 0
    [row] = [r for r in board["reviewers"] if r["id"] == alice["id"]]
    assert row["skills"] == {"en": 3}


def test_lowering_a_queues_min_level_hands_its_tasks_to_who_qualifies_now(server, connect):
    _queue(server, name="expert", min_level=5)
    junior = _skilled(server, "junior", {"expert": 2})
    sock = connect(junior["token"])
    sock.next("idle")
    [task] = server.add_tasks({"name": "hard", "queue": "expert"})
    assert sock.quiet(0.5) == []
    edited = server.request("PATCH", "/queues/expert", server.admin_token,
                            json={"min_level": 2}, expect=200).json()
    assert edited["min_level"] == 2 and edited["online_qualified"] == 1
    assert sock.task()["id"] == task["id"]


def test_a_huge_skills_map_of_unknown_queues_is_refused_in_a_few_words(server):
    skills = {f"q{i:06d}": 1 for i in range(50_000)}
    refused = server.request("POST", "/users", server.admin_token, json={
        "username": "many", "password": "password-long-1", "skills": skills})
    assert_error(refused, 422, "unknown_queue")
    message = refused.json()["error"]["message"]
    assert message.startswith("unknown queue(s) in 'skills': 'q000000', 'q000001'")
    assert message.endswith("and 49990 more") and len(message) < 500
