"""Webhooks end to end: real `run.py` servers POSTing to a real HTTP receiver
on loopback (tests/receiver.py). Signatures checked with the secret; a
receiver that fails, hangs or is away gets every event once it answers; a
server SIGKILLed mid-delivery loses none; two servers sharing one outbox
never send one event twice."""
import json

import pytest

from live import database_kind
from test_metrics import scrape, value
from receiver import Receiver, verify

SECRET = "s3cret-for-the-receiver-only"
# Fast polls and back-offs, and a short timeout (so a short lease: 6 s).
FAST = {"QC_WEBHOOK_POLL_SECONDS": "0.1", "QC_WEBHOOK_RETRY_SECONDS": "0.2",
        "QC_WEBHOOK_TIMEOUT": "1"}


def subscribe(server, url, events=("task.completed", "task.cancelled"), secret=SECRET,
              expect=201):
    return server.request("POST", "/webhooks", server.admin_token, expect=expect,
                          json={"url": url, "events": list(events), "secret": secret}).json()


def cancel_tasks(server, count: int) -> list[int]:
    made = server.add_tasks(*({"name": f"task {i}"} for i in range(count)))
    for task in made:
        server.request("PATCH", f"/tasks/{task['id']}", server.admin_token,
                       json={"status": "cancelled"}, expect=200)
    return [t["id"] for t in made]


def deliveries(server, webhook_id: int, **params) -> list[dict]:
    return server.request("GET", f"/webhooks/{webhook_id}/deliveries", server.admin_token,
                          params=params, expect=200).json()["deliveries"]


def test_a_completion_reaches_the_receiver_signed_and_logged(start_server):
    server = start_server(**FAST)
    with Receiver(200) as receiver:
        hook = subscribe(server, receiver.url, events=["task.completed", "task.finalized"])
        assert set(hook) == {"id", "url", "events", "created_at"}  # never the secret
        listed = server.request("GET", "/webhooks", server.admin_token, expect=200).json()
        assert listed == {"webhooks": [hook]} and SECRET not in json.dumps(listed)
        alice = server.reviewer("alice")
        task = server.add_tasks({"name": "lot 17", "payload": {"sku": "A-17"}})[0]
        server.request("PUT", "/availability", alice["token"], json={"availability": 1},
                       expect=200)
        done = server.request("POST", "/complete_task", alice["token"], expect=200,
                              json={"task_id": task["id"], "outcome": "pass"}).json()["task"]
        got = receiver.wait_for(lambda r: len(r) >= 2, what="two events")
    assert all(verify(request, SECRET) for request in got)
    bodies = {json.loads(r["body"])["type"]: (r, json.loads(r["body"])) for r in got}
    assert set(bodies) == {"task.completed", "task.finalized"}
    for kind, (request, body) in bodies.items():
        assert request["headers"]["X-QC-Event"] == kind
        assert request["headers"]["X-QC-Delivery"] == body["event_id"]
        # The supervisor's task object: the reviewer's answer and the audit fields.
        assert {k: body["task"][k] for k in done} == done
        assert (body["task"]["final_outcome"] == "pass") == (kind == "task.finalized")
        if kind == "task.finalized":
            assert body["task"] == server.task(task["id"])
        assert body["at"] == done["completed_at"]
    log = _settled(server, hook["id"], 2)
    assert {(d["type"], d["status"], d["attempts"]) for d in log} == {
        ("task.completed", "delivered", 1), ("task.finalized", "delivered", 1)}
    assert {d["event_id"] for d in log} == {b["event_id"] for _, b in bodies.values()}


def _settled(server, webhook_id, count, status="delivered"):
    from live import wait_until
    found = []

    def settled():
        found[:] = deliveries(server, webhook_id)
        return len(found) == count and all(d["status"] == status for d in found)
    wait_until(settled, timeout=30, what=f"{count} deliveries {status}")
    return found


def test_a_failing_receiver_is_retried_until_it_answers(start_server):
    server = start_server(**FAST)
    answers = iter([500, 503, 404, 302])  # a redirect is not followed: a failure too

    def answer(_body):
        return next(answers, 200)
    with Receiver(answer) as receiver:
        hook = subscribe(server, receiver.url)
        [task_id] = cancel_tasks(server, 1)
        receiver.wait_for(lambda r: len(r) >= 1, what="a first attempt")
        assert value(scrape(server), "qc_webhooks_pending") == 1
        got = receiver.wait_for(lambda r: len(r) >= 5, what="five attempts")
        [delivered] = _settled(server, hook["id"], 1)
    figures = scrape(server)
    assert value(figures, "qc_webhooks_pending") == 0
    assert value(figures, "qc_webhook_deliveries_total", result="retried") == 4
    assert value(figures, "qc_webhook_deliveries_total", result="delivered") == 1
    assert value(figures, "qc_webhook_deliveries_total", result="failed") == 0
    assert len({r["body"] for r in got}) == 1  # the same event, byte for byte
    assert json.loads(got[0]["body"])["task"]["id"] == task_id
    assert delivered["attempts"] == 5 and delivered["last_error"] is None
    backoffs = [b["at"] - a["at"] for a, b in zip(got, got[1:])]
    assert all(wait >= 0 for wait in backoffs)


def test_a_hanging_receiver_times_out_and_the_event_arrives_when_it_answers(start_server):
    server = start_server(**FAST)
    with Receiver(("hang", 3)) as receiver:
        hook = subscribe(server, receiver.url)
        cancel_tasks(server, 1)
        receiver.wait_for(lambda r: len(r) >= 2, what="a retry after the timeout")
        log = deliveries(server, hook["id"])
        assert log[0]["status"] == "pending" and "timed out" in (log[0]["last_error"] or "")
        receiver.answer = 200
        _settled(server, hook["id"], 1)


