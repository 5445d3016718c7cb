"""Review forms over REST, on a real server (docs/api.md, "Review forms"): a
queue's form set, read and cleared through /queues and the board; bad forms
refused naming the problem; verdicts (reasons, checklist) over POST
/complete_task checked against the form as it is at completion, every
refusal leaving the task assigned and unchanged; what a valid one leaves in
the task, its history, GET /stats, the export and the webhook body."""
import csv
import io
import json

from api_support import assert_error
from receiver import Receiver

PASSWORD = "password-long-1"
FORM = {"display": [{"field": "photo", "as": "image"}, {"field": "sku", "as": "text"}],
        "checklist": [{"id": "label", "label": "Label readable"},
                      {"id": "seal", "label": "Seal intact"}],
        "fail_reasons": [{"code": "blur", "label": "Blurry photo"},
                         {"code": "dent", "label": "Dented box"},
                         {"code": "wrong-item", "label": "Not the item ordered"}],
        "note_required_on_fail": True}


def _queue(server, name, form=None, expect=201, **fields):
    body = {"name": name, **fields, **({} if form is None else {"form": form})}
    return server.request("POST", "/queues", server.admin_token, json=body, expect=expect)


def _patch(server, name, body, expect=200, token=None):
    return server.request("PATCH", f"/queues/{name}", token or server.admin_token, json=body,
                          expect=expect)


def _queues(server) -> dict:
    listed = server.request("GET", "/queues", server.admin_token, expect=200).json()["queues"]
    return {q["name"]: q for q in listed}


def _reviewer(server, name, skills):
    user = server.request("POST", "/users", server.admin_token, expect=201, json={
        "username": name, "password": PASSWORD, "role": "reviewer", "skills": skills}).json()
    return {**user, "token": server.login(name, PASSWORD)["access_token"]}


def _start(server, reviewer) -> dict:
    """The reviewer, over REST only, resumes and is handed its first task."""
    return server.request("PUT", "/availability", reviewer["token"], expect=200,
                          json={"availability": 1}).json()["task"]


def _complete(server, reviewer, task_id, expect=200, **verdict):
    return server.request("POST", "/complete_task", reviewer["token"], expect=expect,
                          json={"task_id": task_id, **verdict})


def _history(server, task_id) -> list[dict]:
    return server.request("GET", f"/tasks/{task_id}/history", server.admin_token,
                          expect=200).json()["events"]


def test_a_queue_form_is_set_read_and_cleared(server):
    made = _queue(server, "photos", FORM).json()
    assert made["form"] == FORM
    # Omitted keys take their defaults: the stored form always has all four.
    bare = _queue(server, "bare", {"checklist": [{"id": "a", "label": "A"}]}).json()
    assert bare["form"] == {"display": [], "checklist": [{"id": "a", "label": "A"}],
                            "fail_reasons": [], "note_required_on_fail": False}
    assert _queue(server, "plain").json()["form"] is None
    assert _queue(server, "nulled", form=None, min_level=2).json()["form"] is None
    queues = _queues(server)
    assert (queues["photos"]["form"], queues["default"]["form"], queues["plain"]["form"]) \
        == (FORM, None, None)
    board = server.request("GET", "/board", server.admin_token, expect=200).json()
    assert {q["name"]: q["form"] for q in board["queues"]}["photos"] == FORM

    # A PATCH of something else keeps the form; a new form replaces it whole.
    assert _patch(server, "photos", {"min_level": 2}).json()["form"] == FORM
    smaller = {"fail_reasons": [{"code": "blur", "label": "Blurry"}]}
    assert _patch(server, "photos", {"form": smaller}).json()["form"] == {
        "display": [], "checklist": [], "fail_reasons": [{"code": "blur", "label": "Blurry"}],
        "note_required_on_fail": False}
    assert _patch(server, "photos", {"form": None}).json()["form"] is None
    assert _queues(server)["photos"]["form"] is None
    assert _patch(server, "plain", {"form": FORM}).json()["form"] == FORM
    assert _queues(server)["plain"]["form"] == FORM

    # Supervisors only.
    alice = server.reviewer("alice")
    assert_error(_patch(server, "plain", {"form": None}, expect=None, token=alice["token"]),
                 403)
    assert _queues(server)["plain"]["form"] == FORM


