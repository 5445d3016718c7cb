"""The dispatch and presence modules on their own, over a real database."""
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from live import database_kind
from qc_live import dispatch, presence
from qc_live.clock import utcnow
from qc_live.database import run_write
from qc_live.dispatch import TaskSpec
from qc_live.extensions import db
from qc_live.models import Connection, Role, ServerProcess, Task, User

LEASE = 15
GRACE = 30


def reviewer(name):
    user = User(username=name, password_hash="x", role=Role.REVIEWER.value)
    db.session.add(user)
    db.session.commit()
    return user


def connect(user, sid, process_id):
    run_write(db.session, presence.add_connection, sid, presence.REVIEWER_NAMESPACE, user,
              process_id, LEASE, GRACE)


def tasks(*specs):
    return dispatch.create_tasks(db.session, [TaskSpec(**s) for s in specs], None, LEASE).value


def process(process_id, heartbeat):
    db.session.add(ServerProcess(id=process_id, host="h", pid=1, started_at=heartbeat,
                                 heartbeat_at=heartbeat))
    db.session.commit()


def test_dispatch_order_is_priority_then_fifo_and_a_requeued_task_keeps_its_place(app):
    process("p1", utcnow())
    made = tasks({"name": "a", "payload": {}}, {"name": "b", "payload": {}, "priority": 2},
                 {"name": "c", "payload": {}}, {"name": "d", "payload": {}, "priority": 2})
    order = [t["name"] for t in sorted(made, key=lambda t: (-t["priority"], t["id"]))]
    alice = reviewer("alice")
    connect(alice, "s1", "p1")
    got = dispatch.offer_work(db.session, alice.id).value
    assert got["name"] == order[0] == "b"
    dispatch.release(db.session, got["id"], None, LEASE)  # back in, ahead of "d"
    assert dispatch.current_task(db.session, alice.id)["name"] == "b"


def test_the_database_refuses_a_second_task_for_one_reviewer(app):
    alice = reviewer("alice")
    first, second = tasks({"name": "a", "payload": {}}, {"name": "b", "payload": {}})
    db.session.execute(sa.update(Task).where(Task.id == first["id"])
                       .values(status="assigned", holder_id=alice.id, assignee_id=alice.id))
    db.session.commit()
    with pytest.raises(IntegrityError):
        db.session.execute(sa.update(Task).where(Task.id == second["id"])
                           .values(status="assigned", holder_id=alice.id))
        db.session.commit()
    db.session.rollback()


def test_a_dead_process_loses_its_sockets_and_its_reviewers_tasks_come_back(app):
    died = utcnow() - timedelta(seconds=LEASE + 5)
    process("dead", died)
    process("alive", utcnow())
    alice, bob = reviewer("alice"), reviewer("bob")
    connect(alice, "a1", "dead")
    connect(bob, "b1", "dead")
    connect(bob, "b2", "alive")  # bob has another tab on a live process
    made = tasks({"name": "x", "payload": {}})
    # alice has waited longest, but her only socket is on a process whose lease
    # ran out: she is not online, so bob gets the task.
    assert made and dispatch.current_task(db.session, bob.id)["id"] == made[0]["id"]

    reaped = run_write(db.session, presence.reap_dead_processes, LEASE)
    assert reaped == ["dead"]
    sids = set(db.session.scalars(sa.select(Connection.sid)))
    assert sids == {"b2"}
    db.session.refresh(alice)
    db.session.refresh(bob)
    assert alice.offline_since == died  # grace counts from the last sign of life
    assert bob.offline_since is None


def test_grace_expiry_requeues_only_tasks_of_reviewers_gone_longer_than_grace(app):
    process("p", utcnow())
    alice, bob = reviewer("alice"), reviewer("bob")
    connect(alice, "a1", "p")
    connect(bob, "b1", "p")
    t1, t2 = tasks({"name": "1", "payload": {}}, {"name": "2", "payload": {}})
    held = {u.id: dispatch.current_task(db.session, u.id)["id"] for u in (alice, bob)}
    run_write(db.session, presence.remove_connection, "a1", LEASE)
    run_write(db.session, presence.remove_connection, "b1", LEASE)
    # alice left 60 s ago, bob just now
    db.session.execute(sa.update(User).where(User.id == alice.id)
                       .values(offline_since=utcnow() - timedelta(seconds=60)))
    db.session.commit()
    outcome = dispatch.requeue_abandoned(db.session, grace_seconds=30, lease_seconds=LEASE)
    assert outcome.value == [held[alice.id]]
    assert db.session.get(Task, held[alice.id]).status == "pending"
    assert db.session.get(Task, held[bob.id]).holder_id == bob.id


