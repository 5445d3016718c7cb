"""Property-based: random interleavings of everything that can happen to the
dispatch module keep its invariants (hypothesis stateful testing, real database).

Invariants checked after every step:
- a task has at most one holder, and only an assigned task has one;
- a reviewer holds at most one task;
- no task is pending while a free online reviewer exists (dispatch is eager);
- completed tasks never change; tasks never vanish.
And whenever new tasks are dispatched, they go out in dispatch order (priority,
urgent deadlines within it, then FIFO) to the longest-idle reviewers first.
dispatch_pending runs in batches of 2 here, so a dispatch spans several.
"""
import itertools
from datetime import timedelta

import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, initialize, invariant, precondition,
                                 rule, run_state_machine_as_test)

from qc_live import dispatch, presence
from qc_live.clock import utcnow
from qc_live.database import run_write
from qc_live.dispatch import URGENT_WINDOW, Assigned, TaskSpec
from qc_live.errors import QCError
from qc_live.extensions import db
from qc_live.models import Connection, Role, ServerProcess, Task, TaskEvent, User

LEASE, GRACE = 15, 30
REVIEWERS = 3
dispatch_pending = dispatch.dispatch_pending  # the real one, before the test wraps it
# New tasks: (priority, due in minutes or None); 10 and 20 are within URGENT_WINDOW.
TASK_KINDS = st.lists(st.tuples(st.integers(0, 2), st.sampled_from([None, 10, 20, 120])),
                      min_size=1, max_size=6)


def dispatch_order(task, now):
    """The queue's order, as the README states it."""
    urgent = task.deadline is not None and now < task.deadline <= now + URGENT_WINDOW
    return (-task.priority, not urgent, task.deadline if urgent else task.created_at, task.id)