BAD_FORMS = [
    ("not an object", "x", "'form' must be an object"),
    ("a list", [FORM], "'form' must be an object"),
    ("unknown key", {"fields": []}, "unknown key(s) 'fields'"),
    ("display not a list", {"display": {"field": "a", "as": "image"}},
     "'form.display' must be a list"),
    ("display entry not an object", {"display": ["photo"]}, "'form.display[0]' must be an object"),
    ("display kind", {"display": [{"field": "a", "as": "video"}]},
     "'form.display[0].as' must be one of image, link, text, json, iframe"),
    ("display field empty", {"display": [{"field": " ", "as": "text"}]},
     "'form.display[0].field' must not be empty"),
    ("display field not text", {"display": [{"field": 3, "as": "text"}]},
     "'form.display[0].field' must be a string"),
    ("display key missing", {"display": [{"field": "a"}]}, "'as' missing"),
    ("display key unknown", {"display": [{"field": "a", "as": "text", "width": 3}]},
     "unknown key(s) 'width'"),
    ("checklist id twice", {"checklist": [{"id": "a", "label": "A"}, {"id": "a", "label": "B"}]},
     "'form.checklist[1].id': 'a' is given twice"),
    ("checklist id characters", {"checklist": [{"id": "a b", "label": "A"}]},
     "'form.checklist[0].id' must be 1 to 64 letters"),
    ("checklist id empty", {"checklist": [{"id": "", "label": "A"}]},
     "'form.checklist[0].id' must be 1 to 64"),
    ("checklist label missing", {"checklist": [{"id": "a"}]}, "'label' missing"),
    ("reason code too long", {"fail_reasons": [{"code": "x" * 65, "label": "A"}]},
     "'form.fail_reasons[0].code' must be 1 to 64"),
    ("reason code twice", {"fail_reasons": [{"code": "c", "label": "A"},
                                            {"code": "c", "label": "A"}]},
     "'form.fail_reasons[1].code': 'c' is given twice"),
    ("reason label too long", {"fail_reasons": [{"code": "c", "label": "y" * 201}]},
     "'form.fail_reasons[0].label' is longer than 200"),
    ("reason label control character", {"fail_reasons": [{"code": "c", "label": "a\x07"}]},
     "'form.fail_reasons[0].label' contains U+0007"),
    ("too many reasons", {"fail_reasons": [{"code": f"c{i}", "label": "A"} for i in range(51)]},
     "'form.fail_reasons' has 51 entries; at most 50"),
    ("too many checklist items", {"checklist": [{"id": f"i{i}", "label": "A"}
                                                for i in range(51)]},
     "'form.checklist' has 51 entries"),
    ("note flag not a boolean", {"note_required_on_fail": "yes"},
     "'form.note_required_on_fail' must be true or false"),
]


def test_bad_forms_are_refused_naming_the_problem_and_change_nothing(server):
    _queue(server, "photos", FORM)
    # Exactly 50 of each is fine.
    fifty = {"checklist": [{"id": f"i{i}", "label": "A"} for i in range(50)],
             "fail_reasons": [{"code": f"c{i}", "label": "y" * 200} for i in range(50)]}
    _queue(server, "fifty", fifty)
    for what, form, said in BAD_FORMS:
        for response in (_queue(server, "new", form, expect=None),
                         _patch(server, "photos", {"form": form}, expect=None)):
            error = assert_error(response, 422, "invalid_form")
            assert said in error["message"], (what, error["message"])
    queues = _queues(server)
    assert "new" not in queues and queues["photos"]["form"] == FORM


