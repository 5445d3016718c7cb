"""Second reviews and gold tasks over REST and sockets, on a real server:
audit_rate on queues, the audit task (created at completion, never offered to
the original's reviewer, blind), agreement and disputes, POST
/tasks/<id>/resolve, gold tasks' hidden answer, task.finalized exactly once
(a real webhook receiver), GET /stats/reviewers."""
import json
from collections import Counter

from api_support import assert_error
from live import Reviewer, wait_until
from receiver import Receiver

FAST = {"QC_WEBHOOK_POLL_SECONDS": "0.1", "QC_WEBHOOK_RETRY_SECONDS": "0.2",
        "QC_WEBHOOK_TIMEOUT": "1"}
HIDDEN = {"expected_outcome", "audit", "final_outcome", "final_note", "finalized_at"}


def _subscribe(server, url):
    server.request("POST", "/webhooks", server.admin_token, expect=201, json={
        "url": url, "events": ["task.completed", "task.finalized", "task.cancelled"],
        "secret": "a-secret-of-sixteen-chars"})


def _audit_everything(server, queue="default"):
    server.request("PATCH", f"/queues/{queue}", server.admin_token, json={"audit_rate": 1},
                   expect=200)


def _finalized(receiver) -> Counter:
    return Counter(e["task"]["id"] for e in receiver.events() if e["type"] == "task.finalized")


def _listing(server, **query):
    return server.request("GET", "/tasks", server.admin_token, params=query,
                          expect=200).json()["tasks"]


def _keys(value):
    if isinstance(value, dict):
        for key, inner in value.items():
            yield key
            yield from _keys(inner)
    elif isinstance(value, (list, tuple)):
        for inner in value:
            yield from _keys(inner)


def _reviewer_saw_nothing_hidden(*reviewers):
    """Nothing a reviewer's sockets received (pushes and acks) names a
    supervisor-only field, nor the word expected_outcome anywhere."""
    for reviewer in reviewers:
        assert reviewer.log
        assert not HIDDEN & set(_keys(reviewer.log))
        assert "expected_outcome" not in json.dumps(reviewer.log)


def test_audit_rate_on_queues(server):
    made = server.request("POST", "/queues", server.admin_token, expect=201,
                          json={"name": "en", "audit_rate": 0.25}).json()
    assert made["audit_rate"] == 0.25
    changed = server.request("PATCH", "/queues/en", server.admin_token, expect=200,
                             json={"audit_rate": 1}).json()
    assert changed["audit_rate"] == 1
    listed = server.request("GET", "/queues", server.admin_token, expect=200).json()["queues"]
    assert {q["name"]: q["audit_rate"] for q in listed} == {"default": 0, "en": 1}
    for rate in (1.5, -0.1):
        for method, path, body in (("POST", "/queues", {"name": "fr", "audit_rate": rate}),
                                   ("PATCH", "/queues/en", {"audit_rate": rate})):
            assert_error(server.request(method, path, server.admin_token, json=body), 422,
                         "out_of_range")
    assert_error(server.request("PATCH", "/queues/en", server.admin_token,
                                json={"audit_rate": "high"}), 400)