def test_completion_by_someone_else_or_twice_is_refused_and_changes_nothing(app):
    from qc_live.errors import Conflict, Forbidden, NotFound
    process("p", utcnow())
    alice, bob = reviewer("alice"), reviewer("bob")
    connect(alice, "a1", "p")
    [task] = tasks({"name": "1", "payload": {}})
    with pytest.raises(Forbidden):
        dispatch.complete(db.session, bob.id, task["id"])
    with pytest.raises(NotFound):
        dispatch.complete(db.session, alice.id, 999_999)
    assert dispatch.complete(db.session, alice.id, task["id"], "pass").value["task"][
        "status"] == "completed"
    with pytest.raises(Conflict):
        dispatch.complete(db.session, alice.id, task["id"], "fail")
    row = db.session.get(Task, task["id"])
    db.session.refresh(row)
    assert (row.status, row.outcome) == ("completed", "pass")


def test_release_rechecks_the_task_under_its_lock(app, monkeypatch):
    """Between release's first read and its lock, the holder completes the task:
    the release must see that and refuse, not put a completed task back."""
    from qc_live.errors import Conflict
    process("p", utcnow())
    alice = reviewer("alice")
    connect(alice, "a1", "p")
    [task] = tasks({"name": "1", "payload": {}})
    original = dispatch._lock_reviewer

    def completed_meanwhile(session, reviewer_id, skip_locked=False):
        session.connection().execute(sa.text(
            "UPDATE tasks SET status='completed', holder_id=NULL, outcome='pass' "
            "WHERE id=:id"), {"id": task["id"]})
        return original(session, reviewer_id, skip_locked)

    monkeypatch.setattr(dispatch, "_lock_reviewer", completed_meanwhile)
    with pytest.raises(Conflict) as refused:
        dispatch.release(db.session, task["id"], None, LEASE)
    assert refused.value.code == "task_changed"
    # (the simulated completion shared the refused transaction, so it rolled back too)


def test_a_reload_keeps_the_idle_place_a_return_after_logout_does_not(app):
    process("p", utcnow())
    alice, bob = reviewer("alice"), reviewer("bob")
    connect(alice, "a1", "p")
    connect(bob, "b1", "p")
    run_write(db.session, presence.remove_connection, "a1", LEASE)
    connect(alice, "a2", "p")  # a reload: alice has still waited longest
    [task] = tasks({"name": "1", "payload": {}})
    assert dispatch.current_task(db.session, alice.id)["id"] == task["id"]
    dispatch.complete(db.session, alice.id, task["id"])
    # bob logs out (offline past the grace) and comes back: end of the line
    run_write(db.session, presence.remove_connection, "b1", LEASE)
    db.session.execute(sa.update(User).where(User.id == bob.id)
                       .values(offline_since=utcnow() - timedelta(seconds=GRACE + 1)))
    db.session.commit()
    connect(bob, "b2", "p")
    [task2] = tasks({"name": "2", "payload": {}})
    assert dispatch.current_task(db.session, alice.id)["id"] == task2["id"]


def test_the_clock_follows_the_database_not_this_host(app, monkeypatch):
    from qc_live import clock
    from qc_live.database import database_utc
    monkeypatch.setattr(clock, "_offset", timedelta(0))
    ahead = clock._local() + timedelta(seconds=100)
    clock.sync(lambda: ahead)  # a database whose clock is 100 s ahead of ours
    assert abs((clock.utcnow() - clock._local()).total_seconds() - 100) < 0.5
    clock.sync(lambda: None)  # SQLite: nothing to correct, the offset is kept
    assert abs((clock.utcnow() - clock._local()).total_seconds() - 100) < 0.5
    monkeypatch.setattr(clock, "_offset", timedelta(0))
    measured = clock.sync(lambda: database_utc(db.session))
    remote = database_utc(db.session)
    if remote is not None:  # MariaDB: after syncing we agree with it to well under 1 s
        assert abs((clock.utcnow() - remote).total_seconds()) < 1
    else:
        assert measured == timedelta(0)


