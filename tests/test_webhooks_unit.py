"""The webhook outbox and courier on their own (outbox.py, webhooks.py), over
a real database through the `floor` fixture, delivering to a real HTTP
receiver on loopback (tests/receiver.py)."""
import json
from datetime import timedelta

import pytest
import sqlalchemy as sa

from qc_live import outbox, state, webhooks
from qc_live.clock import utcnow
from qc_live.database import run_write
from qc_live.errors import Invalid
from qc_live.extensions import db
from qc_live.models import Webhook, WebhookDelivery
from receiver import Receiver, verify

SECRET = "a-webhook-secret-of-some-length"


def subscribe(url, events=outbox.EVENT_TYPES, secret=SECRET) -> int:
    def add(session):
        hook = Webhook(url=url, events=list(events), secret=secret, active=True)
        session.add(hook)
        session.flush()
        return hook.id
    return run_write(db.session, add)


def rows(**where) -> list:
    found = db.session.execute(sa.select(WebhookDelivery.__table__).filter_by(**where)
                               .order_by(WebhookDelivery.id)).all()
    db.session.rollback()
    return found


def holding(floor, name="alice"):
    """A reviewer online on process p1, holding the first task made."""
    floor.process("p1")
    reviewer = floor.reviewer(name)
    task = floor.tasks({"name": f"{name}'s task", "payload": {"sku": "A-1"}})[0]
    floor.dispatcher.connect(db.session, f"s-{name}", reviewer.id, 0, "p1")
    assert floor.held(reviewer.id)["id"] == task["id"]
    return reviewer, task


def test_no_subscription_no_outbox_row(floor):
    reviewer, task = holding(floor)
    floor.dispatcher.complete(db.session, reviewer.id, task["id"], "pass")
    assert rows() == []


def test_a_completion_writes_its_events_in_its_own_transaction(floor):
    everything = subscribe("http://127.0.0.1:9/a")
    only_cancel = subscribe("http://127.0.0.1:9/b", events=[outbox.CANCELLED])
    reviewer, task = holding(floor)
    done = floor.dispatcher.complete(db.session, reviewer.id, task["id"], "fail", "scratch")
    found = rows()
    # task.finalized fires with task.completed when the queue audits nothing
    # (test_audits_api.py: when it does); the cancel-only subscription gets nothing.
    assert sorted((r.webhook_id, r.type) for r in found) == [
        (everything, outbox.COMPLETED), (everything, outbox.FINALIZED)]
    assert len({r.event_id for r in found}) == 2
    for row in found:
        body = json.loads(row.body)
        task = body.pop("task")
        assert body == {"event_id": row.event_id, "type": row.type,
                        "at": done.value["task"]["completed_at"]}
        # The supervisor's task object: the reviewer's, and the audit fields.
        assert {k: task[k] for k in done.value["task"]} == done.value["task"]
        assert (task["kind"], task["review_of"], task["expected_outcome"], task["audit"]) == \
            ("review", None, None, None)
        final = row.type == outbox.FINALIZED
        assert (task["final_outcome"], task["final_note"], task["finalized_at"]) == \
            (("fail", "scratch", task["completed_at"]) if final else (None, None, None))
        assert task["outcome"] == "fail" and task["status"] == "completed"
        assert row.status == outbox.PENDING and row.attempts == 0
    assert only_cancel not in {r.webhook_id for r in found}