def test_verdicts_are_checked_against_the_form_and_refusals_change_nothing(server):
    _queue(server, "photos", FORM)
    alice = _reviewer(server, "alice", {"photos": 1, "default": 1})
    first, second = server.add_tasks({"name": "p1", "queue": "photos", "priority": 5,
                                      "payload": {"photo": "http://x/1.jpg", "sku": "A-1"}},
                                     {"name": "p2", "queue": "photos", "priority": 4})
    plain = server.add_tasks({"name": "plain"})[0]
    assert _start(server, alice)["id"] == first["id"]
    held = server.request("GET", "/me/task", alice["token"], expect=200).json()
    assert held["task"]["id"] == first["id"] and held["form"] == FORM
    before, events = server.task(first["id"]), _history(server, first["id"])

    refused = [
        ({"outcome": "fail", "note": "n", "reasons": ["nope"]}, "'nope' is not a fail reason"),
        ({"outcome": "fail", "note": "n", "reasons": [1]}, "is not a fail reason"),
        ({"outcome": "pass", "reasons": ["blur"]}, "with outcome \"fail\" only"),
        ({"reasons": ["blur"]}, "not no outcome"),
        ({"outcome": "fail", "note": "n"}, "needs at least one of the form's reasons"),
        ({"outcome": "fail", "note": "n", "reasons": []}, "needs at least one"),
        ({"outcome": "fail", "reasons": ["blur"]}, "requires a note"),
        ({"outcome": "fail", "reasons": ["blur"], "note": "  \n "}, "requires a note"),
        # Invisible characters (zero-width space, word joiner, BOM) are no note either.
        ({"outcome": "fail", "reasons": ["blur"], "note": "\u200b"}, "requires a note"),
        ({"outcome": "fail", "reasons": ["blur"], "note": " \u200b\u2060\ufeff\u3000"},
         "requires a note"),
        ({"outcome": "fail", "note": "n", "reasons": ["blur", "dent", "blur"]},
         "'blur' is given twice"),
        ({"outcome": "pass", "checklist": {"label": True, "lid": False}},
         "'lid' is not an item of the form"),
        ({"outcome": "pass", "checklist": {"label": "yes"}}, "must be true or false"),
        ({"outcome": "pass", "checklist": {"label": 1}}, "must be true or false"),
        ({"outcome": "pass", "reasons": [f"c{i}" for i in range(51)]}, "at most 50"),
    ]
    for verdict, said in refused:
        error = assert_error(_complete(server, alice, first["id"], expect=None, **verdict),
                             422, "invalid_verdict")
        assert said in error["message"], (verdict, error["message"])
    for verdict in ({"outcome": "fail", "note": "n", "reasons": "blur"},
                    {"outcome": "pass", "checklist": [True]}):
        assert_error(_complete(server, alice, first["id"], expect=None, **verdict), 400,
                     "wrong_type")
    # Nothing changed: still assigned to alice, no completion in the history.
    assert server.task(first["id"]) == before and before["status"] == "assigned"
    assert _history(server, first["id"]) == events
    assert server.request("GET", "/me/task", alice["token"], expect=200).json() == held

    # The form as it is at completion counts: "dent" is dropped while the task is held.
    changed = {**FORM, "fail_reasons": [r for r in FORM["fail_reasons"] if r["code"] != "dent"]}
    _patch(server, "photos", {"form": changed})
    assert_error(_complete(server, alice, first["id"], expect=None, outcome="fail", note="n",
                           reasons=["dent"]), 422, "invalid_verdict")
    assert server.task(first["id"]) == before

    # The portal's shape (with user_id) takes them too.
    body = _complete(server, alice, first["id"], outcome="fail", note="smudged label",
                     user_id=alice["id"], reasons=["wrong-item", "blur"],
                     checklist={"label": False, "seal": True}).json()
    done = body["task"]
    assert (done["status"], done["outcome"], done["note"], done["reasons"], done["checklist"]) \
        == ("completed", "fail", "smudged label", ["wrong-item", "blur"],
            {"label": False, "seal": True})
    # The supervisor's view of it: the reviewer's and the audit fields.
    assert {k: v for k, v in server.task(first["id"]).items() if k in done} == done
    assert body["next_task"]["id"] == second["id"] and body["next_form"] == changed
    completed = [e for e in _history(server, first["id"]) if e["kind"] == "completed"]
    assert [e["detail"] for e in completed] == [{
        "outcome": "fail", "reasons": ["wrong-item", "blur"],
        "checklist": {"label": False, "seal": True}}]

    # A pass needs no reason; a checklist alone is fine. The next task has no form.
    body = _complete(server, alice, second["id"], outcome="pass",
                     checklist={"seal": True}).json()
    assert (body["task"]["reasons"], body["task"]["checklist"]) == (None, {"seal": True})
    assert body["next_task"]["id"] == plain["id"] and body["next_form"] is None
    assert [e["detail"] for e in _history(server, second["id"]) if e["kind"] == "completed"] \
        == [{"outcome": "pass", "checklist": {"seal": True}}]

    # No form at all: any reason or checklist item is unknown; a bare fail is fine.
    assert server.request("GET", "/me/task", alice["token"], expect=200).json()["form"] is None
    plain_before = server.task(plain["id"])
    for verdict, said in (({"outcome": "fail", "reasons": ["blur"]}, "has no fail reasons"),
                          ({"outcome": "pass", "checklist": {"seal": True}}, "no checklist")):
        error = assert_error(_complete(server, alice, plain["id"], expect=None, **verdict),
                             422, "invalid_verdict")
        assert said in error["message"]
    assert server.task(plain["id"]) == plain_before
    body = _complete(server, alice, plain["id"], outcome="fail").json()
    assert (body["task"]["outcome"], body["task"]["reasons"], body["task"]["checklist"],
            body["next_task"], body["next_form"]) == ("fail", None, None, None, None)


FAST = {"QC_WEBHOOK_POLL_SECONDS": "0.1", "QC_WEBHOOK_RETRY_SECONDS": "0.2",
        "QC_WEBHOOK_TIMEOUT": "1"}


