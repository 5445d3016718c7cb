"""dispatch_pending at the size of a bulk import: hundreds of tasks to hundreds
of idle reviewers, in several set-based batches, over a real database."""
import random
from datetime import timedelta

import pytest
import sqlalchemy as sa

from qc_live import database, state
from qc_live.queue import DISPATCH_BATCH, free_reviewers
from qc_live.clock import utcnow
from qc_live.extensions import db
from qc_live.lifecycle import TaskSpec
from qc_live.models import Connection, Role, ServerProcess, Task, TaskEvent, User, task_dict
from qc_live.notices import Assigned
from qc_live.presence import REVIEWER_NAMESPACE

LEASE = 15


def floor(count, seed=6):
    """`count` reviewers online on a live process, idle since distinct times in
    an order unrelated to their ids. Returns their ids, longest idle first."""
    now = utcnow()
    db.session.add(ServerProcess(id="p1", host="h", pid=1, started_at=now, heartbeat_at=now))
    waited = list(range(count))
    random.Random(seed).shuffle(waited)
    users = [User(username=f"r{i}", password_hash="x", role=Role.REVIEWER.value,
                  idle_since=now - timedelta(seconds=10 + waited[i])) for i in range(count)]
    db.session.add_all(users)
    db.session.flush()
    db.session.add_all(Connection(sid=f"s{u.id}", namespace=REVIEWER_NAMESPACE, user_id=u.id,
                                  process_id="p1", connected_at=now) for u in users)
    db.session.commit()
    return [u.id for u in sorted(users, key=lambda u: (u.idle_since, u.id))]


def create(specs):
    return state.dispatcher().create_tasks(db.session, specs, None)


def held(reviewer_id):
    return state.dispatcher().current_task(db.session, reviewer_id)


def test_a_bulk_creation_reaches_every_idle_reviewer_once_in_queue_order(app, monkeypatch):
    reviewers = floor(650)
    # The longest idle of all cannot take work: one paused, one already
    # holding a task, one without a live socket. Dispatch must pass them by.
    paused, holder, gone = reviewers[:3]
    db.session.execute(sa.update(User).where(User.id == paused).values(available=False))
    db.session.execute(sa.delete(Connection).where(Connection.user_id == gone))
    db.session.commit()
    first = create([TaskSpec(name="held", payload={})]).value[0]
    assert held(holder)["id"] == first["id"]
    free = reviewers[3:]

    yields = []

    def yield_to_loop():
        # Between transactions only: a yield inside one would let other
        # writers wait on SQLite's lock, or hold row locks across a switch.
        yields.append(db.session().in_transaction())
    monkeypatch.setattr(database, "yield_to_loop", yield_to_loop)

    # Two priorities, so queue order is not simply creation order.
    specs = [TaskSpec(name=f"t{i}", payload={"n": i}, priority=1 if i % 3 == 0 else 0)
             for i in range(700)]
    outcome = create(specs)

    created = {t["name"]: t for t in outcome.value}
    queue = sorted(outcome.value, key=lambda t: (-t["priority"], t["created_at"], t["id"]))
    assert len(free) == 647 > DISPATCH_BATCH
    assert yields and not any(yields), "more than one batch, with yields between them"

    notices = outcome.notices
    assert all(isinstance(n, Assigned) and not n.resent for n in notices)
    # The first task in queue order to the longest-idle free reviewer, and so on.
    assert [(n.reviewer_id, n.task["id"]) for n in notices] == \
        [(r, t["id"]) for r, t in zip(free, queue)]

    db.session.rollback()
    rows = {t.id: t for t in db.session.execute(sa.select(Task.__table__))}
    for notice in notices:
        # The pushes carry exactly what a read of the task gives.
        assert notice.task == task_dict(rows[notice.task["id"]])
        assert notice.task["status"] == "assigned"
        assert notice.task["assignee_id"] == notice.reviewer_id
    holders = [t.holder_id for t in rows.values() if t.holder_id is not None]
    assert len(holders) == len(set(holders)) == 648  # 647 new holders + the earlier one
    assert paused not in holders and gone not in holders
    assert held(holder)["id"] == first["id"]
    still_pending = {t.id for t in rows.values() if t.status == "pending"}
    assert still_pending == {t["id"] for t in queue[len(free):]}
    assert len(still_pending) == 53 and created["t0"]["id"] not in still_pending

    assigned_events = db.session.execute(
        sa.select(TaskEvent.task_id, TaskEvent.reviewer_id).where(TaskEvent.kind == "assigned")
    ).all()
    assert sorted(assigned_events) == sorted(
        [(first["id"], holder)] + [(n.task["id"], n.reviewer_id) for n in notices])


@pytest.mark.parametrize("batch", [1, 2, 500])
def test_urgent_tasks_go_first_within_their_priority_and_overdue_ones_never(app, batch,
                                                                            monkeypatch):
    now = utcnow()
    minutes = lambda m: now + timedelta(minutes=m)  # noqa: E731
    made = create([
        TaskSpec(name="fifo-0a", payload={}),
        TaskSpec(name="fifo-0b", payload={}),
        TaskSpec(name="fifo-1", payload={}, priority=1),
        TaskSpec(name="urgent-0-late", payload={}, deadline=minutes(20)),
        TaskSpec(name="urgent-0-soon", payload={}, deadline=minutes(10)),
        TaskSpec(name="urgent-1", payload={}, priority=1, deadline=minutes(25)),
        TaskSpec(name="due-later-0", payload={}, deadline=minutes(120)),
        TaskSpec(name="overdue-2", payload={}, priority=2),
    ]).value
    ids = {t["name"]: t["id"] for t in made}
    db.session.execute(sa.update(Task).where(Task.id == ids["overdue-2"])
                       .values(deadline=now - timedelta(seconds=1)))
    db.session.commit()
    reviewers = floor(8)  # one more reviewer than tasks that may go out

    dispatcher = state.dispatcher()
    monkeypatch.setattr(dispatcher, "batch", batch)
    outcome = dispatcher.dispatch_pending(db.session)

    expected = ["urgent-1", "fifo-1", "urgent-0-soon", "urgent-0-late", "fifo-0a", "fifo-0b",
                "due-later-0"]
    assert [(n.reviewer_id, n.task["name"]) for n in outcome.notices] == \
        list(zip(reviewers, expected))
    db.session.rollback()
    assert db.session.get(Task, ids["overdue-2"]).status == "pending"
    # The last is free, but qualified for nothing pending: only the overdue task is left.
    assert free_reviewers(db.session, LEASE, queue="default") == [reviewers[-1]]
    assert free_reviewers(db.session, LEASE) == []


def test_an_urgent_task_created_last_still_goes_to_the_longest_idle(app):
    reviewers = floor(600)
    specs = [TaskSpec(name=f"t{i}", payload={}) for i in range(600)]
    specs.append(TaskSpec(name="urgent", payload={}, deadline=utcnow() + timedelta(minutes=5)))
    outcome = create(specs)
    first = outcome.notices[0]
    assert (first.reviewer_id, first.task["name"]) == (reviewers[0], "urgent")
    assert [n.task["name"] for n in outcome.notices[1:]] == [f"t{i}" for i in range(599)]