def test_cancel_and_expiry_write_theirs_and_a_refused_transition_writes_none(floor):
    subscribe("http://127.0.0.1:9/a")
    pending = floor.tasks({"name": "to cancel"}, {"name": "to expire"})
    floor.dispatcher.cancel(db.session, pending[0]["id"], None)
    with pytest.raises(Exception):
        floor.dispatcher.cancel(db.session, pending[0]["id"], None)  # task_final: rolled back
    db.session.execute(sa.update(sa.table("tasks", sa.column("id"), sa.column("deadline")))
                       .where(sa.column("id") == pending[1]["id"])
                       .values(deadline=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    from qc_live import sweep
    sweep.expire_overdue(floor.dispatcher, db.session)
    assert [(r.task_id, r.type) for r in rows()] == [
        (pending[0]["id"], outbox.CANCELLED), (pending[1]["id"], outbox.EXPIRED)]


def test_a_delivery_is_signed_and_sent_once(floor):
    with Receiver(200) as receiver:
        subscribe(receiver.url, events=[outbox.COMPLETED])
        reviewer, task = holding(floor)
        floor.dispatcher.complete(db.session, reviewer.id, task["id"], "pass")
        courier = state.courier()
        assert courier.run_once(wait=True) == 1
        assert courier.run_once(wait=True) == 0  # delivered: nothing due
        [request] = receiver.requests
    [row] = rows()
    assert verify(request, SECRET) and not verify(request, SECRET + "x")
    assert request["body"].decode() == row.body  # the raw body is the stored one
    assert request["headers"]["X-QC-Event"] == outbox.COMPLETED
    assert request["headers"]["X-QC-Delivery"] == row.event_id
    assert request["headers"]["Content-Type"] == "application/json"
    assert row.status == outbox.DELIVERED and row.attempts == 1 and row.delivered_at


def test_a_failure_backs_off_then_a_success_delivers(floor):
    with Receiver(500) as receiver:
        subscribe(receiver.url, events=[outbox.COMPLETED])
        reviewer, task = holding(floor)
        floor.dispatcher.complete(db.session, reviewer.id, task["id"], "pass")
        courier = state.courier()
        courier.run_once(wait=True)
        [row] = rows()
        assert (row.status, row.attempts, row.last_error) == ("pending", 1,
                                                               "HTTP 500 Internal Server Error")
        assert row.claimed_by is None and row.next_attempt_at >= row.created_at
        receiver.answer = 204
        _due_now()
        courier.run_once(wait=True)
        assert len(receiver.requests) == 2
    [row] = rows()
    assert (row.status, row.attempts, row.last_error) == ("delivered", 2, None)


def _due_now():
    db.session.execute(sa.update(WebhookDelivery).values(next_attempt_at=utcnow()))
    db.session.commit()


def test_retries_end_in_failed_once_the_give_up_time_passed(floor):
    subscribe("http://127.0.0.1:1/nothing-listens")
    reviewer, task = holding(floor)
    floor.dispatcher.complete(db.session, reviewer.id, task["id"], "pass")
    db.session.execute(sa.update(WebhookDelivery).values(retry_until=utcnow()))
    db.session.commit()
    state.courier().run_once(wait=True)
    assert {(r.status, r.attempts) for r in rows()} == {("failed", 1)}
    assert all("Connection" in r.last_error for r in rows())


def test_a_leased_row_is_not_claimed_by_another_process_until_its_lease_ends(floor):
    subscribe("http://127.0.0.1:9/a", events=[outbox.COMPLETED])
    reviewer, task = holding(floor)
    floor.dispatcher.complete(db.session, reviewer.id, task["id"], "pass")
    first = run_write(db.session, outbox.claim, "p-one", 60, 10)
    assert len(first) == 1 and first[0]["attempts"] == 1
    assert run_write(db.session, outbox.claim, "p-two", 60, 10) == []
    # p-one died: its lease runs out, and p-two takes the row (at least once).
    db.session.execute(sa.update(WebhookDelivery).values(claimed_until=utcnow()))
    db.session.commit()
    second = run_write(db.session, outbox.claim, "p-two", 60, 10)
    assert [d["event_id"] for d in second] == [first[0]["event_id"]]
    # p-one's late outcome is not written over p-two's lease.
    assert run_write(db.session, outbox.settle, first[0]["id"], "p-one", None, 1) is None
    assert rows()[0].claimed_by == "p-two"


@pytest.mark.parametrize("attempts", [1, 3, 10, 60])
def test_backoff_is_full_jitter_under_a_doubling_capped_ceiling(attempts):
    ceiling = min(outbox.MAX_BACKOFF_SECONDS, 2 ** (attempts - 1))
    waits = [outbox.backoff(attempts, 1.0) for _ in range(200)]
    assert all(0 <= w <= ceiling for w in waits)
    assert max(waits) > ceiling / 2  # spread over the range, not a fixed step


@pytest.mark.parametrize("url", ["ftp://example.com/x", "example.com/hook", "http:///x",
                                 "http://exa mple.com/", "http://example.com:99999/",
                                 # credentials: never sent (http.client ignores them),
                                 # shown to every admin by GET /webhooks, logged
                                 "https://user:pass@example.com/hook",
                                 "https://token@example.com/hook",
                                 # port 0 was taken for "no port": sent to port 80
                                 "http://example.com:0/hook"])
def test_urls_that_are_not_http_targets_are_refused(url):
    with pytest.raises(Invalid) as refused:
        webhooks.check_url(url)
    assert refused.value.code == "invalid_url"


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "192.168.0.5", "172.16.3.4",
                                     "169.254.169.254", "::1", "fc00::1", "::ffff:10.0.0.1",
                                     "0.0.0.0", "100.64.0.1", "224.0.0.1",
                                     # 127.0.0.1 and 10.0.0.1 inside IPv6: NAT64, 6to4,
                                     # IPv4-compatible
                                     "64:ff9b::7f00:1", "64:ff9b::a00:1", "64:ff9b:1::a00:1",
                                     "2002:a00:1::", "2002:7f00:1::1", "::a00:1"])
