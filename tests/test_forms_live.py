"""Review forms over the socket, on a real server: `task-assigned` carries the
form of the task's queue (first offer, the next task after a completion, a
reconnect, a supervisor's edit); `task-complete` takes reasons and a
checklist, an invalid verdict is refused with the ack and changes nothing,
and the same reviewer then completes validly; the history records it."""
from api_support import assert_error_ack

PASSWORD = "password-long-1"
FORM = {"display": [{"field": "photo", "as": "image"}, {"field": "spec", "as": "json"}],
        "checklist": [{"id": "label", "label": "Label readable"}],
        "fail_reasons": [{"code": "blur", "label": "Blurry"}, {"code": "dent", "label": "Dent"}],
        "note_required_on_fail": False}


def _reviewer(server, name, skills):
    server.request("POST", "/users", server.admin_token, expect=201, json={
        "username": name, "password": PASSWORD, "role": "reviewer", "skills": skills})
    return server.login(name, PASSWORD)["access_token"]


def test_the_form_rides_with_the_offer_and_verdicts_are_checked(server, connect):
    server.request("POST", "/queues", server.admin_token, expect=201,
                   json={"name": "photos", "form": FORM})
    token = _reviewer(server, "alice", {"photos": 1, "default": 1})
    sock = connect(token)
    assert sock.next("idle") == {"reason": "queue-empty"}
    first, second = server.add_tasks(
        {"name": "p1", "queue": "photos", "priority": 2, "payload": {"photo": "http://x/1"}},
        {"name": "p2", "queue": "photos", "priority": 1})
    plain = server.add_tasks({"name": "plain"})[0]

    offer = sock.next("task-assigned")
    assert set(offer) == {"task", "form"}
    assert offer["task"]["id"] == first["id"] and offer["form"] == FORM

    # A reload within the grace period: the held task again, with its form.
    sock.disconnect()
    again = connect(token)
    offer = again.next("task-assigned")
    assert (offer["task"]["id"], offer["form"]) == (first["id"], FORM)
    sock = again

    # A supervisor's edit shows the task again, with its form.
    server.request("PATCH", f"/tasks/{first['id']}", server.admin_token, expect=200,
                   json={"name": "p1, renamed"})
    offer = sock.next("task-assigned")
    assert (offer["task"]["name"], offer["form"]) == ("p1, renamed", FORM)
    before = server.task(first["id"])

    # Invalid verdicts: refused in the ack, nothing changes, nothing is pushed.
    for verdict in ({"outcome": "fail", "reasons": ["scratch"]},
                    {"outcome": "fail"},
                    {"outcome": "pass", "reasons": ["blur"]},
                    {"outcome": "fail", "reasons": ["blur", "blur"]},
                    {"outcome": "pass", "checklist": {"seal": True}},
                    {"outcome": "pass", "checklist": {"label": "ok"}}):
        ack = sock.complete(first["id"], **verdict)
        assert_error_ack(ack, "invalid_verdict")
    assert sock.quiet(0.5) == []
    assert server.task(first["id"]) == before and before["status"] == "assigned"

    # Then a valid one: the ack has the task with its verdict, the next task
    # comes with its form.
    ack = sock.complete(first["id"], "fail", reasons=["dent", "blur"],
                        checklist={"label": True}, note="corner")
    assert ack["ok"] is True
    done = ack["task"]
    assert (done["status"], done["outcome"], done["reasons"], done["checklist"], done["note"]) \
        == ("completed", "fail", ["dent", "blur"], {"label": True}, "corner")
    # The supervisor's view of it: the reviewer's and the audit fields.
    assert {k: v for k, v in server.task(first["id"]).items() if k in done} == done
    offer = sock.next("task-assigned")
    assert (offer["task"]["id"], offer["form"]) == (second["id"], FORM)
    history = server.request("GET", f"/tasks/{first['id']}/history", server.admin_token,
                             expect=200).json()["events"]
    assert [(e["kind"], e["detail"]) for e in history if e["kind"] == "completed"] == [
        ("completed", {"outcome": "fail", "reasons": ["dent", "blur"],
                       "checklist": {"label": True}})]

    # A task of a queue without a form: form null, and reasons refused.
    assert sock.complete(second["id"], "pass", checklist={"label": False})["ok"] is True
    offer = sock.next("task-assigned")
    assert (offer["task"]["id"], offer["form"]) == (plain["id"], None)
    assert_error_ack(sock.complete(plain["id"], "fail", reasons=["blur"]), "invalid_verdict")
    assert server.task(plain["id"])["status"] == "assigned"
    assert sock.complete(plain["id"], "fail")["ok"] is True
    assert sock.next("idle") == {"reason": "queue-empty"}


def test_a_changed_form_reaches_the_next_offer_and_checks_the_held_task(server, connect):
    server.request("POST", "/queues", server.admin_token, expect=201,
                   json={"name": "photos", "form": FORM})
    sock = connect(_reviewer(server, "bob", {"photos": 1}))
    sock.next("idle")
    first, second = server.add_tasks({"name": "a", "queue": "photos", "priority": 1},
                                      {"name": "b", "queue": "photos"})
    assert sock.next("task-assigned")["form"] == FORM
    new_form = {"fail_reasons": [{"code": "torn", "label": "Torn"}],
                "note_required_on_fail": True}
    stored = server.request("PATCH", "/queues/photos", server.admin_token, expect=200,
                            json={"form": new_form}).json()["form"]
    # The held task's verdict is checked against the form as it is now.
    assert_error_ack(sock.complete(first["id"], "fail", reasons=["blur"]), "invalid_verdict")
    assert_error_ack(sock.complete(first["id"], "fail", reasons=["torn"]), "invalid_verdict")
    assert sock.complete(first["id"], "fail", reasons=["torn"], note="edge")["ok"] is True
    offer = sock.next("task-assigned")
    assert (offer["task"]["id"], offer["form"]) == (second["id"], stored)
