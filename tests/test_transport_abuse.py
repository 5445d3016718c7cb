"""One anonymous client must not stall or bloat the server.

Raw WebSocket clients (no token, no namespace) and half-open HTTP connections
(tests/attacks.py) attack a real server while a reviewer completes tasks back
to back; the reviewer and /healthz must carry on, the server's memory stay
within a bound set by the 1 MB message limit, and its log within a few lines.
bench/transport_abuse.py runs the same attacks at full size; docs/deploy.md
("Async mode") has its figures.
"""
import json
import os
import socket
import time

import pytest
import requests
import websocket

from attacks import (Attack, PeakMemory, Probe, Worker, big_frames, closed_by_server,
                     fragmented_message, half_open, malformed_packets, raw_websocket, rss_kib)
from live import Reviewer, database_kind, wait_until

# The attacks are on the transport, below anything the database does: the
# SQLite pass runs them, and the MariaDB pass (the suite's longer one) is
# spared their ~90 s.
pytestmark = pytest.mark.skipif(database_kind() != "sqlite",
                                reason="transport attacks: run in the SQLite pass")

DEFAULT_MODE = "gevent"  # run.py's (test_startup.py checks it)
# The default mode, and eventlet, which stays supported (docs/deploy.md).
MODES = sorted({DEFAULT_MODE, "eventlet"})
MESSAGE_LIMIT = 1_000_000  # Engine.IO's max_http_buffer_size (qc_live/__init__.py)
# What one attacking socket may cost the server: the message being read, the
# one waiting for Engine.IO, the one being handled and its decoded copies,
# plus the allocator's slack. Without the limits these attacks grew it by
# 70 to 550 MB.
MEMORY_BOUND_KIB = 30 * MESSAGE_LIMIT // 1024
# Liveness, not speed: without the fixes a cycle took 3 to 120 s.
LIVE_SECONDS = 2.0
FLOOD_SECONDS = 6.0
# Half-open connections in the slowloris test (bench/transport_abuse.py
# measured 10,100); more than QC_MAX_CONNECTIONS below, to show the cap.
HALF_OPEN = int(os.environ.get("QC_TEST_HALF_OPEN", "300"))


def _under_attack(server, step):
    """Flood `server` with `step` for FLOOD_SECONDS while a reviewer works;
    return what it cost: (worker, probe, attack, memory growth KiB, log growth bytes)."""
    alice = server.reviewer("alice")
    server.add_tasks([{"name": f"t{i}"} for i in range(200)])
    worker = Worker(server, alice["token"])
    worker.start()
    wait_until(lambda: len(worker.cycles) >= 3 or worker.error, what="the reviewer at work")
    pid = server.process.pid
    rss_before, log_before = rss_kib(pid), server.log_path.stat().st_size
    cycles_before = len(worker.cycles)
    memory, probe, attack = PeakMemory(pid), Probe(server.url, timeout=30), \
        Attack(server.url, step)
    for thread in (memory, probe, attack):
        thread.start()
    time.sleep(FLOOD_SECONDS)
    attack.stop()
    probe.stop()
    memory.stop()
    cycles_during = len(worker.cycles) - cycles_before
    worker.stop()
    # Without the fixes a cycle took 3 to 120 s: at most 2 in the flood. (5 was
    # asked once, and a CI machine at load 6 on 2 cores managed 4.)
    assert cycles_during >= 3, f"the reviewer completed {cycles_during} tasks during the flood"
    return (worker, probe, attack, memory.peak - rss_before,
            server.log_path.stat().st_size - log_before)


def _assert_unaffected(worker, probe):
    assert worker.slowest < LIVE_SECONDS, f"complete -> next took {worker.slowest:.1f} s"
    assert not probe.failures, probe.failures
    assert probe.slowest < LIVE_SECONDS, f"/healthz took {probe.slowest:.1f} s"


@pytest.mark.parametrize("mode", MODES)
def test_a_flood_of_big_frames_neither_stalls_nor_bloats_the_server(start_server, mode):
    server = start_server(QC_ASYNC_MODE=mode)
    worker, probe, attack, grown_kib, log_bytes = _under_attack(server, big_frames(990_000))
    assert attack.sent > 20  # the frames went in: the flood happened
    _assert_unaffected(worker, probe)
    assert grown_kib < MEMORY_BOUND_KIB, f"the server grew by {grown_kib // 1024} MB"
    assert log_bytes < 16_000, server.log()


@pytest.mark.parametrize("mode", MODES)
def test_a_message_over_the_limit_in_continuation_frames_is_cut_off(start_server, mode):
    server = start_server(QC_ASYNC_MODE=mode)
    worker, probe, attack, grown_kib, _ = _under_attack(server, fragmented_message(220, 900_000))
    # Each 198 MB message is refused once past 1 MB: its socket is closed.
    assert attack.sent == 0 and attack.dropped >= 1, (attack.sent, attack.dropped)
    _assert_unaffected(worker, probe)
    assert grown_kib < MEMORY_BOUND_KIB, f"the server grew by {grown_kib // 1024} MB"