def test_a_dispute_is_blind_never_self_audited_and_resolved_once(start_server):
    server = start_server(**FAST)
    _audit_everything(server)
    with Receiver(200) as receiver:
        _subscribe(server, receiver.url)
        alice, bob = server.reviewer("alice"), server.reviewer("bob")
        a = Reviewer(server, alice["token"]).connect()
        a.next("idle")
        [original] = server.add_tasks({"name": "item 1", "payload": {"sku": "A-1"},
                                       "priority": 3})
        assert a.task()["id"] == original["id"]
        assert a.complete(original["id"], "pass", note="looks fine")["ok"]
        assert a.next("idle")["reason"] == "queue-empty"  # the audit is not for alice

        [audit] = _listing(server, status="pending")
        assert (audit["kind"], audit["review_of"], audit["name"], audit["payload"],
                audit["priority"], audit["outcome"]) == \
            ("audit", original["id"], "item 1", {"sku": "A-1"}, 3, None)
        assert server.task(original["id"])["finalized_at"] is None
        # Not to alice, named or not: she is free and online, and it stays pending.
        assert_error(server.request("POST", "/assign_task", server.admin_token,
                                    json={"task_id": audit["id"], "reviewer_id": alice["id"]}),
                     409, "own_work")
        left = server.request("POST", "/assign_task", server.admin_token, expect=200,
                              json={"task_id": audit["id"]}).json()["task"]
        assert left["assignee_id"] is None

        b = Reviewer(server, bob["token"]).connect()
        got = b.task()
        assert (got["id"], got["kind"], got["review_of"], got["outcome"], got["note"]) == \
            (audit["id"], "audit", original["id"], None, None)
        # Bob may not read the original (not his), and his audit hides nothing of it.
        assert_error(server.request("GET", f"/tasks/{original['id']}", bob["token"]), 403)
        mine = server.request("GET", f"/tasks/{audit['id']}", bob["token"], expect=200).json()
        assert "expected_outcome" not in mine and "audit" not in mine
        # An audit needs an outcome.
        refused = server.request("POST", "/complete_task", bob["token"],
                                 json={"task_id": audit["id"]})
        assert_error(refused, 422, "outcome_required")
        answer = server.request("POST", "/complete_task", bob["token"], expect=200,
                                json={"task_id": audit["id"], "outcome": "fail"}).json()
        assert answer["task"]["outcome"] == "fail" and "audit" not in answer["task"]

        settled = server.task(original["id"])
        assert (settled["audit"], settled["outcome"], settled["finalized_at"]) == \
            ("disputed", "pass", None)
        assert [t["id"] for t in _listing(server, audit="disputed")] == [original["id"]]
        assert [t["id"] for t in _listing(server, audit="open")] == [original["id"]]
        assert _listing(server, audit="agreed") == []
        assert_error(server.request("GET", "/tasks", server.admin_token,
                                    params={"audit": "maybe"}), 422, "bad_audit")

        assert_error(server.request("POST", f"/tasks/{audit['id']}/resolve",
                                    server.admin_token, json={"outcome": "fail"}),
                     409, "not_disputed")
        assert_error(server.request("POST", f"/tasks/{original['id']}/resolve",
                                    alice["token"], json={"outcome": "fail"}), 403)
        assert_error(server.request("POST", f"/tasks/{original['id']}/resolve",
                                    server.admin_token, json={"outcome": "maybe"}), 422)
        assert_error(server.request("POST", "/tasks/99999/resolve", server.admin_token,
                                    json={"outcome": "fail"}), 404, "task_not_found")
        resolved = server.request("POST", f"/tasks/{original['id']}/resolve",
                                  server.admin_token, expect=200,
                                  json={"outcome": "fail", "note": "scratch on the lid"}).json()
        assert (resolved["audit"], resolved["final_outcome"], resolved["final_note"]) == \
            ("disputed", "fail", "scratch on the lid")
        assert resolved["finalized_at"] is not None
        assert_error(server.request("POST", f"/tasks/{original['id']}/resolve",
                                    server.admin_token, json={"outcome": "pass"}),
                     409, "already_resolved")
        assert _listing(server, audit="open") == []

        receiver.wait_for(lambda r: len(r) >= 3, what="completed x2, finalized")
        b.quiet(1)
        types = Counter((e["type"], e["task"]["id"]) for e in receiver.events())
        assert types == {("task.completed", original["id"]): 1,
                         ("task.completed", audit["id"]): 1,
                         ("task.finalized", original["id"]): 1}
        [final] = [e for e in receiver.events() if e["type"] == "task.finalized"]
        assert final["task"]["final_outcome"] == "fail" and final["task"]["audit"] == "disputed"
        _reviewer_saw_nothing_hidden(a, b)
        a.disconnect()
        b.disconnect()


