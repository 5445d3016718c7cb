"""Several processes when one of them has never had a socket, and when Redis goes away.

Each test runs its own Redis on a spare port (so it can kill it) and its own
channel; the process that acts is started cold: no socket ever connected to it.
"""
import subprocess
import threading
import time
import uuid

import pytest
import redis
import socketio

from live import Reviewer, database_kind, free_port, wait_until

pytestmark = pytest.mark.skipif(
    database_kind() != "mysql", reason="several processes share a server database; "
                                       "SQLite is for one process")


class RedisServer:
    """A redis-server of the test's own, on a spare port: killed and started again."""

    def __init__(self):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port)
        wait_until(lambda: self._answers(client), timeout=10, what="redis-server up")

    @staticmethod
    def _answers(client) -> bool:
        try:
            return client.ping()
        except redis.RedisError:
            return False

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()


@pytest.fixture
def own_redis():
    server = RedisServer()
    yield server
    server.kill()


@pytest.fixture
def cluster(start_server, own_redis):
    """Factory: cluster(n, **env) -> n processes on one database and the test's Redis."""
    channel = f"qc_test_{uuid.uuid4().hex[:8]}"

    def start(n=2, **env):
        return [start_server(QC_MESSAGE_QUEUE=own_redis.url, QC_MESSAGE_QUEUE_CHANNEL=channel,
                             **env) for _ in range(n)]
    return start


def acked_at(server, task_id):
    return server.database.query("SELECT acked_at FROM tasks WHERE id = %s", task_id)[0][0]


def available(server, user_id) -> bool:
    users = server.request("GET", "/users", server.admin_token, expect=200).json()["users"]
    return next(u for u in users if u["id"] == user_id)["available"]


# The holder's process re-sends an unacknowledged offer after this long; the
# cold-start tests set it far beyond their own length, so that only the ack
# sent back to the offering (cold) process can be what records it.
NO_REDELIVERY = {"QC_OFFER_REDELIVER_SECONDS": "120"}


def test_every_process_listens_on_the_queue_from_start_up(cluster, own_redis):
    servers = cluster(2)  # and no socket ever connects to either
    channel = servers[0].env["QC_MESSAGE_QUEUE_CHANNEL"]
    client = redis.Redis(port=own_redis.port)
    wait_until(lambda: client.pubsub_numsub(channel) == [(channel.encode(), 2)], timeout=10,
               what="both processes subscribed")


def test_an_offer_from_a_process_that_never_had_a_socket_is_acknowledged(cluster):
    holder, cold = cluster(2, **NO_REDELIVERY)
    alice = cold.reviewer("alice")
    sock = Reviewer(holder, alice["token"]).connect()
    try:
        sock.next("idle")
        [task] = cold.add_tasks({"name": "made on the cold process"})
        assert sock.task()["id"] == task["id"]
        # the ack goes back from the holder's process to the cold one, which
        # must be listening on the queue although no socket ever came to it
        wait_until(lambda: acked_at(cold, task["id"]) is not None, timeout=10,
                   what="the ack recorded")
        assert sock.complete(task["id"])["ok"] is True
    finally:
        sock.disconnect()


def test_a_rest_completion_on_a_cold_process_after_the_ack_timeout_succeeds(cluster):
    holder, cold = cluster(2, QC_ACK_TIMEOUT="1.5", **NO_REDELIVERY)
    alice = cold.reviewer("alice")
    sock = Reviewer(holder, alice["token"]).connect()
    try:
        sock.next("idle")
        first, second = cold.add_tasks([{"name": "first"}, {"name": "second"}])
        assert sock.task()["id"] == first["id"]
        time.sleep(3)  # twice the ack timeout: an offer acked by the socket stays
        done = cold.request("POST", "/complete_task", alice["token"], expect=200,
                            json={"task_id": first["id"]}).json()
        assert done["next_task"]["id"] == second["id"]
        assert sock.task()["id"] == second["id"]  # pushed across to the socket
        assert available(cold, alice["id"]) is True
    finally:
        sock.disconnect()


def test_a_release_on_a_cold_process_reaches_the_socket_and_the_new_offer_stays(cluster):
    holder, cold = cluster(2, QC_ACK_TIMEOUT="1.5", **NO_REDELIVERY)
    alice, bob = cold.reviewer("alice"), cold.reviewer("bob")
    a = Reviewer(holder, alice["token"]).connect()
    b = Reviewer(holder, bob["token"]).connect()
    try:
        a.next("idle")
        b.next("idle")
        # made on the warm process: these offers are local to it
        [task] = holder.add_tasks({"name": "to release"})
        first, other = (a, b) if holder.task(task["id"])["assignee_id"] == alice["id"] \
            else (b, a)
        assert first.task()["id"] == task["id"]
        cold.request("POST", f"/tasks/{task['id']}/release", cold.admin_token, expect=200)
        assert first.next("task-revoked") == {"task_id": task["id"], "reason": "released"}
        # back in the queue, the cold process offers it to the longest idle
        assert other.task()["id"] == task["id"]
        wait_until(lambda: acked_at(cold, task["id"]) is not None, timeout=10,
                   what="the new offer acknowledged")
        time.sleep(3)  # past the ack timeout: it stays where it is
        assert cold.task(task["id"])["status"] == "assigned"
        assert available(cold, alice["id"]) and available(cold, bob["id"])
    finally:
        a.disconnect()
        b.disconnect()


