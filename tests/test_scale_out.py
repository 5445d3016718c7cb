"""Several server processes acting as one: shared MariaDB, Redis message queue."""
import uuid
from collections import Counter

import pytest

from live import Reviewer, database_kind, wait_until
from test_board_live import Board, reviewer_row
from test_exactly_once import Worker

pytestmark = pytest.mark.skipif(
    database_kind() != "mysql", reason="several processes share a server database; "
                                       "SQLite is for one process")


@pytest.fixture
def cluster(start_server):
    """Factory: cluster(n) -> n processes on one database and one Redis channel."""
    channel = f"qc_test_{uuid.uuid4().hex[:8]}"

    def start(n=2, **env):
        return [start_server(QC_MESSAGE_QUEUE="redis://127.0.0.1:6379/0",
                             QC_MESSAGE_QUEUE_CHANNEL=channel, **env) for _ in range(n)]
    return start


def test_work_created_on_one_process_reaches_a_reviewer_on_another_and_every_board(cluster):
    # A stays cold (no socket ever connected to it) until its offer is acked:
    # a board socket opened on it first would hide a process not yet
    # listening on the queue (test_scale_out_faults.py tests that alone).
    a, b = cluster(2)
    alice = b.reviewer("alice")
    board = None
    try:
        sock = Reviewer(b, alice["token"]).connect()
        sock.next("idle")
        [task] = a.add_tasks({"name": "made on A"})
        got = sock.task()
        assert got["id"] == task["id"]
        # the ack travels back from B to A, which sent the offer
        wait_until(lambda: a.database.query("SELECT acked_at FROM tasks WHERE id = %s",
                                            task["id"])[0][0] is not None,
                   what="ack recorded")
        board = Board(a, a.admin_token)
        board.until(lambda s: True)
        assert sock.complete(task["id"])["ok"] is True
        snap = board.until(lambda s: s["stats"]["completed_last_hour"] == 1)
        assert reviewer_row(snap, alice["id"])["completed_count"] == 1
        # logout on A disconnects the socket held by B
        a.request("POST", "/logout", alice["token"], expect=200)
        wait_until(lambda: not sock.client.connected, what="disconnect across processes")
    finally:
        if board is not None:
            board.close()


def test_50_reviewers_over_two_processes_2000_tasks_each_completed_once(cluster):
    servers = cluster(2)
    users = [servers[0].reviewer(f"r{i:02d}") for i in range(50)]
    workers = [Worker(servers[i % 2], user) for i, user in enumerate(users)]
    for worker in workers:
        worker.sock.connect(transports=["websocket"])
    ids = []
    for batch in range(4):
        ids += [t["id"] for t in servers[batch % 2].add_tasks(
            [{"name": f"b{batch}-{i}"} for i in range(500)])]
    wait_until(lambda: sum(len(w.completed) for w in workers) >= 2000, timeout=300,
               interval=0.5, what="2000 completions")
    for worker in workers:
        worker.sock.disconnect()
    done = Counter(t for w in workers for t in w.completed)
    assert sorted(done) == sorted(ids) and set(done.values()) == {1}
    assert [v for w in workers for v in w.violations] == []
    events = servers[0].database.query(
        "SELECT kind, COUNT(*), COUNT(DISTINCT task_id) FROM task_events "
        "WHERE kind IN ('assigned', 'completed') GROUP BY kind")
    assert sorted(events) == [("assigned", 2000, 2000), ("completed", 2000, 2000)]


def test_a_killed_process_reviewers_move_to_the_other_and_keep_their_tasks(cluster):
    a, b = cluster(2, QC_GRACE_SECONDS="20", QC_LEASE_SECONDS="5")
    users = [a.reviewer(f"r{i}") for i in range(4)]
    tasks = a.add_tasks([{"name": f"t{i}"} for i in range(6)])
    on_a = [Reviewer(a, u["token"]).connect() for u in users[:2]]
    on_b = [Reviewer(b, u["token"]).connect() for u in users[2:]]
    held = {u["id"]: s.task()["id"] for u, s in zip(users, on_a + on_b)}

    a.kill()
    # the load balancer sends them to B now; their tasks are still theirs
    moved = [Reviewer(b, u["token"]).connect() for u in users[:2]]
    for user, sock in zip(users[:2], moved):
        assert sock.task()["id"] == held[user["id"]]
    # A's lease runs out (5 s here): B forgets A and its sockets
    wait_until(lambda: b.database.query("SELECT COUNT(*) FROM server_processes")[0][0] == 1,
               timeout=15, what="the dead process forgotten")
    assert b.database.query("SELECT COUNT(DISTINCT process_id) FROM connections")[0][0] == 1
    # and nothing was lost: everyone finishes, every task once
    finished = Counter()
    for sock in moved + on_b:
        kind, data = "task-assigned", {"task": {"id": held[_user_id(users, sock)]}}
        while kind == "task-assigned":
            assert sock.complete(data["task"]["id"])["ok"] is True
            finished[data["task"]["id"]] += 1
            kind, data = sock.next()
    assert sorted(finished) == sorted(t["id"] for t in tasks)
    for sock in moved + on_b:
        sock.disconnect()


def _user_id(users, sock):
    return next(u["id"] for u in users if u["token"] == sock.token)