def test_agreement_finalises_with_the_original_verdict_and_a_gold_task_is_final_at_once(
        start_server):
    server = start_server(**FAST)
    _audit_everything(server)
    with Receiver(200) as receiver:
        _subscribe(server, receiver.url)
        alice, bob = server.reviewer("alice"), server.reviewer("bob")
        a = Reviewer(server, alice["token"]).connect()
        a.next("idle")
        [gold] = server.add_tasks({"name": "gold", "expected_outcome": "fail"})
        assert gold["expected_outcome"] == "fail"  # the supervisor's answer has it
        got = a.task()
        assert got["id"] == gold["id"] and "expected_outcome" not in got
        held = server.request("GET", "/me/task", alice["token"], expect=200).json()["task"]
        assert held["id"] == gold["id"] and "expected_outcome" not in held
        answer = server.request("POST", "/complete_task", alice["token"], expect=200,
                                json={"task_id": gold["id"], "outcome": "pass"}).json()
        assert "expected_outcome" not in json.dumps(answer)
        # Gold is never audited: final at once, with the reviewer's verdict.
        done = server.task(gold["id"])
        assert (done["final_outcome"], done["audit"]) == ("pass", None)
        assert _listing(server, status="pending") == []

        [item] = server.add_tasks({"name": "item"})
        assert a.task()["id"] == item["id"]
        assert a.complete(item["id"], "fail", note="dent")["ok"]
        b = Reviewer(server, bob["token"]).connect()
        audit = b.task()
        assert audit["review_of"] == item["id"]
        assert b.complete(audit["id"], "fail")["ok"]
        agreed = server.task(item["id"])
        assert (agreed["audit"], agreed["final_outcome"], agreed["final_note"]) == \
            ("agreed", "fail", "dent")
        assert_error(server.request("POST", f"/tasks/{item['id']}/resolve", server.admin_token,
                                    json={"outcome": "pass"}), 409, "not_disputed")
        receiver.wait_for(lambda r: len(r) >= 5, what="3 completed, 2 finalized")
        a.quiet(1)
        assert _finalized(receiver) == {gold["id"]: 1, item["id"]: 1}
        [event] = [e for e in receiver.events()
                   if e["type"] == "task.finalized" and e["task"]["id"] == item["id"]]
        assert event["task"]["final_outcome"] == "fail"

        figures = {r["username"]: r for r in server.request(
            "GET", "/stats/reviewers", server.admin_token, expect=200).json()["reviewers"]}
        assert {k: figures["alice"][k] for k in (
            "completed", "audits_done", "agreed", "disputed", "disputes_open",
            "agreement_rate", "gold_done", "gold_correct", "gold_accuracy")} == {
            "completed": 2, "audits_done": 1, "agreed": 1, "disputed": 0, "disputes_open": 0,
            "agreement_rate": 1.0, "gold_done": 1, "gold_correct": 0, "gold_accuracy": 0.0}
        # (agreed 1 + gold correct 0 + prior 2) / (1 + 1 + 2) = 0.75: 1 - 0.75 above the floor.
        assert figures["alice"]["audit_probability"] == 1.0  # the floor is 1 here
        assert figures["bob"]["audits_done"] == 0 and figures["bob"]["completed"] == 1
        assert len(figures["alice"]["trend"]) == 7
        today = figures["alice"]["trend"][-1]
        assert (today["audits"], today["agreed"], today["gold_done"], today["gold_correct"]) == \
            (1, 1, 1, 0)
        assert_error(server.request("GET", "/stats/reviewers", alice["token"]), 403)
        _reviewer_saw_nothing_hidden(a, b)
        a.disconnect()
        b.disconnect()


def test_gold_answers_are_set_and_cleared_by_supervisors_only(server):
    [task] = server.add_tasks({"name": "t"})
    assert task["expected_outcome"] is None
    changed = server.request("PATCH", f"/tasks/{task['id']}", server.admin_token, expect=200,
                             json={"expected_outcome": "pass"}).json()
    assert changed["expected_outcome"] == "pass"
    assert server.task(task["id"])["expected_outcome"] == "pass"
    cleared = server.request("PATCH", f"/tasks/{task['id']}", server.admin_token, expect=200,
                             json={"expected_outcome": None}).json()
    assert cleared["expected_outcome"] is None
    assert_error(server.request("POST", "/tasks", server.admin_token,
                                json={"name": "x", "expected_outcome": "maybe"}), 422,
                 "bad_outcome")
    imported = server.request("POST", "/tasks/import", server.admin_token, expect=201,
                              data="name,expected_outcome\ng1,fail\ng2,\n".encode(),
                              headers={"Content-Type": "text/csv"}).json()
    golds = [server.task(i)["expected_outcome"] for i in imported["task_ids"]]
    assert golds == ["fail", None]
    alice = server.reviewer("alice")
    assert_error(server.request("PATCH", f"/tasks/{task['id']}", alice["token"],
                                json={"expected_outcome": "pass"}), 403)