@pytest.mark.parametrize("mode", MODES)
def test_malformed_packets_make_a_few_log_lines_not_a_traceback_each(start_server, mode):
    server = start_server(QC_ASYNC_MODE=mode)
    worker, probe, attack, _, log_bytes = _under_attack(server, malformed_packets(5000))
    assert attack.sent >= 2  # 10,000 malformed packets at least
    _assert_unaffected(worker, probe)
    # One record (with its traceback) per kind per 10 s; 5,000 packets made 9.4 MB.
    assert log_bytes < 16_000, server.log()
    assert "message handler error" in server.log()


@pytest.mark.parametrize("mode", MODES)
def test_half_open_connections_are_closed_after_the_header_timeout(start_server, mode):
    timeout, cap = 2, 200
    server = start_server(QC_ASYNC_MODE=mode, QC_HEADER_TIMEOUT=str(timeout),
                          QC_MAX_CONNECTIONS=str(cap))
    alice, bob = server.reviewer("alice"), server.reviewer("bob")
    on_websocket = Reviewer(server, alice["token"]).connect(transports=["websocket"])
    on_polling = Reviewer(server, bob["token"]).connect(transports=["polling"])
    try:
        for reviewer in (on_websocket, on_polling):
            assert reviewer.next("idle")["reason"] == "queue-empty"
        held = half_open(server.port, HALF_OPEN)
        opened = time.monotonic()
        # Beyond the cap, new connections wait for the header timeout to free places.
        slowest = 2 * timeout + 5
        answer = requests.get(server.url + "/healthz", timeout=30)
        assert answer.status_code == 200 and time.monotonic() - opened < slowest
        started = time.monotonic()
        login = requests.post(server.url + "/login", timeout=30,
                              json={"username": "alice", "password": "reviewer-pass-1"})
        assert login.status_code == 200 and time.monotonic() - started < slowest
        rounds = -(-HALF_OPEN // cap)
        wait_until(lambda: all(closed_by_server(sock) for sock in held),
                   timeout=rounds * timeout + 10, what="every half-open connection closed")
        for sock in held:
            sock.close()
        # Both reviewers' connections are past their headers: never cut, still live.
        server.add_tasks([{"name": "one"}, {"name": "two"}])
        for reviewer in (on_websocket, on_polling):
            assert reviewer.client.connected
            task = reviewer.task()
            assert reviewer.complete(task["id"])["ok"] is True
    finally:
        on_websocket.disconnect()
        on_polling.disconnect()


@pytest.mark.parametrize("mode", MODES)
def test_a_finished_websocket_closes_its_connection(start_server, mode):
    server = start_server(QC_ASYNC_MODE=mode, QC_HEADER_TIMEOUT="60")
    ws = raw_websocket(server.url)
    ws.send("1")  # Engine.IO's close: the server ends the session and its WebSocket
    while ws.recv_frame().opcode != websocket.ABNF.OPCODE_CLOSE:
        pass
    # No HTTP request follows a WebSocket on its connection: the server closes
    # it, rather than leaving the client's closing handshake to time out.
    ws.sock.settimeout(10)
    assert ws.sock.recv(1) == b""
    ws.sock.close()


def _raw_request(port: int, data: bytes) -> tuple[int, dict, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in
               (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize("mode", MODES)
def test_requests_the_server_cannot_parse_get_the_json_error_shape(start_server, mode):
    server = start_server(QC_ASYNC_MODE=mode)
    cases = [
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "uri_too_long"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", 431,
         "headers_too_large"),
        (b"GET / HTTP/1.1\r\n" + b"".join(b"X-H%d: 1\r\n" % i for i in range(120)) + b"\r\n",
         431, "headers_too_large"),
        (b"NONSENSE\r\n\r\n", 400, "bad_request"),
        (b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", 400, "bad_request"),
    ]
    for request, status, code in cases:
        got, headers, body = _raw_request(server.port, request)
        assert (got, json.loads(body)["error"]["code"]) == (status, code), request[:60]
        assert headers["content-type"] == "application/json"
        assert headers["x-content-type-options"] == "nosniff"
    # and everything else answers with nosniff too, Engine.IO's own answers included
    for path in ("/healthz", "/no-such-page", "/socket.io/?EIO=4&transport=polling"):
        answer = requests.get(server.url + path, timeout=10)
        assert answer.headers["X-Content-Type-Options"] == "nosniff", path


@pytest.mark.parametrize("event", ["task-complete", "set-availability"])
def test_an_event_with_any_number_of_arguments_is_answered(server, connect, event):
    alice = server.reviewer("alice")
    sock = connect(alice["token"])
    assert sock.next("idle")["reason"] == "queue-empty"
    for arguments in [(1, 2, 3), ({"available": True}, 2)]:
        reply = sock.call(event, arguments)  # a tuple: one Socket.IO argument each
        assert reply["ok"] is False and reply["error"]["code"] == "bad_request", arguments
    reply = sock.call(event, ())  # no argument at all
    assert reply["ok"] is False and reply["error"]["code"] == "not_an_object"
    assert sock.call("set-availability", {"available": True})["ok"] is True
