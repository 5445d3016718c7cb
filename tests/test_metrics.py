"""GET /metrics: Prometheus figures that follow what happens on a live floor,
parsed with prometheus_client's own parser."""
import threading

import pytest
import socketio
from prometheus_client.parser import text_string_to_metric_families

from live import Reviewer, free_port, wait_until


def scrape(server, **headers) -> dict:
    answer = server.request("GET", "/metrics", headers=headers, expect=200)
    assert answer.headers["Content-Type"].startswith("text/plain")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(answer.text)
            for sample in family.samples}


def value(figures: dict, name: str, **labels) -> float:
    return figures[(name, tuple(sorted(labels.items())))]


def scrape_until(server, check, what: str, timeout: float = 10) -> dict:
    """Scrape until `check(figures)` holds; those figures."""
    def attempt():
        figures = scrape(server)
        return figures if check(figures) else None
    return wait_until(attempt, timeout=timeout, what=what)


def test_metrics_follow_the_floor(start_server):
    server = start_server(QC_ACK_TIMEOUT="1")
    m = scrape(server)
    assert value(m, "qc_database_up") == 1 and value(m, "qc_server_processes") == 1
    assert value(m, "qc_sockets_online", namespace="/reviewer") == 0
    assert value(m, "qc_reviewers_online") == 0 and value(m, "qc_tasks_pending") == 0
    assert value(m, "qc_completions_total", route="socket", outcome="pass") == 0
    assert value(m, "qc_claims_total") == 0

    alice = server.reviewer("alice")
    sock = Reviewer(server, alice["token"]).connect()
    try:
        sock.next("idle")
        server.add_tasks([{"name": "one", "priority": 3}, {"name": "two", "priority": 2},
                          {"name": "three", "priority": 1}])
        one = sock.task()
        assert sock.complete(one["id"], "pass")["ok"]
        two = sock.task()  # pushed after the socket completion
        server.request("POST", "/complete_task", alice["token"], expect=200,
                       json={"task_id": two["id"], "outcome": "fail"})
        three = sock.task()  # pushed after the REST completion
        assert sock.call("task-complete", {"task_id": three["id"]})["ok"]
        assert sock.next("idle")["reason"] == "queue-empty"

        m = scrape(server)
        assert value(m, "qc_completions_total", route="socket", outcome="pass") == 1
        assert value(m, "qc_completions_total", route="rest", outcome="fail") == 1
        assert value(m, "qc_completions_total", route="socket", outcome="none") == 1
        assert value(m, "qc_claims_total") == 3
        # complete -> next: one observation per completion that had a next task
        for route in ("socket", "rest"):
            assert value(m, "qc_complete_to_next_seconds_count", route=route) == 1
            assert value(m, "qc_complete_to_next_seconds_sum", route=route) > 0
            assert value(m, "qc_complete_to_next_seconds_bucket", route=route, le="+Inf") == 1
        assert value(m, "qc_sockets_online", namespace="/reviewer") == 1
        assert value(m, "qc_sockets_online", namespace="/board") == 0
        assert value(m, "qc_reviewers_online") == 1 and value(m, "qc_reviewers_free") == 1
        assert value(m, "qc_tasks_pending") == 0 and value(m, "qc_tasks_assigned") == 0
        assert value(m, "qc_oldest_pending_age_seconds") == 0

        # a paused reviewer: the queue grows and ages
        assert sock.call("set-availability", {"available": False})["ok"]
        server.add_tasks([{"name": "four"}, {"name": "five"}])
        m = scrape_until(server, lambda m: value(m, "qc_oldest_pending_age_seconds") > 0,
                         "an aging queue")
        assert value(m, "qc_tasks_pending") == 2 and value(m, "qc_reviewers_free") == 0

        # an offer nobody acknowledges is taken back (QC_ACK_TIMEOUT=1): a tab
        # whose script hangs on the task, so no ack goes back
        carol = server.reviewer("carol")
        thaw = threading.Event()
        frozen = socketio.Client(reconnection=False)
        frozen.on("task-assigned", lambda data: thaw.wait(30), namespace="/reviewer")
        frozen.connect(server.url, namespaces=["/reviewer"], auth={"token": carol["token"]},
                       wait_timeout=10)
        try:
            m = scrape_until(server, lambda m: value(m, "qc_tasks_taken_back_total",
                                                     reason="unacknowledged") >= 1,
                             "the offer taken back", timeout=20)
            assert value(m, "qc_sockets_online", namespace="/reviewer") == 2
            assert value(m, "qc_reviewers_online") == 2
        finally:
            thaw.set()
            frozen.disconnect()
    finally:
        sock.disconnect()


def test_a_metrics_token_is_required_once_set(start_server):
    server = start_server(QC_METRICS_TOKEN="scrape-secret-1")
    for headers in ({}, {"Authorization": "Bearer wrong"},
                    {"Authorization": f"Bearer {server.admin_token}"}):
        answer = server.request("GET", "/metrics", headers=headers, expect=401)
        assert answer.json()["error"]["code"] == "unauthorized"
    figures = scrape(server, Authorization="Bearer scrape-secret-1")
    assert value(figures, "qc_database_up") == 1


def test_message_queue_errors_are_counted(start_server):
    # A Redis nobody listens on: every publish and listen attempt fails.
    server = start_server(QC_MESSAGE_QUEUE=f"redis://127.0.0.1:{free_port()}/0")
    alice = server.reviewer("alice")
    sock = Reviewer(server, alice["token"]).connect()  # its pushes go through the queue
    try:
        for operation in ("publish", "listen"):
            scrape_until(server, lambda m: value(m, "qc_message_queue_errors_total",
                                                 operation=operation) > 0,
                         f"a {operation} error")
    finally:
        sock.disconnect()


def test_database_retries_and_outages_are_counted(app):
    import pymysql
    from sqlalchemy.exc import OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    from qc_live import database, metrics
    from qc_live.extensions import db

    def count(kind):
        return metrics.LOCAL.get_sample_value("qc_database_errors_total", {"kind": kind})

    retried, unavailable = count("retried"), count("unavailable")
    attempts = []

    def deadlocked_once(session):
        attempts.append(1)
        if len(attempts) == 1:
            raise OperationalError("UPDATE tasks", {}, pymysql.err.OperationalError(
                1213, "Deadlock found when trying to get lock"))
        return "done"

    assert database.run_write(db.session, deadlocked_once) == "done"
    assert count("retried") == retried + 1 and count("unavailable") == unavailable

    def no_connection(session):
        raise PoolTimeout("QueuePool limit reached")

    with pytest.raises(database.DatabaseUnavailable):
        database.run_write(db.session, no_connection)
    assert count("unavailable") == unavailable + 1 and count("retried") == retried + 1


def test_processes_on_one_host_share_their_counters(start_server, tmp_path):
    shared = tmp_path / "prometheus"
    shared.mkdir()
    first = start_server(PROMETHEUS_MULTIPROC_DIR=shared)
    second = start_server(PROMETHEUS_MULTIPROC_DIR=shared)
    bob = first.reviewer("bob")
    [task] = first.add_tasks({"name": "one"})
    first.request("PUT", "/availability", bob["token"], json={"availability": 1}, expect=200)
    first.request("POST", "/complete_task", bob["token"], json={"task_id": task["id"]},
                  expect=200)
    # the second process serves the first one's counters, summed with its own
    for server in (first, second):
        m = scrape(server)
        assert value(m, "qc_completions_total", route="rest", outcome="none") == 1
        assert value(m, "qc_claims_total") == 1
        assert value(m, "qc_server_processes") == 2
