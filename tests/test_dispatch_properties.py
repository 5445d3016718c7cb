"""Property-based: random interleavings of everything that can happen on a floor
keep the dispatch core's invariants (hypothesis stateful testing, real
database), driving the dispatcher, the sweep and presence directly.

Invariants checked after every step:
- a task has at most one holder, and only an assigned task has one;
- a reviewer holds at most one task;
- no task is pending while a free online reviewer exists (dispatch is eager);
- completed tasks never change; tasks never vanish.
And whenever new tasks are dispatched, they go out in dispatch order (priority,
urgent deadlines within it, then FIFO) to the longest-idle reviewers first.
dispatch_pending runs in batches of 2 here, so a dispatch spans several.

The machine was checked against deliberate bugs (`test_the_machine_finds...`):
a completion that does not claim the next task, and a cancel (or expiry) that
leaves the holder set. Both are found, every run.
"""
import itertools
from datetime import timedelta

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, initialize, invariant, precondition,
                                 rule, run_state_machine_as_test)

from qc_live import lifecycle, presence, queue, sql, state, sweep
from qc_live.clock import utcnow
from qc_live.database import run_write
from qc_live.dispatch import Dispatcher
from qc_live.errors import QCError
from qc_live.extensions import db
from qc_live.lifecycle import TaskSpec
from qc_live.models import Connection, Role, ServerProcess, Skill, Task, TaskEvent, User
from qc_live.notices import Assigned
from qc_live.queue import URGENT_WINDOW

LEASE, GRACE = 15, 30  # the app fixture's settings
REVIEWERS = 3
# New tasks: (priority, due in minutes or None); 10 and 20 are within URGENT_WINDOW.
TASK_KINDS = st.lists(st.tuples(st.integers(0, 2), st.sampled_from([None, 10, 20, 120])),
                      min_size=1, max_size=6)


def dispatch_order(task, now):
    """The queue's order, as the README states it."""
    urgent = task.deadline is not None and now < task.deadline <= now + URGENT_WINDOW
    return (-task.priority, not urgent, task.deadline if urgent else task.created_at, task.id)


