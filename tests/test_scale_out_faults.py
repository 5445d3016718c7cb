"""Several processes when one of them has never had a socket, and when Redis goes away.

Each test runs its own Redis on a spare port (so it can kill it) and its own
channel; the process that acts is started cold: no socket ever connected to it.
"""
import subprocess
import time
import uuid

import pytest
import redis

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


def test_every_process_listens_on_the_queue_from_start_up(cluster, own_redis):
    servers = cluster(2)  # and no socket ever connects to either
    channel = servers[0].env["QC_MESSAGE_QUEUE_CHANNEL"]
    client = redis.Redis(port=own_redis.port)
    wait_until(lambda: client.pubsub_numsub(channel) == [(channel.encode(), 2)], timeout=10,
               what="both processes subscribed")


def test_an_offer_from_a_process_that_never_had_a_socket_is_acknowledged(cluster):
    holder, cold = cluster(2)
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
    holder, cold = cluster(2, QC_ACK_TIMEOUT="1.5")
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
    holder, cold = cluster(2, QC_ACK_TIMEOUT="1.5")
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
