"""The dispatch core on its own (dispatcher, lifecycle, queue, presence, sweep),
over a real database, through the `floor` fixture."""
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from live import database_kind
from qc_live import acks, lifecycle, queue, sql, sweep
from qc_live.clock import utcnow
from qc_live.database import run_write
from qc_live.errors import Conflict, Forbidden, NotFound
from qc_live.extensions import db
from qc_live.models import Connection, Task, TaskEvent, User
from qc_live.notices import Assigned


def test_dispatch_order_is_priority_then_fifo_and_a_requeued_task_keeps_its_place(floor):
    floor.process("p1")
    made = floor.tasks({"name": "a"}, {"name": "b", "priority": 2}, {"name": "c"},
                       {"name": "d", "priority": 2})
    order = [t["name"] for t in sorted(made, key=lambda t: (-t["priority"], t["id"]))]
    alice = floor.reviewer("alice")
    got = floor.dispatcher.connect(db.session, "s1", alice.id, alice.token_version, "p1").value
    assert got["name"] == order[0] == "b"
    floor.dispatcher.release(db.session, got["id"], None)  # back in, ahead of "d"
    assert floor.held(alice.id)["name"] == "b"


def test_the_database_refuses_a_second_task_for_one_reviewer(floor):
    alice = floor.reviewer("alice")
    first, second = floor.tasks({"name": "a"}, {"name": "b"})
    db.session.execute(sa.update(Task).where(Task.id == first["id"])
                       .values(status="assigned", holder_id=alice.id, assignee_id=alice.id))
    db.session.commit()
    with pytest.raises(IntegrityError):
        db.session.execute(sa.update(Task).where(Task.id == second["id"])
                           .values(status="assigned", holder_id=alice.id))
        db.session.commit()
    db.session.rollback()


def test_a_dead_process_loses_its_sockets_and_its_reviewers_tasks_come_back(floor):
    died = utcnow() - timedelta(seconds=floor.lease + 5)
    floor.process("dead", died)
    floor.process("alive")
    alice, bob = floor.reviewer("alice"), floor.reviewer("bob")
    floor.socket(alice, "a1", "dead")
    floor.socket(bob, "b1", "dead")
    floor.socket(bob, "b2", "alive")  # bob has another tab on a live process
    made = floor.tasks({"name": "x"})
    # alice has waited longest, but her only socket is on a process whose lease
    # ran out: she is not online, so bob gets the task.
    assert made and floor.held(bob.id)["id"] == made[0]["id"]

    reaped = run_write(db.session, sweep.reap_dead_processes, floor.lease)
    assert reaped == ["dead"]
    sids = set(db.session.scalars(sa.select(Connection.sid)))
    assert sids == {"b2"}
    db.session.refresh(alice)
    db.session.refresh(bob)
    assert alice.offline_since == died  # grace counts from the last sign of life
    assert bob.offline_since is None


def test_grace_expiry_requeues_only_tasks_of_reviewers_gone_longer_than_grace(floor):
    floor.process("p")
    alice, bob = floor.reviewer("alice"), floor.reviewer("bob")
    floor.socket(alice, "a1", "p")
    floor.socket(bob, "b1", "p")
    floor.tasks({"name": "1"}, {"name": "2"})
    held = {u.id: floor.held(u.id)["id"] for u in (alice, bob)}
    floor.socket_gone("a1")
    floor.socket_gone("b1")
    # alice left 60 s ago (past the 30 s grace), bob just now
    db.session.execute(sa.update(User).where(User.id == alice.id)
                       .values(offline_since=utcnow() - timedelta(seconds=60)))
    db.session.commit()
    outcome = sweep.requeue_abandoned(floor.dispatcher, db.session)
    assert outcome.value == [held[alice.id]]
    assert db.session.get(Task, held[alice.id]).status == "pending"
    assert db.session.get(Task, held[bob.id]).holder_id == bob.id