def test_a_cancelled_audit_leaves_the_original_verdict_final(start_server):
    server = start_server(**FAST)
    _audit_everything(server)
    with Receiver(200) as receiver:
        _subscribe(server, receiver.url)
        alice = server.reviewer("alice")
        a = Reviewer(server, alice["token"]).connect()
        a.next("idle")
        [item] = server.add_tasks({"name": "item"})
        assert a.task()["id"] == item["id"]
        assert a.complete(item["id"], "pass", note="ok")["ok"]
        [audit] = _listing(server, status="pending")
        server.request("PATCH", f"/tasks/{audit['id']}", server.admin_token, expect=200,
                       json={"status": "cancelled"})
        final = server.task(item["id"])
        assert (final["audit"], final["final_outcome"], final["final_note"]) == \
            (None, "pass", "ok")
        receiver.wait_for(lambda r: len(r) >= 3, what="completed, cancelled, finalized")
        a.quiet(1)
        assert _finalized(receiver) == {item["id"]: 1}
        a.disconnect()


def test_an_auditor_who_once_held_the_original_cannot_read_its_verdict(start_server):
    """Bob held the item, it was released and alice did it: bob may audit it,
    so neither GET /tasks/<id> nor its history gives him alice's verdict, and
    alice's history of her own task says nothing of the audit."""
    server = start_server(**FAST)
    _audit_everything(server)
    alice, bob = server.reviewer("alice"), server.reviewer("bob")
    b = Reviewer(server, bob["token"]).connect()
    b.next("idle")
    [item] = server.add_tasks({"name": "item"})
    assert b.task()["id"] == item["id"]
    server.request("PUT", "/availability", server.admin_token, expect=200,
                   json={"availability": 0, "user_id": bob["id"]})
    server.request("POST", f"/tasks/{item['id']}/release", server.admin_token, expect=200)
    a = Reviewer(server, alice["token"]).connect()
    assert a.task()["id"] == item["id"]
    assert a.complete(item["id"], "fail", note="secret note")["ok"]
    server.request("PUT", "/availability", server.admin_token, expect=200,
                   json={"availability": 1, "user_id": bob["id"]})
    audit = b.task()
    assert (audit["kind"], audit["review_of"]) == ("audit", item["id"])

    seen = server.request("GET", f"/tasks/{item['id']}", bob["token"], expect=200).json()
    assert (seen["outcome"], seen["note"], seen["assignee_id"]) == (None, None, None)
    history = server.request("GET", f"/tasks/{item['id']}/history", bob["token"],
                             expect=200).json()["events"]
    assert "secret note" not in json.dumps(history) and '"fail"' not in json.dumps(history)
    assert [e["detail"] for e in history if e["kind"] == "completed"] == [None]
    # Alice's own view keeps her verdict.
    own = server.request("GET", f"/tasks/{item['id']}", alice["token"], expect=200).json()
    assert (own["outcome"], own["note"]) == ("fail", "secret note")

    assert b.complete(audit["id"], "pass")["ok"]
    assert server.task(item["id"])["audit"] == "disputed"
    kinds = [e["kind"] for e in server.request(
        "GET", f"/tasks/{item['id']}/history", alice["token"], expect=200).json()["events"]]
    assert "disputed" not in kinds and "audit_requested" not in kinds
    admin_kinds = [e["kind"] for e in server.request(
        "GET", f"/tasks/{item['id']}/history", server.admin_token, expect=200).json()["events"]]
    assert "audit_requested" in admin_kinds and "disputed" in admin_kinds
    a.disconnect()
    b.disconnect()