def test_an_absent_receiver_fails_after_the_give_up_time_and_can_be_redelivered(
        start_server):
    server = start_server(**FAST, QC_WEBHOOK_GIVE_UP_SECONDS="1")
    with Receiver(503) as receiver:
        hook = subscribe(server, receiver.url)
        cancel_tasks(server, 1)
        [failed] = _settled(server, hook["id"], 1, status="failed")
        assert failed["last_error"] == "HTTP 503 Service Unavailable"
        assert deliveries(server, hook["id"], status="delivered") == []
        receiver.answer = 200
        redone = server.request(
            "POST", f"/webhooks/{hook['id']}/deliveries/{failed['event_id']}/redeliver",
            server.admin_token, expect=202).json()
        assert redone["status"] == "pending" and redone["event_id"] == failed["event_id"]
        [delivered] = _settled(server, hook["id"], 1)
        assert delivered["attempts"] > failed["attempts"]
        assert json.loads(receiver.requests[-1]["body"])["event_id"] == failed["event_id"]
    server.request("POST", f"/webhooks/{hook['id']}/deliveries/nope/redeliver",
                   server.admin_token, expect=404)


def test_a_server_killed_mid_delivery_loses_no_event(start_server, database):
    server = start_server(**FAST)
    with Receiver(("slow", 0.5, 200)) as receiver:
        hook = subscribe(server, receiver.url)
        cancel_tasks(server, 30)
        receiver.wait_for(lambda r: len(r) >= 3, what="deliveries under way")
        server.kill()  # some are in flight, some delivered, some not yet claimed
        in_flight = database.query("SELECT COUNT(*) FROM webhook_deliveries "
                                   "WHERE claimed_by IS NOT NULL")[0][0]
        server.start()
        log = _settled(server, hook["id"], 30)
        received = {json.loads(r["body"])["event_id"] for r in receiver.requests}
    assert received == {d["event_id"] for d in log}  # every event at least once
    assert in_flight > 0, "the kill should have caught deliveries under way"


@pytest.mark.parametrize("kind", ["mysql", "sqlite"])
def test_two_servers_sharing_the_outbox_never_send_one_event_twice(start_server, kind):
    if database_kind() != kind:
        pytest.skip(f"runs on {kind}")
    # A generous timeout: an answer that comes after it is a failure and is sent
    # again (at least once), which this test is not about.
    slow_ok = {**FAST, "QC_WEBHOOK_TIMEOUT": "10"}
    first = start_server(**slow_ok)
    second = start_server(**slow_ok)
    with Receiver(("slow", 0.05, 200)) as receiver:
        hook = subscribe(first, receiver.url)
        cancel_tasks(first, 40)
        cancel_tasks(second, 40)
        log = _settled(first, hook["id"], 80)
        got = [json.loads(r["body"])["event_id"] for r in receiver.requests]
    twice = {e for e in got if got.count(e) > 1}
    assert not twice, [d for d in log if d["event_id"] in twice]
    assert sorted(got) == sorted(d["event_id"] for d in log)  # each exactly once
    assert {d["attempts"] for d in log} == {1}


def test_subscriptions_are_checked_listed_and_deleted(start_server):
    server = start_server()
    refused = [
        ({"url": "ftp://example.com/x", "events": ["task.completed"], "secret": SECRET},
         422, "invalid_url"),
        ({"url": "http://example.com/x", "events": ["task.done"], "secret": SECRET},
         422, "bad_event"),
        ({"url": "http://example.com/x", "events": [], "secret": SECRET}, 422, "bad_event"),
        ({"url": "http://example.com/x", "events": ["task.expired"], "secret": "short"},
         422, "weak_secret"),
        ({"url": "http://example.com/x", "events": ["task.expired"]}, 400, "missing_field"),
    ]
    for body, status, code in refused:
        response = server.request("POST", "/webhooks", server.admin_token, json=body)
        assert response.status_code == status, (body, response.text)
        if code:
            assert response.json()["error"]["code"] == code
    kept = subscribe(server, "http://127.0.0.1:9/kept")
    gone = subscribe(server, "http://127.0.0.1:9/gone")
    server.request("DELETE", f"/webhooks/{gone['id']}", server.admin_token, expect=204)
    server.request("DELETE", f"/webhooks/{gone['id']}", server.admin_token, expect=404)
    assert server.request("GET", "/webhooks", server.admin_token).json() == {"webhooks": [kept]}
    assert deliveries(server, gone["id"]) == []  # its log stays readable
    server.request("GET", "/webhooks/999/deliveries", server.admin_token, expect=404)


def test_private_targets_are_refused_when_the_setting_says_so(start_server):
    server = start_server(QC_WEBHOOK_REFUSE_PRIVATE="1")
    response = subscribe(server, "http://127.0.0.1:8080/hook", expect=422)
    assert response["error"]["code"] == "private_target"
    response = subscribe(server, "http://localhost/hook", expect=422)
    assert response["error"]["code"] == "private_target"
    # A host no resolver can encode is refused as such, without a traceback
    # in the log (gevent's resolver thread printed one for each).
    for host in ("a..b", "x" * 70 + ".example"):
        response = subscribe(server, f"http://{host}/hook", expect=422)
        assert response["error"]["code"] == "unresolvable_host"
    assert "Traceback" not in server.log()