def test_completion_by_someone_else_or_twice_is_refused_and_changes_nothing(floor):
    floor.process("p")
    alice, bob = floor.reviewer("alice"), floor.reviewer("bob")
    floor.socket(alice, "a1", "p")
    [task] = floor.tasks({"name": "1"})
    complete = floor.dispatcher.complete
    with pytest.raises(Forbidden):
        complete(db.session, bob.id, task["id"])
    with pytest.raises(NotFound):
        complete(db.session, alice.id, 999_999)
    assert complete(db.session, alice.id, task["id"], "pass").value["task"][
        "status"] == "completed"
    with pytest.raises(Conflict):
        complete(db.session, alice.id, task["id"], "fail")
    row = db.session.get(Task, task["id"])
    db.session.refresh(row)
    assert (row.status, row.outcome) == ("completed", "pass")


def test_release_rechecks_the_task_under_its_lock(floor, monkeypatch):
    """Between release's first read and its lock, the holder completes the task:
    the release must see that and refuse, not put a completed task back."""
    floor.process("p")
    alice = floor.reviewer("alice")
    floor.socket(alice, "a1", "p")
    [task] = floor.tasks({"name": "1"})
    original = lifecycle.lock_reviewer

    def completed_meanwhile(w, reviewer_id, wait=True):
        w.conn.execute(sa.text("UPDATE tasks SET status='completed', holder_id=NULL, "
                               "outcome='pass' WHERE id=:id"), {"id": task["id"]})
        return original(w, reviewer_id, wait)

    monkeypatch.setattr(lifecycle, "lock_reviewer", completed_meanwhile)
    with pytest.raises(Conflict) as refused:
        floor.dispatcher.release(db.session, task["id"], None)
    assert refused.value.code == "task_changed"
    # (the simulated completion shared the refused transaction, so it rolled back too)


def test_a_reload_keeps_the_idle_place_a_return_after_logout_does_not(floor):
    floor.process("p")
    alice, bob = floor.reviewer("alice"), floor.reviewer("bob")
    floor.socket(alice, "a1", "p")
    floor.socket(bob, "b1", "p")
    floor.socket_gone("a1")
    floor.socket(alice, "a2", "p")  # a reload: alice has still waited longest
    [task] = floor.tasks({"name": "1"})
    assert floor.held(alice.id)["id"] == task["id"]
    floor.dispatcher.complete(db.session, alice.id, task["id"])
    # bob logs out (offline past the grace) and comes back: end of the line
    floor.socket_gone("b1")
    db.session.execute(sa.update(User).where(User.id == bob.id)
                       .values(offline_since=utcnow() - timedelta(seconds=floor.grace + 1)))
    db.session.commit()
    floor.socket(bob, "b2", "p")
    [task2] = floor.tasks({"name": "2"})
    assert floor.held(alice.id)["id"] == task2["id"]


def test_the_clock_follows_the_database_not_this_host(floor):
    from qc_live import clock, state
    from qc_live.database import database_utc
    app_clock = state.clock()
    ahead = clock._local() + timedelta(seconds=100)
    app_clock.sync(lambda: ahead)  # a database whose clock is 100 s ahead of ours
    assert abs((clock.utcnow() - clock._local()).total_seconds() - 100) < 0.5
    app_clock.sync(lambda: None)  # SQLite: nothing to correct, the offset is kept
    assert abs((clock.utcnow() - clock._local()).total_seconds() - 100) < 0.5
    app_clock.offset = timedelta(0)
    measured = app_clock.sync(lambda: database_utc(db.session))
    remote = database_utc(db.session)
    if remote is not None:  # MariaDB: after syncing we agree with it to well under 1 s
        assert abs((clock.utcnow() - remote).total_seconds()) < 1
    else:
        assert measured == timedelta(0)


def test_batched_acks_count_only_for_the_reviewer_still_holding_the_task(floor):
    floor.process("p1")
    alice, bob = floor.reviewer("alice"), floor.reviewer("bob")
    floor.socket(alice, "s1", "p1")
    floor.socket(bob, "s2", "p1")
    floor.tasks({"name": "a"}, {"name": "b"})
    held = {r.id: floor.held(r.id)["id"] for r in (alice, bob)}
    # Bob's offer went back to the queue before his ack arrived; alice's ack
    # came twice (two tabs): one write for her, none for the task Bob lost.
    floor.dispatcher.set_availability(db.session, bob.id, False, claim=False)
    floor.dispatcher.release(db.session, held[bob.id], None)
    stale = run_write(db.session, acks.acknowledge_many,
                      [(held[alice.id], alice.id), (held[bob.id], bob.id),
                       (held[alice.id], alice.id)])
    assert stale == 1
    acked = dict(db.session.execute(sa.select(Task.id, Task.acked_at)).all())
    assert acked[held[alice.id]] is not None
    assert all(at is None for task_id, at in acked.items() if task_id != held[alice.id])
    assert run_write(db.session, acks.acknowledge_many, [(held[alice.id], alice.id)]) == 0


