"""The supervisors' board: snapshot on connect, every kind of change, rate cap."""
import queue
import threading
import time

import socketio

from live import Reviewer, wait_until


class Board:
    def __init__(self, server, token):
        self.snapshots = queue.Queue()
        self.times = []
        self.client = socketio.Client(reconnection=False)
        self.client.on("board", self._got, namespace="/board")
        self.client.connect(server.url, namespaces=["/board"], auth={"token": token},
                            wait_timeout=10)

    def _got(self, data):
        self.times.append(time.monotonic())
        self.snapshots.put(data)

    def until(self, predicate, timeout=3.0):
        """The first snapshot satisfying predicate, within timeout seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                snap = self.snapshots.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if predicate(snap):
                return snap
        raise AssertionError("the board did not show the change in time")

    def close(self):
        self.client.disconnect()


def reviewer_row(snap, user_id):
    return next(r for r in snap["reviewers"] if r["id"] == user_id)


def test_board_snapshot_on_connect_matches_rest_and_contract_shape(server):
    alice = server.reviewer("alice")
    server.add_tasks([{"name": "a", "priority": 2}, {"name": "b"}, {"name": "c"}])
    board = Board(server, server.admin_token)
    try:
        snap = board.until(lambda s: True, timeout=2)
        rest = server.request("GET", "/board", server.admin_token, expect=200).json()
        for data in (snap, rest):
            assert set(data) >= {"reviewers", "queue", "queues", "stats"}
            assert [(q["name"], q["pending"]) for q in data["queues"]] == [("default", 3)]
            assert set(data["queue"]) == {"pending", "assigned", "by_priority",
                                          "oldest_pending_age_s"}
            assert set(data["stats"]) == {"completed_last_hour", "median_handle_s",
                                          "reviewers"}
            assert data["queue"]["pending"] == 3
            assert data["queue"]["by_priority"] == {"2": 1, "0": 2}
            row = reviewer_row(data, alice["id"])
            assert set(row) == {"id", "username", "online", "available", "task_id",
                                "task_since", "completed_count", "connected", "skills",
                                "agreement_rate", "gold_accuracy", "audits_done",
                                "disputes_open", "audit_probability"}
            assert (row["audits_done"], row["disputes_open"], row["agreement_rate"]) == \
                (0, 0, None)
            assert data["disputes"] == {"open": 0, "oldest": []}
            assert row["skills"] == {"default": 1}
            assert row["online"] is False
    finally:
        board.close()


def test_board_sees_connect_assignment_completion_pause_and_disconnect(server):
    alice = server.reviewer("alice")
    board = Board(server, server.admin_token)
    try:
        board.until(lambda s: True)
        sock = Reviewer(server, alice["token"]).connect()
        board.until(lambda s: reviewer_row(s, alice["id"])["online"])
        [task] = server.add_tasks({"name": "t"})
        snap = board.until(lambda s: reviewer_row(s, alice["id"])["task_id"] == task["id"])
        assert snap["queue"]["assigned"] == 1 and reviewer_row(snap, alice["id"])["task_since"]
        sock.complete(sock.task()["id"])
        snap = board.until(lambda s: s["stats"]["completed_last_hour"] == 1)
        assert reviewer_row(snap, alice["id"])["completed_count"] == 1
        assert reviewer_row(snap, alice["id"])["task_id"] is None
        mine = next(r for r in snap["stats"]["reviewers"] if r["id"] == alice["id"])
        assert (mine["completed_today"], mine["completed_total"], mine["passed"],
                mine["failed"]) == (1, 1, 1, 0)
        assert mine["median_handle_s"] >= 0
        sock.call("set-availability", {"available": False})
        board.until(lambda s: reviewer_row(s, alice["id"])["available"] is False)
        sock.disconnect()
        # a dropped socket is not a logout: online through the grace period (2 s here)
        snap = board.until(lambda s: not reviewer_row(s, alice["id"])["connected"])
        assert reviewer_row(snap, alice["id"])["online"] is True
        board.until(lambda s: not reviewer_row(s, alice["id"])["online"], timeout=6)
    finally:
        board.close()


def test_board_refuses_reviewers_and_bad_tokens(server):
    alice = server.reviewer("alice")
    for token in (alice["token"], "garbage"):
        client = socketio.Client(reconnection=False)
        errors = []
        client.on("connect_error", lambda data: errors.append(data), namespace="/board")
        try:
            client.connect(server.url, namespaces=["/board"], auth={"token": token},
                           wait_timeout=5)
            raise AssertionError("the board accepted a bad token")
        except socketio.exceptions.ConnectionError:
            pass
        assert errors and errors[0]["code"] == "unauthorized"


def test_board_updates_stay_at_most_10_a_second_under_load(server):
    users = [server.reviewer(f"r{i:02d}") for i in range(50)]
    server.add_tasks([{"name": f"t{i}"} for i in range(600)])
    board = Board(server, server.admin_token)
    board.until(lambda s: True)
    stop = threading.Event()

    def work(user):
        sock = Reviewer(server, user["token"]).connect(transports=["websocket"])
        try:
            while not stop.is_set():
                kind, data = sock.next(timeout=20)
                if kind != "task-assigned":
                    break
                sock.complete(data["task"]["id"])
        finally:
            sock.disconnect()

    threads = [threading.Thread(target=work, args=(u,), daemon=True) for u in users]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    wait_until(lambda: server.request("GET", "/board", server.admin_token).json()
               ["stats"]["completed_last_hour"] >= 600, timeout=120, interval=0.5,
               what="600 completions")
    stop.set()
    board.close()
    window = [t for t in board.times if t >= start]
    assert len(window) >= 5  # it did update while busy
    # no one-second window holds more than 10 updates
    for i, t in enumerate(window):
        assert sum(1 for u in window[i:] if u - t < 1.0) <= 10
