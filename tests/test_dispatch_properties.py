"""Property-based: random interleavings of everything that can happen on a floor
keep the dispatch core's invariants (hypothesis stateful testing, real
database), driving the dispatcher, the sweep and presence directly.

The floor has three queues (`QUEUES`: one asks for level 3 until a task has
waited 60 s), reviewers with skills that change, and a clock that only moves
when the machine says so (`time_passes`, which then runs the sweep's steps).
Who qualifies for what is judged by an oracle written here (`qualifies`),
apart from the server's rule.

Queue `a` audits every completion (audit_rate 1; the others none), and some
tasks are gold (an expected_outcome); the machine resolves disputes.

Invariants checked after every step:
- a task has at most one holder, and only an assigned task has one;
- a reviewer holds at most one task;
- no task is pending while a free online reviewer qualified for it exists
  (dispatch is eager; when time made it eligible, the sweep that follows did it);
- completed tasks never change; tasks never vanish.
- audits: an audit is never held (nor done) by its original's reviewer; each
  completed review in an audited queue (not gold) has exactly one audit, every
  other none; a verdict is final (finalized_at) exactly when the contract says
  (no audit; audit agreed, cancelled or expired; dispute resolved), and its
  task.finalized outbox row exists exactly once then, never before; nothing
  a reviewer receives (pushes, answers) carries expected_outcome or another
  task's verdict.
Checked at every assignment: the reviewer qualifies for the task at that
moment. At every claim: it is the reviewer's best eligible task (priority,
urgent deadlines within it, then FIFO, across its queues). At every dispatch
of pending tasks: each task in that order went to the longest-idle free
reviewer qualified for it (a greedy oracle over the floor as it was).
dispatch_pending runs in batches of 2 here, so a dispatch spans several.

The machine was checked against deliberate bugs (`test_the_machine_finds...`):
a completion that does not claim the next task, a cancel (or expiry) that
leaves the holder set, a claim that ignores min_level, relax_after_s never
widening a claim, an audit open to its original's reviewer, no audit ever
sampled, reviewers handed the supervisor's task object, and a verdict made
final at every completion. All are found, every run.
"""
import itertools
from collections import Counter
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, initialize, invariant, precondition,
                                 rule, run_state_machine_as_test)

from qc_live import clock, lifecycle, presence, queue, routing, sql, state, sweep
from qc_live.clock import utcnow
from qc_live.database import run_write
from qc_live.dispatch import Dispatcher
from qc_live.errors import QCError, RateLimited
from qc_live.extensions import db
from qc_live.lifecycle import TaskSpec
from qc_live.models import (SUPERVISOR_ONLY, Connection, Queue, Role, ServerProcess, Skill,
                            Task, TaskEvent, User, Webhook, WebhookDelivery)
from qc_live.notices import Assigned
from qc_live.queue import URGENT_WINDOW

LEASE, GRACE = 15, 30  # the app fixture's settings
REVIEWERS = 3
# name -> (min_level, relax_after_s)
QUEUES = {"default": (1, None), "a": (1, None), "b": (3, 60)}
AUDITED = {"a"}  # audit_rate 1 (every completion sampled: no chance in the machine)
FIRST_SKILLS = ({"default": 1, "a": 1}, {"default": 1, "b": 3}, {"a": 2, "b": 1})
SKILLS = st.dictionaries(st.sampled_from(sorted(QUEUES)), st.integers(1, 4), max_size=3)
# New tasks: (priority, due in minutes or None, queue); 10 and 20 are within URGENT_WINDOW.
# The fourth: a gold task's expected_outcome (None: not gold).
TASK_KINDS = st.lists(st.tuples(st.integers(0, 2), st.sampled_from([None, 10, 20, 120]),
                                st.sampled_from(sorted(QUEUES)),
                                st.sampled_from([None, None, "pass", "fail"])),
                      min_size=1, max_size=6)
# No sum of these is within a second of 60 s: where the relax line falls never
# depends on the microseconds the steps take.
STEPS_OF_TIME = st.sampled_from([7, 45, 90])


