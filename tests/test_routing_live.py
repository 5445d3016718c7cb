"""Queues and skills on a live server (run.py, python-socketio reviewers): three
queues, 50 reviewers with overlapping skills and 2,000 tasks. Every task is
completed exactly once, and only by a reviewer qualified for it when it was
assigned, checked against the history by an oracle written apart from the
server's rule; skills are edited mid-run; relax_after_s is seen to widen who
may take a task."""
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

from live import wait_until
from test_exactly_once import Worker

RELAX = 3  # expert tasks: level 5, or level 1 once they waited 3 s
QUEUES = {"en": (1, None), "de": (3, None), "expert": (5, RELAX)}


def _skills(i: int) -> dict:
    """Overlapping skills: 20 English, 15 English+German, 10 German and a
    little expert (only relaxed expert tasks), 5 experts who also do English."""
    if i < 20:
        return {"en": 1}
    if i < 35:
        return {"en": 2, "de": 3}
    if i < 45:
        return {"de": 4, "expert": 2}
    return {"expert": 6, "en": 1}


def qualifies(skills: dict, queue: str, created_at, at) -> bool:
    """The contract's rule, written again: level >= min_level, or >= 1 once the
    task has waited longer than relax_after_s."""
    min_level, relax = QUEUES[queue]
    level = skills.get(queue, 0)
    return level >= min_level or (
        level >= 1 and relax is not None and (at - created_at).total_seconds() > relax)


def _moment(value) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def _diagnosis(server, workers) -> str:
    """What the floor looks like when the run does not finish: for the failure message."""
    live = server.database.query("SELECT status, queue, COUNT(*) FROM tasks WHERE status "
                                 "IN ('pending', 'assigned') GROUP BY status, queue")
    holders = server.database.query("SELECT id, holder_id, queue, acked_at FROM tasks WHERE "
                                    "status = 'assigned'")
    users = server.database.query("SELECT id, available, offline_since FROM users WHERE "
                                  "role = 'reviewer' ORDER BY id")
    sockets = server.database.query("SELECT user_id, COUNT(*) FROM connections GROUP BY user_id")
    log = "\n".join(line for line in server.log().splitlines()
                    if "ERROR" in line or "Traceback" in line or "Error" in line)[-3000:]
    return (f"live tasks {live}; assigned {holders}; reviewers {users}; sockets {sockets}; "
            f"violations {[v for w in workers for v in w.violations]}; "
            f"holding {[(w.user['id'], w.holding) for w in workers if w.holding]}; log {log}")


def _utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def test_three_queues_50_reviewers_2000_tasks_each_done_once_by_a_qualified_reviewer(server):
    admin = server.admin_token
    for name, (min_level, relax) in QUEUES.items():
        server.request("POST", "/queues", admin, expect=201,
                       json={"name": name, "min_level": min_level, "relax_after_s": relax})
    users = []
    for i in range(50):
        user = server.request("POST", "/users", admin, expect=201, json={
            "username": f"rev{i:02d}", "password": "password-long-1", "role": "reviewer",
            "skills": _skills(i)}).json()
        users.append({**user, "token": server.login(f"rev{i:02d}",
                                                    "password-long-1")["access_token"]})
    # who had which skills when: [(from, until, skills)], the edit's window overlapping
    history = {u["id"]: [(datetime.min, datetime.max, _skills(i))] for i, u in enumerate(users)}
    workers = [Worker(server, user) for user in users]
    for worker in workers:
        worker.sock.connect(transports=["websocket"])

    names = list(QUEUES)
    ids = []

    def add(batches):
        for batch in batches:
            ids.extend(t["id"] for t in server.add_tasks(
                [{"name": f"b{batch}-{i}", "queue": names[i % 3], "priority": (i // 3) % 3}
                 for i in range(500)]))

    def completed():
        return sum(len(w.completed) for w in workers)

    add(range(2))
    # Mid-run (the second half of the tasks comes after): ten English-only
    # reviewers become German ones, five of the German+expert ones English-only.
    wait_until(lambda: completed() >= 700, timeout=300, interval=0.1, what="700 completions")
    edits = {users[i]["id"]: {"de": 3} for i in range(10)}
    edits.update({users[i]["id"]: {"en": 1} for i in range(35, 40)})
    for user_id, skills in edits.items():
        before = _utcnow() - timedelta(seconds=0.5)
        answer = server.request("PATCH", f"/users/{user_id}", admin, json={"skills": skills},
                                expect=200).json()
        assert answer["skills"] == skills
        after = _utcnow() + timedelta(seconds=0.5)
        old = history[user_id][0][2]
        # Between before and after, either set of skills may have been read.
        history[user_id] = [(datetime.min, after, old), (before, datetime.max, skills)]
    add(range(2, 4))
    assert len(set(ids)) == 2000

    try:
        wait_until(lambda: completed() >= 2000, timeout=300, interval=0.2,
                   what="2000 completions")
    except AssertionError:
        raise AssertionError(_diagnosis(server, workers)) from None
    done = Counter(task_id for w in workers for task_id in w.completed)
    assert sorted(done) == sorted(ids) and set(done.values()) == {1}
    assert [v for w in workers for v in w.violations] == []

    # Relax, live: with the experts paused, an expert task waits RELAX seconds,
    # then goes to a reviewer with level 2 (one of rev40..rev44).
    experts = [u["id"] for u in users[45:]]
    for user_id in experts:
        server.request("PUT", "/availability", admin, expect=200,
                       json={"availability": 0, "user_id": user_id})
    relaxed = [t["id"] for t in server.add_tasks(
        [{"name": f"relax-{i}", "queue": "expert"} for i in range(5)])]
    wait_until(lambda: sum(t in w.completed for w in workers for t in relaxed) == 5,
               timeout=60, interval=0.2, what="the relaxed expert tasks done")
    time.sleep(0.5)
    for worker in workers:
        worker.sock.disconnect()

    tasks = {row[0]: (row[1], _moment(row[2])) for row in server.database.query(
        "SELECT id, queue, created_at FROM tasks")}
    events = server.database.query(
        "SELECT task_id, reviewer_id, at FROM task_events WHERE kind = 'assigned'")
    unqualified = []
    for task_id, reviewer_id, at in events:
        queue, created_at = tasks[task_id]
        at = _moment(at)
        allowed = [skills for start, end, skills in history[reviewer_id] if start <= at <= end]
        if not any(qualifies(skills, queue, created_at, at) for skills in allowed):
            unqualified.append((task_id, queue, reviewer_id, at - created_at, allowed))
    assert unqualified == []
    assigned = Counter(task_id for task_id, _, _ in events)
    assert set(assigned.values()) == {1}, "no task was assigned twice (none was requeued)"
    by_task = {task_id: (reviewer_id, _moment(at)) for task_id, reviewer_id, at in events}
    relax_holders = {u["id"] for u in users[40:45]}
    for task_id in relaxed:
        reviewer_id, at = by_task[task_id]
        assert reviewer_id in relax_holders
        assert (at - tasks[task_id][1]).total_seconds() > RELAX
    rows = server.database.query("SELECT status, COUNT(*) FROM tasks GROUP BY status")
    assert dict(rows) == {"completed": 2005}