def machine_for(app):
    counter = itertools.count()

    class Floor(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            s = db.session
            s.rollback()
            for model in (TaskEvent, Task, Connection, ServerProcess):
                s.execute(sa.delete(model))
            s.execute(sa.delete(User).where(User.role == Role.REVIEWER.value))
            s.commit()
            self.process = self._new_process()
            self.reviewers = []
            for i in range(REVIEWERS):
                user = User(username=f"r{i}", password_hash="x", role=Role.REVIEWER.value)
                s.add(user)
                s.commit()
                self.reviewers.append(user.id)
            self.sockets = {}  # sid -> reviewer id
            self.completed = {}  # task id -> frozen fields
            self.task_count = 0

        def _new_process(self):
            pid = f"p{next(counter)}"
            run_write(db.session, presence.register_process, pid, "host", 1)
            return pid

        def _holders(self):
            return sorted(db.session.scalars(sa.select(Task.holder_id)
                                             .where(Task.holder_id.is_not(None))))

        # --- a floor at work, then what people and time do -------------------
        @initialize(kinds=TASK_KINDS, online=st.integers(1, REVIEWERS))
        def open_the_floor(self, kinds, online):
            for who in range(online):
                self.connect(who)
            self.create(kinds)

        @rule(who=st.integers(0, REVIEWERS - 1))
        def connect(self, who):
            rid = self.reviewers[who]
            sid = f"s{next(counter)}"
            user = db.session.get(User, rid)
            run_write(db.session, presence.add_connection, sid, presence.REVIEWER_NAMESPACE,
                      user, self.process, LEASE, GRACE)
            self.sockets[sid] = rid
            dispatch.offer_work(db.session, rid)

        @precondition(lambda self: self.sockets)
        @rule(data=st.data())
        def disconnect(self, data):
            sid = data.draw(st.sampled_from(sorted(self.sockets)))
            run_write(db.session, presence.remove_connection, sid, LEASE)
            del self.sockets[sid]

        @precondition(lambda self: self._holders())
        @rule(data=st.data(), outcome=st.sampled_from(["pass", "fail"]))
        def complete_own(self, data, outcome):
            rid = data.draw(st.sampled_from(self._holders()))
            held = dispatch.current_task(db.session, rid)
            dispatch.complete(db.session, rid, held["id"], outcome)

        @rule(who=st.integers(0, REVIEWERS - 1), task=st.integers(1, 12))
        def complete_any(self, who, task):
            """Someone tries to complete an arbitrary task id: it works only if
            it is theirs; anything else is refused and changes nothing."""
            try:
                dispatch.complete(db.session, self.reviewers[who], task, "pass")
            except QCError:
                pass

        @rule(who=st.integers(0, REVIEWERS - 1), available=st.booleans())
        def set_availability(self, who, available):
            rid = self.reviewers[who]
            online = presence.is_online(db.session, rid, LEASE)
            dispatch.set_availability(db.session, rid, available, rid, claim=online)

        @rule(kinds=TASK_KINDS)
        def create(self, kinds):
            now = utcnow()
            specs = [TaskSpec(name=f"t{self.task_count + i}", payload={}, priority=priority,
                              deadline=now + timedelta(minutes=due_in) if due_in else None)
                     for i, (priority, due_in) in enumerate(kinds)]
            dispatch.create_tasks(db.session, specs, None, LEASE)
            self.task_count += len(specs)

        @rule(task=st.integers(1, 12))
        def release(self, task):
            try:
                dispatch.release(db.session, task, None, LEASE)
            except QCError:
                pass

        @rule(task=st.integers(1, 12))
        def cancel(self, task):
            try:
                dispatch.cancel(db.session, task, None, LEASE)
            except QCError:
                pass

        @rule(task=st.integers(1, 12))
        def deadline_passes(self, task):
            db.session.execute(sa.update(Task).where(Task.id == task)
                               .values(deadline=utcnow() - timedelta(seconds=1)))
            db.session.commit()
            dispatch.expire_overdue(db.session, LEASE)

        @rule(who=st.integers(0, REVIEWERS - 1))
        def grace_runs_out(self, who):
            rid = self.reviewers[who]
            db.session.execute(sa.update(User).where(User.id == rid,
                                                     User.offline_since.is_not(None))
                               .values(offline_since=utcnow() - timedelta(seconds=GRACE + 1)))
            db.session.commit()
            dispatch.requeue_abandoned(db.session, GRACE, LEASE)

        @rule()
        def offers_time_out(self):
            dispatch.take_back_unacknowledged(
                db.session, dispatch.unacknowledged_offers(db.session), LEASE)

        @rule(who=st.integers(0, REVIEWERS - 1))
        def signs_out(self, who):
            rid = self.reviewers[who]
            dispatch.sign_out(db.session, rid, None, LEASE, GRACE)
            self.sockets = {sid: r for sid, r in self.sockets.items() if r != rid}

        @rule()
        def process_crashes_and_restarts(self):
            db.session.execute(sa.update(ServerProcess).where(ServerProcess.id == self.process)
                               .values(heartbeat_at=utcnow() - timedelta(seconds=LEASE + 1)))
            db.session.commit()
            self.process = self._new_process()
            run_write(db.session, presence.reap_dead_processes, LEASE)
            self.sockets.clear()

        # --- what must always hold ------------------------------------------
        @invariant()
        def holders_are_consistent(self):
            db.session.rollback()
            for task in db.session.scalars(sa.select(Task)):
                if task.status == "assigned":
                    assert task.holder_id is not None and task.holder_id == task.assignee_id
                else:
                    assert task.holder_id is None
            per_holder = db.session.execute(
                sa.select(Task.holder_id, sa.func.count()).where(Task.holder_id.is_not(None))
                .group_by(Task.holder_id)).all()
            assert all(n == 1 for _, n in per_holder)

        @invariant()
        def no_pending_task_beside_a_free_online_reviewer(self):
            db.session.rollback()
            pending = db.session.scalar(sa.select(sa.func.count()).where(
                Task.status == "pending"))
            if pending:
                free = dispatch._free_reviewer_ids(db.session, LEASE)
                assert free == [], f"{pending} pending while {free} are free"

        @invariant()
        def completed_tasks_never_change_and_none_vanish(self):
            db.session.rollback()
            rows = db.session.execute(sa.select(Task.id, Task.status, Task.outcome,
                                                Task.assignee_id, Task.completed_at)).all()
            assert len(rows) == self.task_count
            for row in rows:
                if row.status == "completed":
                    frozen = (row.outcome, row.assignee_id, row.completed_at)
                    assert self.completed.setdefault(row.id, frozen) == frozen
            now_completed = {r.id for r in rows if r.status == "completed"}
            assert set(self.completed) <= now_completed

    return Floor


def checked_dispatch_pending(session, lease_seconds, batch=None):
    """dispatch_pending, checked each time the other transitions call it: the
    first pending tasks in dispatch order went to the longest-idle free reviewers."""
    free_before = dispatch._free_reviewer_ids(session, lease_seconds, limit=REVIEWERS)
    outcome = dispatch_pending(session, lease_seconds, batch)
    handed = [x for x in outcome.notices if isinstance(x, Assigned)]
    session.rollback()
    now = utcnow()
    assert [x.reviewer_id for x in handed] == free_before[:len(handed)]
    keys = [dispatch_order(session.get(Task, x.task["id"]), now) for x in handed]
    assert keys == sorted(keys), "handed out in dispatch order"
    if keys:
        pending = session.scalars(sa.select(Task).where(Task.status == "pending"))
        assert all(dispatch_order(t, now) > keys[-1] for t in pending), \
            "a pending task was ahead of one handed out"
    return outcome


def test_random_interleavings_keep_the_dispatch_invariants(app, monkeypatch):
    monkeypatch.setattr(dispatch, "DISPATCH_BATCH", 2)
    monkeypatch.setattr(dispatch, "dispatch_pending", checked_dispatch_pending)
    run_state_machine_as_test(
        machine_for(app),
        settings=settings(max_examples=50, stateful_step_count=25, deadline=None,
                          suppress_health_check=list(HealthCheck)))