def qualifies(level, queue: str, created_at, now) -> bool:
    """The contract's rule: level >= the queue's min_level, or >= 1 once the
    task has waited longer than its relax_after_s."""
    min_level, relax = QUEUES[queue]
    if level is None or level < 1:
        return False
    return level >= min_level or (relax is not None and
                                  (now - created_at).total_seconds() > relax)


class Floor_:
    """The floor as the oracle sees it, read afresh."""

    def __init__(self, conn, now):
        self.now = now
        self.skills = {}
        for user_id, name, level in conn.execute(sa.select(Skill.user_id, Skill.queue,
                                                           Skill.level)):
            self.skills.setdefault(user_id, {})[name] = level
        holding = sa.select(Task.holder_id).where(Task.holder_id.is_not(None))
        live = sa.exists().where(Connection.user_id == User.id,
                                 Connection.namespace == presence.REVIEWER_NAMESPACE,
                                 Connection.process_id == ServerProcess.id,
                                 ServerProcess.heartbeat_at > now - timedelta(seconds=LEASE))
        self.free = list(conn.execute(
            sa.select(User.id).where(User.role == Role.REVIEWER.value, User.active.is_(True),
                                     User.available.is_(True), User.id.not_in(holding), live)
            .order_by(User.idle_since, User.id)).scalars())
        # An audit's original reviewer, from the original's row (not the
        # column the server filters on).
        reviewer_of = dict(conn.execute(sa.select(Task.id, Task.assignee_id)).all())
        self.not_for = {t.id: reviewer_of.get(t.review_of) for t in conn.execute(
            sa.select(Task.id, Task.review_of).where(Task.review_of.is_not(None)))}
        self.pending = sorted(
            conn.execute(sa.select(Task.__table__).where(
                Task.status == "pending",
                sa.or_(Task.deadline.is_(None), Task.deadline > now))).all(),
            key=lambda t: dispatch_order(t, now))

    def qualifies(self, reviewer_id, task) -> bool:
        if self.not_for.get(task.id) == reviewer_id:
            return False  # nobody audits their own work
        return qualifies(self.skills.get(reviewer_id, {}).get(task.queue), task.queue,
                         task.created_at, self.now)

    def greedy(self) -> set:
        """Each pending task in dispatch order to the longest-idle free
        reviewer left who qualifies for it."""
        left, pairs = list(self.free), set()
        for task in self.pending:
            for reviewer_id in left:
                if self.qualifies(reviewer_id, task):
                    pairs.add((reviewer_id, task.id))
                    left.remove(reviewer_id)
                    break
        return pairs