def test_batched_acks_count_only_for_the_reviewer_still_holding_the_task(app):
    process("p1", utcnow())
    alice, bob = reviewer("alice"), reviewer("bob")
    connect(alice, "s1", "p1")
    connect(bob, "s2", "p1")
    tasks({"name": "a", "payload": {}}, {"name": "b", "payload": {}})
    held = {r.id: dispatch.current_task(db.session, r.id)["id"] for r in (alice, bob)}
    # Bob's offer went back to the queue before his ack arrived; alice's ack
    # came twice (two tabs): one write for her, none for the task Bob lost.
    dispatch.set_availability(db.session, bob.id, False, bob.id, claim=False)
    dispatch.release(db.session, held[bob.id], None, LEASE)
    stale = run_write(db.session, dispatch.acknowledge_many,
                      [(held[alice.id], alice.id), (held[bob.id], bob.id),
                       (held[alice.id], alice.id)])
    assert stale == 1
    acked = dict(db.session.execute(sa.select(Task.id, Task.acked_at)).all())
    assert acked[held[alice.id]] is not None
    assert all(at is None for task_id, at in acked.items() if task_id != held[alice.id])
    assert run_write(db.session, dispatch.acknowledge_many, [(held[alice.id], alice.id)]) == 0


def test_completing_hands_over_the_next_task_in_the_same_transaction_as_to_dict_shows_it(app):
    process("p1", utcnow())
    alice = reviewer("alice")
    connect(alice, "s1", "p1")
    first, second = tasks({"name": "a", "payload": {"k": 1}, "external_id": "x-1"},
                          {"name": "b", "payload": {}, "priority": 0})
    assert dispatch.current_task(db.session, alice.id)["id"] == first["id"]
    result = dispatch.complete(db.session, alice.id, first["id"], "pass", "fine")
    db.session.expire_all()
    assert result.value["task"] == db.session.get(Task, first["id"]).to_dict()
    assert result.value["next_task"] == db.session.get(Task, second["id"]).to_dict()
    assert result.notices == [dispatch.Assigned(alice.id, result.value["next_task"])]
    kinds = db.session.scalars(sa.select(dispatch.TaskEvent.kind)
                               .order_by(dispatch.TaskEvent.id)).all()
    assert kinds == ["created", "created", "assigned", "completed", "assigned"]


@pytest.mark.skipif(database_kind() != "mysql", reason="row locks: SQLite serialises writers")
def test_a_claim_that_takes_an_urgent_task_leaves_the_fifo_head_to_concurrent_claims(app):
    soon = utcnow() + timedelta(minutes=5)
    head, _second, urgent = tasks({"name": "head", "payload": {}},
                                  {"name": "second", "payload": {}},
                                  {"name": "urgent", "payload": {}, "deadline": soon})
    db.session.connection()
    picked = dispatch._next_pending_row(db.session, utcnow())  # holds its locks: no commit yet
    assert picked.id == urgent["id"]
    with Session(db.engine) as other:
        # A concurrent claim, skipping rows locked by the first: the head is free.
        assert other.execute(dispatch._QUEUE_HEAD, {"now": utcnow()}).first().id == head["id"]
        other.rollback()
    db.session.rollback()


@pytest.mark.skipif(database_kind() != "mysql", reason="row locks: SQLite serialises writers")
def test_dispatch_looks_past_queue_head_tasks_that_concurrent_claims_hold(app):
    process("p1", utcnow())
    alice = reviewer("alice")
    dispatch.set_availability(db.session, alice.id, False, alice.id, claim=False)
    connect(alice, "s1", "p1")
    first, second = tasks({"name": "first", "payload": {}}, {"name": "second", "payload": {}})
    run_write(db.session, lambda s: s.execute(sa.update(User).where(User.id == alice.id)
                                               .values(available=True)))
    with Session(db.engine) as other:
        # Another transaction is claiming the head of the queue right now.
        other.execute(sa.select(Task.id).where(Task.id == first["id"]).with_for_update())
        outcome = dispatch.dispatch_pending(db.session, LEASE)
        other.rollback()
    assert [n.task["id"] for n in outcome.notices] == [second["id"]]
    assert dispatch.current_task(db.session, alice.id)["id"] == second["id"]