def test_an_offer_made_elsewhere_to_a_frozen_tab_is_still_taken_back(cluster):
    holder, other = cluster(2, QC_ACK_TIMEOUT="1.5", QC_OFFER_REDELIVER_SECONDS="0.5")
    frozen_user, ready_user = other.reviewer("frozen"), other.reviewer("ready")
    thaw = threading.Event()
    seen = []
    frozen = socketio.Client(reconnection=False)

    @frozen.on("task-assigned", namespace="/reviewer")
    def hang(data):
        seen.append(("task-assigned", data["task"]["id"]))
        thaw.wait(30)
        return {"ok": True}

    frozen.on("task-revoked", lambda data: seen.append(("task-revoked", data)),
              namespace="/reviewer")
    frozen.connect(holder.url, namespaces=["/reviewer"], auth={"token": frozen_user["token"]},
                   wait_timeout=10)
    try:
        time.sleep(0.5)
        [task] = other.add_tasks({"name": "hot potato"})
        wait_until(lambda: seen, what="the offer to the frozen tab")
        ready = Reviewer(holder, ready_user["token"]).connect()
        assert ready.task(timeout=15)["id"] == task["id"]
        assert ("task-revoked", {"task_id": task["id"], "reason": "unacknowledged"}) in seen
        assert available(other, frozen_user["id"]) is False
        ready.disconnect()
    finally:
        thaw.set()
        frozen.disconnect()


class SteadyWorker:
    """A reviewer completing each task it is offered, once: an offer repeated
    (the holder's process re-sends one it saw no ack for) is acknowledged and
    otherwise ignored."""

    def __init__(self, server, user):
        self.user = user
        self.completed = []
        self.refused = []
        self.offered = set()
        self.lock = threading.Lock()
        self.sock = Reviewer(server, user["token"])
        self.sock.client.on("task-assigned", self._assigned, namespace="/reviewer")

    def _assigned(self, data):
        task_id = data["task"]["id"]
        with self.lock:
            repeated = task_id in self.offered
            self.offered.add(task_id)
        if not repeated:
            threading.Thread(target=self._complete, args=(task_id,), daemon=True).start()
        return {"ok": True}

    def _complete(self, task_id):
        reply = self.sock.complete(task_id, "pass")
        while reply.get("error", {}).get("code") == "rate_limited":  # faster than a person
            time.sleep(0.2)
            reply = self.sock.complete(task_id, "pass")
        if reply.get("ok"):
            self.completed.append(task_id)
        else:
            self.refused.append((task_id, reply))


@pytest.mark.slow
def test_a_redis_outage_pauses_nobody_and_work_keeps_flowing(cluster, own_redis):
    # A short ack timeout: an offer lost with Redis, if it were held against
    # the reviewer, would pause them well within the outage.
    holder, cold = cluster(2, QC_ACK_TIMEOUT="3", QC_OFFER_REDELIVER_SECONDS="1")
    users = [cold.reviewer(f"r{i}") for i in range(8)]
    # most reviewers on one process, the tasks made on the other
    workers = [SteadyWorker(holder if i < 6 else cold, u) for i, u in enumerate(users)]
    for worker in workers:
        worker.sock.connect(transports=["websocket"])
        worker.sock.next("idle")
    own_redis.kill()
    ids = []
    outage_ends = time.monotonic() + 10
    while time.monotonic() < outage_ends:
        ids += [t["id"] for t in cold.add_tasks([{"name": f"t{len(ids) + i}"}
                                                  for i in range(10)])]
        time.sleep(0.5)
    own_redis.start()
    try:
        wait_until(lambda: sum(len(w.completed) for w in workers) >= len(ids), timeout=60,
                   interval=0.2, what=f"{len(ids)} completions")
        done = sorted(t for w in workers for t in w.completed)
        assert done == sorted(ids)  # each once
        assert [r for w in workers for r in w.refused] == []
        assert all(w.completed for w in workers[:6])  # the far side worked too
        assert cold.database.query(
            "SELECT COUNT(*) FROM task_events WHERE kind = 'unacknowledged'")[0][0] == 0
        assert cold.database.query(
            "SELECT COUNT(*) FROM users WHERE role = 'reviewer' AND NOT available")[0][0] == 0
    finally:
        for worker in workers:
            worker.sock.disconnect()


@pytest.mark.slow
def test_sign_outs_during_a_redis_outage_cut_the_sockets_on_the_other_process(cluster,
                                                                              own_redis):
    holder, cold = cluster(2)
    alice, dave, rita, carl = (cold.reviewer(n) for n in ("alice", "dave", "rita", "carl"))
    socks = {u["username"]: Reviewer(holder, u["token"]).connect()
             for u in (alice, dave, rita, carl)}
    for sock in socks.values():
        sock.next("idle")
    own_redis.kill()
    try:
        cold.request("POST", "/logout", alice["token"], expect=200)
        cold.request("PATCH", f"/users/{dave['id']}", cold.admin_token, expect=200,
                     json={"active": False})
        cold.request("PATCH", f"/users/{rita['id']}", cold.admin_token, expect=200,
                     json={"role": "supervisor"})
        for name in ("alice", "dave", "rita"):
            wait_until(lambda: not socks[name].client.connected, timeout=15,
                       what=f"{name}'s socket cut")
        # carl was signed out of nothing: his socket stays and still works
        assert socks["carl"].client.connected
        assert socks["carl"].call("set-availability", {"available": True})["ok"] is True
    finally:
        own_redis.start()
        for sock in socks.values():
            sock.disconnect()