class Clock:
    """The time every timestamp is read from: it moves 1 µs per reading, and
    as far as `time_passes` says."""

    def __init__(self):
        self.now = datetime(2030, 1, 1)

    def __call__(self):
        self.now += timedelta(microseconds=1)
        return self.now


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
            s.execute(sa.update(Task).values(review_of=None))  # its own foreign key
            for model in (TaskEvent, Task, Connection, ServerProcess, Skill, WebhookDelivery,
                          Webhook):
                s.execute(sa.delete(model))
            s.execute(sa.delete(User).where(User.role == Role.REVIEWER.value))
            s.commit()
            known = routing.queue_names(s)
            for name, (min_level, relax) in QUEUES.items():
                if name not in known:
                    routing.create_queue(s, {"name": name, "min_level": min_level,
                                             "relax_after_s": relax})
            s.execute(sa.update(Queue).values(audit_rate=sa.case(
                (Queue.name.in_(AUDITED), 1.0), else_=0.0)))
            # A subscription: task.finalized rows in the outbox, counted below.
            s.add(Webhook(url="http://127.0.0.1:9/h", events=["task.finalized"], secret="s" * 16))
            s.commit()
            self.process = self._new_process()
            self.reviewers = []
            for i in range(REVIEWERS):
                user = User(username=f"r{i}", password_hash="x", role=Role.REVIEWER.value)
                s.add(user)
                s.commit()
                routing.set_skills(s, user.id, FIRST_SKILLS[i])
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
            if list(self.sockets.values()).count(rid) >= dispatcher.max_sockets_per_user:
                # The per-user cap: refused, and nothing recorded.
                with pytest.raises(RateLimited):
                    dispatcher.connect(db.session, sid, rid, version, self.process)
                return
            blind(dispatcher.connect(db.session, sid, rid, version, self.process))
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
            held = blind(dispatcher.current_task(db.session, rid))
            blind(dispatcher.complete(db.session, rid, held["id"], outcome))

        @rule(who=st.integers(0, REVIEWERS - 1), task=st.integers(1, 12))
        def complete_any(self, who, task):
            """Someone tries to complete an arbitrary task id: it works only if
            it is theirs; anything else is refused and changes nothing."""
            try:
                blind(dispatcher.complete(db.session, self.reviewers[who], self._id(task),
                                          "pass"))
            except QCError:
                pass

        @rule(who=st.integers(0, REVIEWERS - 1), available=st.booleans())
        def set_availability(self, who, available):
            rid = self.reviewers[who]
            online = presence.is_online(db.session, rid, LEASE)
            blind(dispatcher.set_availability(db.session, rid, available, claim=online))

        @rule(kinds=TASK_KINDS)
        def create(self, kinds):
            now = utcnow()
            specs = [TaskSpec(name=f"t{self.task_count + i}", payload={}, priority=priority,
                              deadline=now + timedelta(minutes=due_in) if due_in else None,
                              queue=name, expected_outcome=expected)
                     for i, (priority, due_in, name, expected) in enumerate(kinds)]
            made = dispatcher.create_tasks(db.session, specs, None).value
            if self.base is None:
                self.base = made[0]["id"] - 1
            self.task_count += len(specs)

        def _id(self, n):
            """This example's n-th task id (n past the last: an id no task has)."""
            return (self.base or 0) + n

        @rule(who=st.integers(0, REVIEWERS - 1), skills=SKILLS)
        def skills_change(self, who, skills):
            """A supervisor edits a reviewer's skills (PATCH /users): they count
            from its next claim, and the dispatch that follows (Notifier.
            dispatch_later) gives free reviewers who qualify now their work."""
            routing.set_skills(db.session, self.reviewers[who], skills)
            dispatcher.dispatch_pending(db.session)

        @rule(seconds=STEPS_OF_TIME)
        def time_passes(self, seconds):
            """Time passes, with this process's heartbeat; then one sweep:
            deadlines, grace periods, and what became eligible goes out."""
            fake_time.now += timedelta(seconds=seconds)
            run_write(db.session, presence.renew_lease, self.process)
            sweep.expire_overdue(dispatcher, db.session)
            sweep.requeue_abandoned(dispatcher, db.session)
            dispatcher.dispatch_pending(db.session)

        @rule(task=st.integers(1, 12), outcome=st.sampled_from(["pass", "fail"]))
        def resolve(self, task, outcome):
            """A supervisor settles a dispute (or is refused: none, or settled)."""
            try:
                dispatcher.resolve(db.session, self._id(task), outcome, None, None)
            except QCError:
                pass

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
        def no_pending_task_beside_a_free_qualified_reviewer(self):
            db.session.rollback()
            seen = Floor_(db.session.connection(), utcnow())
            db.session.rollback()
            idle = [(r, t.id) for t in seen.pending for r in seen.free if seen.qualifies(r, t)]
            assert idle == [], f"pending tasks beside free qualified reviewers: {idle}"

        @invariant()
        def completed_tasks_never_change_and_none_vanish(self):
            db.session.rollback()
            rows = db.session.execute(sa.select(Task.id, Task.status, Task.outcome,
                                                Task.assignee_id, Task.completed_at,
                                                Task.kind)).all()
            assert len([r for r in rows if r.kind == "review"]) == self.task_count
            for row in rows:
                if row.status == "completed":
                    frozen = (row.outcome, row.assignee_id, row.completed_at)
                    assert self.completed.setdefault(row.id, frozen) == frozen
            now_completed = {r.id for r in rows if r.status == "completed"}
            assert set(self.completed) <= now_completed

        @invariant()
        def audits_are_blind_once_and_final_once(self):
            db.session.rollback()
            tasks = {t.id: t for t in db.session.execute(sa.select(Task.__table__))}
            finalized = Counter(db.session.scalars(
                sa.select(WebhookDelivery.task_id).where(WebhookDelivery.type == "task.finalized")))
            db.session.rollback()
            audits_of = Counter(t.review_of for t in tasks.values() if t.kind == "audit")
            for t in tasks.values():
                if t.kind == "audit":
                    original = tasks[t.review_of]
                    assert original.kind == "review" and original.status == "completed"
                    assert original.queue in AUDITED and original.expected_outcome is None
                    assert t.assignee_id is None or t.assignee_id != original.assignee_id, \
                        f"audit {t.id} went to {t.assignee_id}, who did task {original.id}"
                    assert t.finalized_at is None and finalized[t.id] == 0
                    continue
                audited = t.status == "completed" and t.queue in AUDITED and \
                    t.expected_outcome is None
                assert audits_of[t.id] == (1 if audited else 0), \
                    f"task {t.id}: {audits_of[t.id]} audits"
                audit = next((a for a in tasks.values() if a.review_of == t.id), None)
                if t.status != "completed":
                    final = False
                elif audit is None:
                    final = True
                elif audit.status in ("cancelled", "expired"):
                    final = t.audit is None
                    assert t.audit is None
                elif audit.status == "completed":
                    assert t.audit == ("agreed" if audit.outcome == t.outcome else "disputed")
                    final = t.audit == "agreed" or t.finalized_at is not None  # resolved
                else:
                    final = False
                    assert t.audit is None
                assert (t.finalized_at is not None) == final, f"task {t.id} final: {final}"
                assert finalized[t.id] == (1 if final else 0), \
                    f"task {t.id}: {finalized[t.id]} task.finalized events"
                if final and t.audit != "disputed":
                    assert t.final_outcome == t.outcome

    return Floor