def test_completing_hands_over_the_next_task_in_the_same_transaction_as_its_row_shows_it(
        floor):
    floor.process("p1")
    alice = floor.reviewer("alice")
    floor.socket(alice, "s1", "p1")
    first, second = floor.tasks({"name": "a", "payload": {"k": 1}, "external_id": "x-1"},
                                {"name": "b", "priority": 0})
    assert floor.held(alice.id)["id"] == first["id"]
    result = floor.dispatcher.complete(db.session, alice.id, first["id"], "pass", "fine")
    assert result.value["task"] == floor.task_row(first["id"])
    assert result.value["next_task"] == floor.task_row(second["id"])
    assert result.notices == [Assigned(alice.id, result.value["next_task"])]
    kinds = db.session.scalars(sa.select(TaskEvent.kind).order_by(TaskEvent.id)).all()
    assert kinds == ["created", "created", "assigned", "completed", "assigned"]


@pytest.mark.skipif(database_kind() != "mysql", reason="row locks: SQLite serialises writers")
def test_a_claim_that_takes_an_urgent_task_leaves_the_fifo_head_to_concurrent_claims(floor):
    soon = utcnow() + timedelta(minutes=5)
    alice = floor.reviewer("alice")
    head, _second, urgent = floor.tasks({"name": "head"}, {"name": "second"},
                                        {"name": "urgent", "deadline": soon})
    w = lifecycle.Work(db.session)
    picked = queue.next_task(w, alice.id)  # holds its locks: no commit yet
    assert picked.id == urgent["id"]
    with Session(db.engine) as other:
        # A concurrent claim, skipping rows locked by the first: the head is free.
        assert other.execute(sql.QUEUE_HEAD, {"now": utcnow()}).first().id == head["id"]
        other.rollback()
    db.session.rollback()


@pytest.mark.skipif(database_kind() != "mysql", reason="row locks: SQLite serialises writers")
def test_dispatch_looks_past_queue_head_tasks_that_concurrent_claims_hold(floor):
    floor.process("p1")
    alice = floor.reviewer("alice")
    floor.dispatcher.set_availability(db.session, alice.id, False, claim=False)
    floor.socket(alice, "s1", "p1")
    first, second = floor.tasks({"name": "first"}, {"name": "second"})
    run_write(db.session, lambda s: s.execute(sa.update(User).where(User.id == alice.id)
                                               .values(available=True)))
    with Session(db.engine) as other:
        # Another transaction is claiming the head of the queue right now.
        other.execute(sa.select(Task.id).where(Task.id == first["id"]).with_for_update())
        outcome = floor.dispatcher.dispatch_pending(db.session)
        other.rollback()
    assert [n.task["id"] for n in outcome.notices] == [second["id"]]
    assert floor.held(alice.id)["id"] == second["id"]


def test_the_clock_never_steps_back_when_a_sync_measures_a_little_less(floor):
    """Each heartbeat's sync measures the database's offset a little
    differently; a few milliseconds less must not make a later timestamp
    earlier (a completion before an older one, a new task ahead in FIFO)."""
    from qc_live import clock, state
    app_clock = state.clock()
    base = clock._local()
    app_clock.sync(lambda: clock._local() + timedelta(milliseconds=50))
    first = clock.utcnow()
    app_clock.sync(lambda: clock._local() + timedelta(milliseconds=5))  # 45 ms less
    second = clock.utcnow()
    assert second >= first
    # A real correction (more than a second back) is taken, not held.
    app_clock.sync(lambda: clock._local() - timedelta(seconds=30))
    assert clock.utcnow() < base
