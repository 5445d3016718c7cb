"""Second reviews on a working floor (issue 17), on a real server with real
sockets: 20 reviewers on a queue at audit_rate 0.2, three of them scripted to
answer wrong. Their audit probability rises (GET /stats/reviewers), disputes
appear (GET /tasks?audit=disputed and the board), resolving them finalises
every task exactly once (a real webhook receiver), gold accuracy is what the
script answered, and nobody audits their own work or sees a hidden answer."""
import queue as queues
import threading
from collections import Counter

from live import Reviewer, wait_until
from receiver import Receiver
from test_audits_api import FAST, _reviewer_saw_nothing_hidden

REVIEWERS, WRONG = 20, 3
TASKS, GOLD_EVERY = 300, 3  # every third task is gold
FLOOR = 0.2


def _truth(i: int) -> str:
    return "pass" if i % 5 else "fail"


def _opposite(outcome: str) -> str:
    return "fail" if outcome == "pass" else "pass"


class Worker(threading.Thread):
    """A reviewer's hands: completes each task it is offered, answering the
    payload's truth (or its opposite, when scripted to be wrong)."""

    def __init__(self, sock: Reviewer, user: dict, wrong: bool):
        super().__init__(daemon=True)
        self.sock, self.user, self.wrong = sock, user, wrong
        self.answers = {}  # task id -> (outcome, the task as received)
        self.failures = []
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            try:
                kind, data = self.sock.events.get(timeout=0.1)
            except queues.Empty:
                continue
            if kind != "task-assigned" or data["task"]["id"] in self.answers:
                continue
            task = data["task"]
            truth = task["payload"]["truth"]
            outcome = _opposite(truth) if self.wrong else truth
            self.answers[task["id"]] = (outcome, task)
            ack = self.sock.complete(task["id"], outcome)
            if not ack.get("ok"):
                self.failures.append((task["id"], ack))


def _everything_done(server):
    board = server.request("GET", "/board", server.admin_token, expect=200).json()
    return board["queue"]["pending"] == 0 and board["queue"]["assigned"] == 0


def _all_tasks(server):
    tasks, cursor = [], None
    while True:
        params = {"limit": 500, **({"cursor": cursor} if cursor else {})}
        page = server.request("GET", "/tasks", server.admin_token, params=params,
                              expect=200).json()
        tasks += page["tasks"]
        cursor = page["next_cursor"]
        if cursor is None:
            return {t["id"]: t for t in tasks}


def _figures(server):
    return {r["username"]: r for r in server.request(
        "GET", "/stats/reviewers", server.admin_token, expect=200).json()["reviewers"]}