def blind(outcome):
    """What a reviewer receives (a use case's answer and its pushes): no
    supervisor-only field, and an audit without its original's verdict."""
    if outcome is None:
        return outcome
    tasks = [outcome] if isinstance(outcome, dict) else []
    if hasattr(outcome, "notices"):
        value = outcome.value
        tasks += [n.task for n in outcome.notices if isinstance(n, Assigned)]
        if isinstance(value, dict):
            tasks += [v for k, v in value.items() if k in ("task", "next_task") and v] or \
                ([value] if "id" in value else [])
    for task in tasks:
        assert not set(SUPERVISOR_ONLY) & set(task), f"a reviewer got {sorted(task)}"
        if task.get("kind") == "audit" and task["status"] != "completed":
            assert (task["outcome"], task["note"]) == (None, None)
    return outcome


def checked(dispatch_pending):
    """dispatch_pending, checked each time the other transitions call it: each
    pending task in dispatch order went to the longest-idle free reviewer
    qualified for it, as the greedy oracle over the floor before says."""
    def check(session):
        session.rollback()
        expected = Floor_(session.connection(), utcnow()).greedy()
        session.rollback()
        outcome = blind(dispatch_pending(session))
        handed = {(x.reviewer_id, x.task["id"]) for x in outcome.notices
                  if isinstance(x, Assigned)}
        assert handed == expected, f"handed out {handed}, the oracle says {expected}"
        return outcome
    return check


def checked_claim(next_task):
    """queue.next_task, checked: the reviewer's best task among those it qualifies for."""
    def check(w, reviewer_id):
        seen = Floor_(w.conn, w.now)
        best = [t.id for t in seen.pending if seen.qualifies(reviewer_id, t)][:1]
        row = next_task(w, reviewer_id)
        assert ([row.id] if row is not None else []) == best, \
            f"reviewer {reviewer_id} claimed {row and row.id}, the oracle says {best}"
        return row
    return check


