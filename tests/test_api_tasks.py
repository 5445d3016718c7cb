"""POST /tasks (one or a list, idempotent on external_id, all or nothing; long
lists written in batches) and GET /tasks/<id> for supervisors and reviewers."""
import threading
from datetime import datetime, timezone

import requests

from api_support import SUPERVISED_TASK_FIELDS, TASK_FIELDS, assert_error, count
from live import wait_until


def _post(server, body, token=None):
    return server.request("POST", "/tasks", token or server.admin_token, json=body)


def _iso(text: str) -> datetime:
    assert text.endswith("Z"), text
    return datetime.fromisoformat(text[:-1] + "+00:00")


def test_one_task_is_created_as_a_full_task_object(server):
    before = datetime.now(timezone.utc).replace(microsecond=0)
    response = _post(server, {"name": "lid #7", "payload": {"sku": "A-1", "n": [1, 2]},
                              "priority": 3, "deadline": "2030-05-01T12:00:00+02:00",
                              "external_id": "erp-7"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"tasks"} and len(body["tasks"]) == 1
    task = body["tasks"][0]
    assert set(task) == SUPERVISED_TASK_FIELDS
    assert isinstance(task["id"], int)
    assert {k: task[k] for k in ("external_id", "name", "payload", "priority", "status",
                                 "assignee_id", "assigned_at", "completed_at", "outcome",
                                 "note")} == {
        "external_id": "erp-7", "name": "lid #7", "payload": {"sku": "A-1", "n": [1, 2]},
        "priority": 3, "status": "pending", "assignee_id": None, "assigned_at": None,
        "completed_at": None, "outcome": None, "note": None}
    assert _iso(task["deadline"]) == datetime(2030, 5, 1, 10, 0, tzinfo=timezone.utc)
    assert _iso(task["created_at"]) >= before
    assert server.task(task["id"]) == task


def test_defaults_for_a_task_with_a_name_only(server):
    task = server.add_tasks({"name": "bare"})[0]
    assert (task["payload"], task["priority"], task["deadline"], task["external_id"]) \
        == ({}, 0, None, None)


def test_a_list_is_created_in_input_order(server):
    response = _post(server, [{"name": "a"}, {"name": "b", "priority": -2},
                              {"name": "c", "external_id": "c-1"}])
    assert response.status_code == 201, response.text
    tasks = response.json()["tasks"]
    assert [t["name"] for t in tasks] == ["a", "b", "c"]
    assert len({t["id"] for t in tasks}) == 3
    assert count(server.database, "tasks") == 3
    for task in tasks:
        assert server.task(task["id"]) == task


def test_the_same_external_id_gives_the_existing_task_not_a_copy(server):
    first = server.add_tasks({"name": "original", "priority": 1, "external_id": "erp-1"})[0]
    again = _post(server, {"name": "renamed", "priority": 9, "external_id": "erp-1"})
    assert again.status_code == 201, again.text
    assert again.json()["tasks"] == [first]
    assert count(server.database, "tasks") == 1

    # Within one list, and mixed with new ones: each external_id once.
    mixed = server.add_tasks({"name": "x", "external_id": "erp-2"},
                             {"name": "x again", "external_id": "erp-2"},
                             {"name": "old", "external_id": "erp-1"},
                             {"name": "no id"}, {"name": "no id"})
    assert [t["name"] for t in mixed] == ["x", "x", "original", "no id", "no id"]
    assert mixed[0]["id"] == mixed[1]["id"]
    assert mixed[2]["id"] == first["id"]
    assert mixed[3]["id"] != mixed[4]["id"]  # without an external_id, every row is new
    assert count(server.database, "tasks") == 4
    assert server.database.query(
        "SELECT COUNT(*) FROM tasks WHERE external_id = %s", "erp-2")[0][0] == 1


def test_external_ids_differing_in_case_accents_or_blanks_are_different_tasks(server):
    ids = ["Case-1", "case-1", "cafe", "caf\u00e9", "pad", "pad "]
    for number, external_id in enumerate(ids):
        response = _post(server, {"name": f"#{number}", "external_id": external_id})
        assert response.status_code == 201, (external_id, response.text)
    # And each is found again by its exact spelling.
    again = server.add_tasks(*[{"name": "again", "external_id": e} for e in ids])
    assert [t["external_id"] for t in again] == ids
    assert [t["name"] for t in again] == [f"#{number}" for number in range(len(ids))]
    assert count(server.database, "tasks") == len(ids)


def test_a_long_list_is_written_in_batches_while_the_server_keeps_answering(server):
    """Ten batches of 1,000. Once the first is in the database, a health check
    and a one-task POST from someone else are answered before the long list,
    and that task lands between its batches, not after them."""
    total = 10_000
    body = [{"name": f"bulk {n}", "payload": {"n": n}} for n in range(total)]
    headers = {"Authorization": f"Bearer {server.admin_token}"}
    answered, big = [], {}

    def post_the_long_list():
        big["response"] = requests.post(server.url + "/tasks", json=body, headers=headers,
                                        timeout=600)
        answered.append("long list")
    poster = threading.Thread(target=post_the_long_list)
    poster.start()
    try:
        seen = wait_until(lambda: count(server.database, "tasks"), timeout=300,
                          what="the first batch of the long list")
        assert seen < total, "the whole list appeared at once: one transaction, no batches"
        health = requests.get(server.url + "/healthz", timeout=300)
        probe = requests.post(server.url + "/tasks", json={"name": "probe"}, headers=headers,
                              timeout=300)
        answered.append("probes")
    finally:
        poster.join(600)
    assert answered == ["probes", "long list"]
    assert health.status_code == 200, health.text
    assert probe.status_code == 201, probe.text
    assert big["response"].status_code == 201, big["response"].text
    tasks = big["response"].json()["tasks"]
    assert [t["name"] for t in tasks] == [f"bulk {n}" for n in range(total)]
    assert tasks[0]["id"] < probe.json()["tasks"][0]["id"] < tasks[-1]["id"]
    assert count(server.database, "tasks") == total + 1


def test_a_long_list_keeps_input_order_and_external_ids_across_batches(server):
    old = server.add_tasks({"name": "from before", "external_id": "old"})[0]
    items = [{"name": f"t{n}", "priority": n % 3, "external_id": f"e{n}"} if n % 7 else
             {"name": f"t{n}"} for n in range(2600)]
    repeats = {10: 3, 20: 3,  # in the same batch
               1000: 999,  # the first of the second batch, the last of the first
               1500: 5, 2500: 1401, 2501: 1401}  # across batches
    for at, first in repeats.items():
        items[at] = {"name": f"repeat of t{first}", "external_id": f"e{first}"}
    items[2000] = {"name": "repeat of the older one", "external_id": "old"}

    response = _post(server, items)
    assert response.status_code == 201, response.text
    tasks = response.json()["tasks"]
    assert len(tasks) == len(items)
    assert all(set(t) == SUPERVISED_TASK_FIELDS for t in tasks)
    # Each item's own task, or the one created earlier for its external_id.
    original = {n: repeats.get(n, n) for n in range(len(items))}
    for n, task in enumerate(tasks):
        if n == 2000:
            assert task["id"] == old["id"] and task["name"] == "from before"
            continue
        assert task["id"] == tasks[original[n]]["id"], n
        assert (task["name"], task["external_id"]) == \
            (f"t{original[n]}", items[original[n]].get("external_id")), n
    new = {t["id"] for t in tasks} - {old["id"]}
    assert len(new) == len(items) - len(repeats) - 1
    assert count(server.database, "tasks") == len(new) + 1
    assert server.database.query("SELECT COUNT(*) FROM task_events WHERE kind = %s",
                                 "created")[0][0] == len(new) + 1
    for n in (0, 999, 1000, 1001, 2599):
        assert server.task(tasks[n]["id"]) == tasks[n]

    # The same list again gives the same tasks for every external_id, and new
    # ones only for the items without one.
    again = _post(server, items)
    assert again.status_code == 201, again.text
    again = again.json()["tasks"]
    keyed = [n for n, item in enumerate(items) if "external_id" in item]
    assert [again[n]["id"] for n in keyed] == [tasks[n]["id"] for n in keyed]
    unkeyed = [n for n, item in enumerate(items) if "external_id" not in item]
    assert not {again[n]["id"] for n in unkeyed} & {t["id"] for t in tasks}
    assert count(server.database, "tasks") == len(new) + 1 + len(unkeyed)


def test_bad_tasks_are_refused_with_400_or_422_and_nothing_is_created(server):
    good = {"name": "fine"}
    cases = [
        # (body, status): type errors are 400, well-typed nonsense is 422
        ({}, 400),
        ({"name": None}, 400),
        ({"name": 5}, 400),
        ({"name": ""}, 422),
        ({"name": "   "}, 422),
        ({"name": "n" * 256}, 422),
        ({"name": "t", "payload": [1, 2]}, 400),
        ({"name": "t", "payload": "x"}, 400),
        ({"name": "t", "payload": {"blob": "x" * 70_000}}, 422),
        ({"name": "t", "priority": "1"}, 400),
        ({"name": "t", "priority": 1.5}, 400),
        ({"name": "t", "priority": True}, 400),
        ({"name": "t", "priority": 10**9}, 422),
        ({"name": "t", "priority": -10**9}, 422),
        ({"name": "t", "deadline": 1700000000}, 400),
        ({"name": "t", "deadline": "tomorrow"}, 422),
        ({"name": "t", "deadline": "2030-13-01T00:00:00Z"}, 422),
        ({"name": "t", "deadline": "9999-12-31T23:59:59-05:00"}, 422),
        ({"name": "t", "external_id": 7}, 400),
        ({"name": "t", "external_id": ""}, 422),
        ({"name": "t", "external_id": "e" * 192}, 422),
        ({"name": "t", "colour": "red"}, 400),
        ({"name": "t", "status": "completed"}, 400),
        ([], 400),
        ("a task", 400),
        (42, 400),
        ([good, "not an object"], 400),
        ([good, {"name": "t", "priority": "high"}], 400),
        ([good, {"name": "t", "priority": 10**9}], 422),
        ([good, {"name": ""}, {"name": 1}], 400),  # any type error makes it 400
        ([good, {"name": "t", "external_id": "dup"}, {"name": "t", "deadline": "soon"}], 422),
    ]
    for body, status in cases:
        response = _post(server, body)
        assert response.status_code == status, (body, response.text)
        assert_error(response, status)
    assert count(server.database, "tasks") == 0
    assert count(server.database, "task_events") == 0


def test_a_refused_list_names_every_bad_row(server):
    response = _post(server, [{"name": "ok"}, {"name": 1}, {"name": "ok"}, {"priority": 1}])
    error = assert_error(response, 400)
    assert [row["index"] for row in error["rows"]] == [1, 3]
    for row in error["rows"]:
        assert row["code"] and row["message"]
    assert count(server.database, "tasks") == 0


def test_only_supervisors_create_tasks(server):
    alice = server.reviewer("alice")
    assert_error(_post(server, {"name": "t"}, alice["token"]), 403)
    server.create_user("sue", role="supervisor")
    sue = server.login("sue")["access_token"]
    assert _post(server, {"name": "t"}, sue).status_code == 201
    assert count(server.database, "tasks") == 1


def test_get_task_for_supervisors_and_for_the_reviewer_who_holds_it(server, connect):
    alice = server.reviewer("alice")
    bob = server.reviewer("bob")
    server.create_user("sue", role="supervisor")
    sue = server.login("sue")["access_token"]
    sock = connect(alice["token"])
    sock.next("idle")
    mine, queued = server.add_tasks({"name": "mine", "priority": 1}, {"name": "queued"})
    assert sock.task()["id"] == mine["id"]

    as_sue = server.request("GET", f"/tasks/{mine['id']}", sue, expect=200).json()
    assert set(as_sue) == SUPERVISED_TASK_FIELDS
    assert (as_sue["status"], as_sue["assignee_id"]) == ("assigned", alice["id"])
    server.request("GET", f"/tasks/{queued['id']}", sue, expect=200)

    as_alice = server.request("GET", f"/tasks/{mine['id']}", alice["token"], expect=200).json()
    # The reviewer's view: the same task without what only supervisors see.
    assert set(as_alice) == TASK_FIELDS
    assert as_alice == {k: v for k, v in as_sue.items() if k in TASK_FIELDS}
    assert_error(server.request("GET", f"/tasks/{mine['id']}", bob["token"]), 403)
    assert_error(server.request("GET", f"/tasks/{queued['id']}", alice["token"]), 403)

    # Still hers to read once done; still not bob's.
    sock.complete(mine["id"])
    done = server.request("GET", f"/tasks/{mine['id']}", alice["token"], expect=200).json()
    assert done["status"] == "completed"
    assert_error(server.request("GET", f"/tasks/{mine['id']}", bob["token"]), 403)

    for token in (sue, alice["token"], bob["token"]):
        assert_error(server.request("GET", "/tasks/999999", token), 404)
    assert_error(server.request("GET", f"/tasks/{mine['id']}"), 401)