def test_an_audit_only_its_original_reviewer_could_take_says_so_in_waiting(start_server):
    """Alice is the only reviewer, online and free: her work's audit waits,
    and `waiting` must not say it goes out at her next claim."""
    server = start_server(**FAST)
    _audit_everything(server)
    alice = server.reviewer("alice")
    a = Reviewer(server, alice["token"]).connect()
    a.next("idle")
    [item] = server.add_tasks({"name": "item"})
    assert a.task()["id"] == item["id"]
    assert a.complete(item["id"], "pass")["ok"]
    assert a.next("idle")["reason"] == "queue-empty"
    [audit] = _listing(server, status="pending")
    waiting = server.request("GET", f"/tasks/{audit['id']}", server.admin_token,
                             expect=200).json()["waiting"]
    assert (waiting["reason"], waiting["online_qualified"]) == \
        ("no_qualified_reviewer_online", 0)
    assert "original's reviewer" in waiting["message"]
    a.disconnect()


def test_the_holder_of_a_gold_task_cannot_tell_it_is_gold_from_its_history(start_server):
    """A supervisor makes alice's held task gold (and renames it): making it
    gold sends her nothing (a task-assigned again with nothing new would say
    so), and neither her pushes nor the task's history name the answer or
    the field."""
    server = start_server(**FAST)
    alice = server.reviewer("alice")
    a = Reviewer(server, alice["token"]).connect()
    a.next("idle")
    [item] = server.add_tasks({"name": "item"})
    assert a.task()["id"] == item["id"]
    server.request("PATCH", f"/tasks/{item['id']}", server.admin_token, expect=200,
                   json={"expected_outcome": "fail"})
    assert a.quiet(1) == []
    server.request("PATCH", f"/tasks/{item['id']}", server.admin_token, expect=200,
                   json={"expected_outcome": "pass", "name": "item 2"})
    assert a.task()["name"] == "item 2"
    history = server.request("GET", f"/tasks/{item['id']}/history", alice["token"],
                             expect=200).json()["events"]
    assert "expected_outcome" not in json.dumps(history)
    assert [e["detail"] for e in history if e["kind"] == "updated"] == [{"fields": ["name"]}]
    admin = server.request("GET", f"/tasks/{item['id']}/history", server.admin_token,
                           expect=200).json()["events"]
    assert [e["detail"]["fields"] for e in admin if e["kind"] == "updated"] == \
        [["expected_outcome"], ["expected_outcome", "name"]]
    _reviewer_saw_nothing_hidden(a)
    a.disconnect()


def test_an_audit_cannot_be_made_a_gold_task(server):
    _audit_everything(server)
    alice = server.reviewer("alice")
    a = Reviewer(server, alice["token"]).connect()
    a.next("idle")
    [item] = server.add_tasks({"name": "item"})
    assert a.task()["id"] == item["id"]
    assert a.complete(item["id"], "pass")["ok"]
    [audit] = _listing(server, status="pending")
    refused = server.request("PATCH", f"/tasks/{audit['id']}", server.admin_token,
                             json={"expected_outcome": "fail"})
    assert_error(refused, 422, "audit_not_gold")
    assert server.task(audit["id"])["expected_outcome"] is None
    assert server.task(item["id"])["audit"] is None  # the original still waits for its audit
    a.disconnect()


def test_an_audit_goes_to_a_free_reviewer_the_moment_it_is_created(start_server):
    """The completion that samples an audit hands it to another free qualified
    reviewer in the same breath, not at the next periodic sweep (60 s here)."""
    server = start_server(QC_SWEEP_SECONDS="60")
    _audit_everything(server)
    alice, bob = server.reviewer("alice"), server.reviewer("bob")
    a = Reviewer(server, alice["token"]).connect()
    a.next("idle")
    b = Reviewer(server, bob["token"]).connect()
    b.next("idle")
    [item] = server.add_tasks({"name": "item"})
    assert a.task()["id"] == item["id"]  # alice has waited longest
    assert a.complete(item["id"], "pass")["ok"]
    audit = b.task(timeout=10)
    assert (audit["kind"], audit["review_of"]) == ("audit", item["id"])
    a.disconnect()
    b.disconnect()