def test_reasons_reach_stats_export_and_webhooks(start_server):
    server = start_server(**FAST)
    _queue(server, "photos", FORM)
    _queue(server, "boxes", {"fail_reasons": [{"code": "dent", "label": "Dent"},
                                              {"code": "-1", "label": "Formula-like"}]})
    alice = _reviewer(server, "alice", {"photos": 1, "boxes": 1})
    bob = _reviewer(server, "bob", {"photos": 1})
    with Receiver(200) as receiver:
        server.request("POST", "/webhooks", server.admin_token, expect=201, json={
            "url": receiver.url, "events": ["task.completed"],
            "secret": "s3cret-for-the-receiver-only"})
        verdicts = {
            "bob": [{"outcome": "fail", "note": "n", "reasons": ["wrong-item"]}],
            "alice": [{"outcome": "fail", "note": "n", "reasons": ["blur", "dent"],
                       "checklist": {"label": True}},
                      {"outcome": "fail", "note": "n", "reasons": ["blur"]},
                      {"outcome": "fail", "reasons": ["-1", "dent"]},
                      {"outcome": "pass"}],
        }
        # REST-only reviewers claim on their own calls: bob's task first, then alice's four
        # (photos first: higher priority).
        tasks = {"bob": [{"name": "p0", "queue": "photos"}],
                 "alice": [{"name": "p1", "queue": "photos", "priority": 9},
                           {"name": "p2", "queue": "photos", "priority": 8},
                           {"name": "b1", "queue": "boxes"}, {"name": "b2", "queue": "boxes"}]}
        done = []
        for who, reviewer in (("bob", bob), ("alice", alice)):
            server.add_tasks(*tasks[who])
            task = _start(server, reviewer)
            for verdict in verdicts[who]:
                body = _complete(server, reviewer, task["id"], **verdict).json()
                done.append(body["task"])
                task = body["next_task"]
            assert task is None
        assert [t["name"] for t in done] == ["p0", "p1", "p2", "b1", "b2"]
        got = receiver.wait_for(lambda r: len(r) >= len(done), what="the completions")

    # The webhook body's task carries the verdict.
    sent = {body["task"]["id"]: body["task"] for body in (json.loads(r["body"]) for r in got)}
    # (the supervisor's task object: the reviewer's and the audit fields)
    assert {i: {k: v for k, v in task.items() if k in done[0]} for i, task in sent.items()} \
        == {t["id"]: t for t in done}
    assert sent[done[1]["id"]]["reasons"] == ["blur", "dent"]
    assert sent[done[1]["id"]]["checklist"] == {"label": True}

    # Counted per queue and per reviewer, over every completed fail.
    stats = server.request("GET", "/stats", server.admin_token, expect=200).json()
    assert stats["fail_reasons"] == {"photos": {"blur": 2, "dent": 1, "wrong-item": 1},
                                     "boxes": {"-1": 1, "dent": 1}}
    by_name = {r["username"]: r for r in stats["reviewers"]}
    assert by_name["bob"]["fail_reasons"] == {"wrong-item": 1}
    assert by_name["alice"]["fail_reasons"] == {"-1": 1, "blur": 2, "dent": 2}
    assert (by_name["alice"]["failed"], by_name["alice"]["passed"]) == (3, 1)
    mine = server.request("GET", f"/users/{alice['id']}/stats", alice["token"],
                          expect=200).json()
    assert mine == by_name["alice"]

    # The export: CSV codes joined by ";" (a formula-like cell neutralised), the
    # checklist as JSON text; NDJSON as they are.
    text = server.request("GET", "/tasks/export", server.admin_token, expect=200,
                          params={"format": "csv", "status": "completed"}).text
    rows = {int(r["id"]): r for r in csv.DictReader(io.StringIO(text))}
    for task in done:
        row = rows[task["id"]]
        reasons = ";".join(task["reasons"] or ())
        assert row["reasons"] == ("'" + reasons if reasons.startswith("-") else reasons)
        assert row["checklist"] == ("" if task["checklist"] is None
                                    else json.dumps(task["checklist"], separators=(",", ":")))
    assert any(r["reasons"] == "'-1;dent" for r in rows.values())
    lines = server.request("GET", "/tasks/export", server.admin_token, expect=200,
                           params={"format": "ndjson", "status": "completed"}).text.splitlines()
    assert {t["id"]: (t["reasons"], t["checklist"]) for t in map(json.loads, lines)} == \
        {t["id"]: (t["reasons"], t["checklist"]) for t in done}