def checked_assign(assign):
    """lifecycle.assign, checked: every reviewer qualifies for its task now."""
    def check(w, pairs, *args, **kwargs):
        seen = Floor_(w.conn, w.now)
        for reviewer_id, row in pairs:
            assert seen.qualifies(reviewer_id, row), \
                f"task {row.id} ({row.queue}) went to reviewer {reviewer_id}, with skills " \
                f"{seen.skills.get(reviewer_id)}, who does not qualify"
        return assign(w, pairs, *args, **kwargs)
    return check


fake_time = Clock()


def run_machine(app, monkeypatch, **settings_):
    dispatcher = state.dispatcher()
    monkeypatch.setattr(clock, "_local", fake_time)
    monkeypatch.setattr(dispatcher, "batch", 2)
    monkeypatch.setattr(dispatcher, "dispatch_pending", checked(dispatcher.dispatch_pending))
    monkeypatch.setattr(queue, "next_task", checked_claim(queue.next_task))
    monkeypatch.setattr(lifecycle, "assign", checked_assign(lifecycle.assign))
    run_state_machine_as_test(
        machine_for(app),
        settings=settings(**{"max_examples": 50, "stateful_step_count": 25, "deadline": None,
                             "suppress_health_check": list(HealthCheck), **settings_}))


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


def _claim_ignores_min_level(monkeypatch):
    reach = queue.reach
    monkeypatch.setattr(queue, "reach", lambda level, _min, relax, now:
                        reach(level, 1, relax, now))


def _relax_never_comes(monkeypatch):
    reach = queue.reach
    monkeypatch.setattr(queue, "reach", lambda level, min_level, _relax, now:
                        reach(level, min_level, None, now))


def _audit_open_to_its_reviewer(monkeypatch):
    insert = lifecycle._insert

    def without_exclusion(w, rows):
        return insert(w, [{**row, "excluded_reviewer_id": None} for row in rows])
    monkeypatch.setattr(lifecycle, "_insert", without_exclusion)


def _never_sampled(monkeypatch):
    from qc_live import audits
    monkeypatch.setattr(audits, "sampled", lambda *args, **kwargs: False)


def _reviewers_get_the_supervisors_task(monkeypatch):
    from qc_live import models, notices
    monkeypatch.setattr(lifecycle, "task_dict", models.supervised_task_dict)
    monkeypatch.setattr(notices, "reviewer_view", lambda task: task)


def _finalized_at_every_completion(monkeypatch):
    finish, finalize = lifecycle.finish, lifecycle.finalize

    def finish_and_finalize(w, row, outcome, note, *args):
        task = finish(w, row, outcome, note, *args)
        finalize(w, {**row._mapping, "status": "completed"}, outcome, note)
        return task
    monkeypatch.setattr(lifecycle, "finish", finish_and_finalize)


@pytest.mark.parametrize("bug", [_completion_does_not_claim, _end_keeps_the_holder,
                                 _claim_ignores_min_level, _relax_never_comes,
                                 _audit_open_to_its_reviewer, _never_sampled,
                                 _reviewers_get_the_supervisors_task,
                                 _finalized_at_every_completion],
                         ids=["completion-does-not-claim", "cancel-keeps-the-holder",
                              "claim-ignores-min-level", "relax-never-comes",
                              "audit-open-to-its-reviewer", "never-sampled",
                              "reviewers-get-the-supervisors-task",
                              "finalized-at-every-completion"])
def test_the_machine_finds_deliberate_bugs(app, monkeypatch, bug):
    """A state machine that cannot fail proves nothing: with each bug planted,
    it must fail (derandomized, so every run explores the same examples)."""
    bug(monkeypatch)
    with pytest.raises(AssertionError):
        # Found is enough: shrinking the example would take minutes.
        run_machine(app, monkeypatch, derandomize=True, database=None, max_examples=150,
                    phases=[Phase.explicit, Phase.generate])