def test_a_floor_with_three_wrong_reviewers(start_server):
    server = start_server(**FAST)
    admin = server.admin_token
    server.request("POST", "/queues", admin, expect=201, json={"name": "qc",
                                                                "audit_rate": FLOOR})
    with Receiver(200) as receiver:
        server.request("POST", "/webhooks", admin, expect=201, json={
            "url": receiver.url, "events": ["task.finalized"],
            "secret": "a-secret-of-sixteen-chars"})
        workers = []
        for i in range(REVIEWERS):
            name = f"r{i:02d}"
            user = server.request("POST", "/users", admin, expect=201, json={
                "username": name, "password": "password-long-1", "role": "reviewer",
                "skills": {"qc": 1}}).json()
            token = server.login(name, "password-long-1")["access_token"]
            sock = Reviewer(server, token).connect()
            workers.append(Worker(sock, user, wrong=i < WRONG))
        wrong = {w.user["username"] for w in workers if w.wrong}
        # Before any check, everyone is audited at the queue's rate.
        assert {f["audit_probability"] for f in _figures(server).values()} == {FLOOR}
        for worker in workers:
            worker.start()
        try:
            specs = [{"name": f"item {i}", "queue": "qc", "payload": {"truth": _truth(i)},
                      **({"expected_outcome": _truth(i)} if i % GOLD_EVERY == 0 else {})}
                     for i in range(TASKS)]
            server.add_tasks(*specs)
            wait_until(lambda: _everything_done(server), timeout=240, interval=0.5,
                       what="every task and audit done")
        finally:
            for worker in workers:
                worker.stop.set()
            for worker in workers:
                worker.join(5)
        for worker in workers:
            assert worker.failures == []

        tasks = _all_tasks(server)
        originals = {i: t for i, t in tasks.items() if t["kind"] == "review"}
        audits = {i: t for i, t in tasks.items() if t["kind"] == "audit"}
        assert len(originals) == TASKS and audits
        assert all(t["status"] == "completed" for t in tasks.values())
        # One audit per sampled original, none of gold, never by its reviewer.
        assert len({a["review_of"] for a in audits.values()}) == len(audits)
        for audit in audits.values():
            original = originals[audit["review_of"]]
            assert original["expected_outcome"] is None
            assert audit["assignee_id"] != original["assignee_id"]
            assert original["audit"] == ("agreed" if audit["outcome"] == original["outcome"]
                                         else "disputed")
        assert {t["id"] for t in originals.values() if t["audit"]} == \
            {a["review_of"] for a in audits.values()}

        # The wrong three are audited more than the floor, and more than the others.
        figures = _figures(server)
        for name in wrong:
            assert figures[name]["audit_probability"] > 0.5, figures[name]
        right = [f["audit_probability"] for n, f in figures.items() if n not in wrong]
        assert min(figures[n]["audit_probability"] for n in wrong) > \
            sum(right) / len(right) >= FLOOR

        # Gold accuracy is what the script answered.
        for worker in workers:
            gold = [(outcome, originals[i]["expected_outcome"])
                    for i, (outcome, _) in worker.answers.items()
                    if i in originals and originals[i]["expected_outcome"] is not None]
            mine = figures[worker.user["username"]]
            assert (mine["gold_done"], mine["gold_correct"]) == \
                (len(gold), sum(a == e for a, e in gold))
            if gold:
                assert mine["gold_accuracy"] == (0.0 if worker.wrong else 1.0)
            audited = [originals[i]["audit"] for i in worker.answers
                       if i in originals and originals[i]["audit"]]
            assert (mine["audits_done"], mine["agreed"], mine["completed"]) == \
                (len(audited), audited.count("agreed"), len(worker.answers))

        # Disputes: listed, on the board, each with one wrong answer in it.
        disputed = server.request("GET", "/tasks", admin, expect=200, params={
            "audit": "disputed", "limit": 500}).json()["tasks"]
        assert disputed and {t["id"] for t in disputed} == \
            {i for i, t in originals.items() if t["audit"] == "disputed"}
        by_task = {a["review_of"]: a for a in audits.values()}
        names = {w.user["id"]: w.user["username"] for w in workers}
        for task in disputed:
            assert (names[task["assignee_id"]] in wrong) != \
                (names[by_task[task["id"]]["assignee_id"]] in wrong)
        board = server.request("GET", "/board", admin, expect=200).json()
        assert board["disputes"]["open"] == len(disputed)
        assert {d["id"] for d in board["disputes"]["oldest"]} <= {t["id"] for t in disputed}
        on_board = {r["username"]: r for r in board["reviewers"]}
        for name in wrong:
            assert on_board[name]["disputes_open"] == figures[name]["disputes_open"]
        assert sum(r["disputes_open"] for r in on_board.values()) == len(disputed)

        # Resolution finalises them: task.finalized once per original, none for audits.
        for task in disputed:
            truth = task["payload"]["truth"]
            server.request("POST", f"/tasks/{task['id']}/resolve", admin, expect=200,
                           json={"outcome": truth})
        assert server.request("GET", "/tasks", admin, params={"audit": "open"},
                              expect=200).json()["tasks"] == []
        receiver.wait_for(lambda r: len(r) >= TASKS, timeout=60, what="every task.finalized")
        workers[0].sock.quiet(1)
        finalized = Counter(e["task"]["id"] for e in receiver.events())
        assert finalized == {i: 1 for i in originals}
        for event in receiver.events():
            task = event["task"]
            if task["audit"] == "disputed":
                assert task["final_outcome"] == task["payload"]["truth"]
            else:
                assert task["final_outcome"] == task["outcome"]
        board = server.request("GET", "/board", admin, expect=200).json()
        assert board["disputes"]["open"] == 0

        for worker in workers:
            _reviewer_saw_nothing_hidden(worker.sock)
            worker.sock.disconnect()