def machine_for(app):
    counter = itertools.count()
    dispatcher = state.dispatcher()

    class Floor(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            s = db.session
            s.rollback()
            for model in (TaskEvent, Task, Connection, ServerProcess, Skill):
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
            self.base = None  # the id before this example's first task (ids keep growing)

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
            version = db.session.scalar(sa.select(User.token_version).where(User.id == rid))
            dispatcher.connect(db.session, sid, rid, version, self.process)
            self.sockets[sid] = rid

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
            held = dispatcher.current_task(db.session, rid)
            dispatcher.complete(db.session, rid, held["id"], outcome)

        @rule(who=st.integers(0, REVIEWERS - 1), task=st.integers(1, 12))
        def complete_any(self, who, task):
            """Someone tries to complete an arbitrary task id: it works only if
            it is theirs; anything else is refused and changes nothing."""
            try:
                dispatcher.complete(db.session, self.reviewers[who], self._id(task), "pass")
            except QCError:
                pass

        @rule(who=st.integers(0, REVIEWERS - 1), available=st.booleans())
        def set_availability(self, who, available):
            rid = self.reviewers[who]
            online = presence.is_online(db.session, rid, LEASE)
            dispatcher.set_availability(db.session, rid, available, claim=online)

        @rule(kinds=TASK_KINDS)
        def create(self, kinds):
            now = utcnow()
            specs = [TaskSpec(name=f"t{self.task_count + i}", payload={}, priority=priority,
                              deadline=now + timedelta(minutes=due_in) if due_in else None)
                     for i, (priority, due_in) in enumerate(kinds)]
            made = dispatcher.create_tasks(db.session, specs, None).value
            if self.base is None:
                self.base = made[0]["id"] - 1
            self.task_count += len(specs)

        def _id(self, n):
            """This example's n-th task id (n past the last: an id no task has)."""
            return (self.base or 0) + n

        @rule(task=st.integers(1, 12))
        def release(self, task):
            try:
                dispatcher.release(db.session, self._id(task), None)
            except QCError:
                pass

        @rule(task=st.integers(1, 12))
        def cancel(self, task):
            try:
                dispatcher.cancel(db.session, self._id(task), None)
            except QCError:
                pass

        @rule(task=st.integers(1, 12))
        def deadline_passes(self, task):
            db.session.execute(sa.update(Task).where(Task.id == self._id(task))
                               .values(deadline=utcnow() - timedelta(seconds=1)))
            db.session.commit()
            sweep.expire_overdue(dispatcher, db.session)

        @rule(who=st.integers(0, REVIEWERS - 1))
        def grace_runs_out(self, who):
            rid = self.reviewers[who]
            db.session.execute(sa.update(User).where(User.id == rid,
                                                     User.offline_since.is_not(None))
                               .values(offline_since=utcnow() - timedelta(seconds=GRACE + 1)))
            db.session.commit()
            sweep.requeue_abandoned(dispatcher, db.session)

        @rule()
        def offers_time_out(self):
            offers = db.session.execute(
                sa.select(Task.id, Task.holder_id, Task.assigned_at)
                .where(Task.status == "assigned", Task.acked_at.is_(None))).all()
            sweep.take_back_unacknowledged(dispatcher, db.session, offers)

        @rule(who=st.integers(0, REVIEWERS - 1))
        def signs_out(self, who):
            rid = self.reviewers[who]
            from qc_live import accounts
            accounts.sign_out(dispatcher, db.session, rid, None)
            self.sockets = {sid: r for sid, r in self.sockets.items() if r != rid}

        @rule()
        def process_crashes_and_restarts(self):
            db.session.execute(sa.update(ServerProcess).where(ServerProcess.id == self.process)
                               .values(heartbeat_at=utcnow() - timedelta(seconds=LEASE + 1)))
            db.session.commit()
            self.process = self._new_process()
            run_write(db.session, sweep.reap_dead_processes, LEASE)
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
                free = queue.free_reviewers(db.session, LEASE)
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


def checked(dispatch_pending):
    """dispatch_pending, checked each time the other transitions call it: the
    first pending tasks in dispatch order went to the longest-idle free reviewers."""
    def check(session):
        free_before = queue.free_reviewers(session, LEASE, limit=REVIEWERS)
        outcome = dispatch_pending(session)
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
    return check


def run_machine(app, monkeypatch, **settings_):
    dispatcher = state.dispatcher()
    monkeypatch.setattr(dispatcher, "batch", 2)
    monkeypatch.setattr(dispatcher, "dispatch_pending", checked(dispatcher.dispatch_pending))
    run_state_machine_as_test(
        machine_for(app),
        settings=settings(max_examples=50, stateful_step_count=25, deadline=None,
                          suppress_health_check=list(HealthCheck), **settings_))


def test_random_interleavings_keep_the_dispatch_invariants(app, monkeypatch):
    run_machine(app, monkeypatch)


def _completion_does_not_claim(monkeypatch):
    finishing = []
    finish, claim = lifecycle.finish, Dispatcher._claim

    def finish_and_note(w, row, *args):
        finishing.append(row.holder_id)
        return finish(w, row, *args)

    def claim_unless_just_finished(self, w, reviewer_id):
        if finishing and finishing.pop() == reviewer_id:
            return None
        return claim(self, w, reviewer_id)
    monkeypatch.setattr(lifecycle, "finish", finish_and_note)
    monkeypatch.setattr(Dispatcher, "_claim", claim_unless_just_finished)


def _end_keeps_the_holder(monkeypatch):
    monkeypatch.setattr(sql, "END", sa.update(sql.tasks).where(
        sql.tasks.c.id == sa.bindparam("task_id")).values(
        status=sa.bindparam("status"), updated_at=sa.bindparam("now")))


@pytest.mark.parametrize("bug", [_completion_does_not_claim, _end_keeps_the_holder],
                         ids=["completion-does-not-claim", "cancel-keeps-the-holder"])
def test_the_machine_finds_deliberate_bugs(app, monkeypatch, bug):
    """A state machine that cannot fail proves nothing: with each bug planted,
    it must fail (derandomized, so every run explores the same examples)."""
    bug(monkeypatch)
    with pytest.raises(AssertionError):
        # Found is enough: shrinking the example would take minutes.
        run_machine(app, monkeypatch, derandomize=True, database=None,
                    phases=[Phase.explicit, Phase.generate])