def test_private_and_loopback_targets_are_refused_when_asked(address):
    host = f"[{address}]" if ":" in address else address
    with pytest.raises(Invalid) as refused:
        webhooks.check_target(f"http://{host}/hook", refuse_private=True)
    assert refused.value.code == "private_target"
    webhooks.check_target(f"http://{host}/hook", refuse_private=False)  # tests, development


def test_a_public_address_is_accepted_and_private_ones_are_refused_at_delivery_too():
    webhooks.check_target("https://8.8.8.8/hook", refuse_private=True)
    webhooks.check_target("https://[64:ff9b::808:808]/hook", refuse_private=True)  # NAT64
    webhooks.check_target("https://[2001:4860:4860::8888]/hook", refuse_private=True)
    error = webhooks.post("http://127.0.0.1:9/hook", SECRET, "e", outbox.COMPLETED, "{}", 1,
                          refuse_private=True)
    assert "private or loopback" in error


def test_a_receiver_that_trickles_its_answer_cannot_hold_a_delivery_past_its_budget():
    """Each network step has QC_WEBHOOK_TIMEOUT, but a receiver that sends a
    byte of its headers every now and then never lets one step time out: the
    delivery must still end (else it outlives its lease, is claimed and sent
    again, and a few such receivers fill every in-flight slot)."""
    import socket
    import threading
    stop, results = threading.Event(), []
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def trickle():
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            while not stop.wait(0.1):
                try:
                    conn.sendall(b"z")
                except OSError:
                    return
    threading.Thread(target=trickle, daemon=True).start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
    sender = threading.Thread(target=lambda: results.append(webhooks.post(
        url, SECRET, "e", outbox.COMPLETED, "{}", 0.5, refuse_private=False)), daemon=True)
    sender.start()
    sender.join(60)  # the budget is 3 x 0.5 s; without one the trickle lasts for hours
    stop.set()
    listener.close()
    assert not sender.is_alive(), "the delivery is still reading the trickled answer"
    assert results and "within 1.5 s" in results[0]


def test_a_url_with_non_ascii_characters_is_delivered_percent_encoded(floor):
    """POST /webhooks takes any printable URL; http.client sends ASCII only,
    and its UnicodeEncodeError escaped `post`: the delivery was never settled,
    so it was claimed again at every lease's end, for ever, never failed."""
    with Receiver(200) as receiver:
        url = webhooks.check_url(receiver.url + "/hoök?ä=1&x=%41")
        subscribe(url, events=[outbox.COMPLETED])
        reviewer, task = holding(floor)
        floor.dispatcher.complete(db.session, reviewer.id, task["id"], "pass")
        assert state.courier().run_once(wait=True) == 1
        [request] = receiver.requests
    assert request["path"] == "/hook/ho%C3%B6k?%C3%A4=1&x=%41"
    [row] = rows()
    assert (row.status, row.attempts, row.claimed_by) == ("delivered", 1, None)


def test_a_delivery_that_fails_unexpectedly_is_settled_and_retried(floor, monkeypatch):
    """Whatever goes wrong in sending, the attempt is written down (back-off,
    then failed once its retries are over), never left to its lease."""
    def broken(*_args, **_kwargs):
        raise ValueError("something nobody foresaw")
    monkeypatch.setattr(webhooks, "post", broken)
    subscribe("http://127.0.0.1:1/hook", events=[outbox.COMPLETED])
    reviewer, task = holding(floor)
    floor.dispatcher.complete(db.session, reviewer.id, task["id"], "pass")
    assert state.courier().run_once(wait=True) == 1
    [row] = rows()
    assert (row.status, row.attempts, row.claimed_by) == ("pending", 1, None)
    assert row.last_error == "ValueError: something nobody foresaw"
