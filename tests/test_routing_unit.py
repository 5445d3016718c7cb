"""Queues and skills in the dispatch core (queue.py, routing.py, dispatch.py),
over a real database through the `floor` fixture: who qualifies for what, in
which order, what time (relax_after_s) and skill changes do, and a
supervisor's assignment to a named reviewer."""
import itertools
from datetime import timedelta

import pytest
import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import Session

from live import database_kind
from qc_live import queue, routing, state
from qc_live.clock import utcnow
from qc_live.errors import Conflict
from qc_live.extensions import db
from qc_live.models import ServerProcess, Skill, Task, User

_sids = itertools.count()


class Routing:
    """The floor, with queues, skills and a clock that can move on."""

    def __init__(self, floor):
        self.floor = floor
        floor.process("p1")

    def queue(self, name, min_level=1, relax_after_s=None):
        routing.create_queue(db.session, {"name": name, "min_level": min_level,
                                          "relax_after_s": relax_after_s})

    def reviewer(self, name, skills=None, online=True):
        """A reviewer with these skills (default {"default": 1}), online and
        free (its claim on connect finds nothing: call before the tasks)."""
        user = self.floor.reviewer(name)
        if skills is not None:
            routing.set_skills(db.session, user.id, skills)
        if online:
            self.connect(user)
        return user

    def connect(self, user):
        """A /reviewer socket: the reviewer claims what it qualifies for."""
        return self.floor.dispatcher.connect(db.session, f"s{next(_sids)}", user.id,
                                             user.token_version, "p1").value

    def tasks(self, *specs):
        return self.floor.tasks(*specs)

    def held(self, user):
        task = self.floor.held(user.id)
        return task["name"] if task else None

    def complete(self, user):
        task = self.floor.held(user.id)
        result = self.floor.dispatcher.complete(db.session, user.id, task["id"], "pass")
        nxt = result.value["next_task"]
        return nxt["name"] if nxt else None

    def time_passes(self, seconds):
        """The clock moves on (the app's clock offset); the process's lease is
        renewed meanwhile, as its heartbeat would."""
        state.clock().offset += timedelta(seconds=seconds)
        db.session.execute(sa.update(ServerProcess).values(heartbeat_at=utcnow()))
        db.session.commit()

    def sweep(self):
        """The sweep's last step: what is pending goes to free qualified reviewers."""
        return self.floor.dispatcher.dispatch_pending(db.session)


@pytest.fixture
def floor_(floor):
    yield Routing(floor)
    state.clock().offset = timedelta(0)


def test_a_reviewer_gets_only_tasks_of_queues_it_has_a_skill_for(floor_):
    floor_.queue("en")
    floor_.queue("de")
    alice = floor_.reviewer("alice", {"en": 1})
    bob = floor_.reviewer("bob", {"de": 1})
    floor_.tasks({"name": "de-1", "queue": "de", "priority": 9}, {"name": "en-1", "queue": "en"})
    assert (floor_.held(alice), floor_.held(bob)) == ("en-1", "de-1")
    floor_.tasks({"name": "de-2", "queue": "de"})
    assert floor_.complete(alice) is None  # de-2 is not for alice
    assert floor_.complete(bob) == "de-2"


def test_a_default_reviewer_keeps_working_the_default_queue_as_before(floor_):
    alice = floor_.reviewer("alice")
    floor_.tasks({"name": "a"}, {"name": "b", "priority": 2})
    assert floor_.held(alice) == "b"
    assert floor_.complete(alice) == "a"


def test_min_level_keeps_lower_levels_out(floor_):
    floor_.queue("expert", min_level=5)
    junior = floor_.reviewer("junior", {"expert": 4})
    senior = floor_.reviewer("senior", {"expert": 5})
    [task] = floor_.tasks({"name": "hard", "queue": "expert"})
    assert (floor_.held(junior), floor_.held(senior)) == (None, "hard")
    assert queue.free_reviewers(db.session, floor_.floor.lease, queue="expert", level=5) == []
    assert queue.free_reviewers(db.session, floor_.floor.lease, queue="expert",
                                level=1) == [junior.id]
    ok, why = routing.qualification(db.session, junior.id, _row(task["id"]))
    assert not ok and "level 4" in why and "asks for 5" in why


def test_after_relax_after_s_level_1_will_do_and_the_sweep_hands_it_out(floor_):
    floor_.queue("expert", min_level=5, relax_after_s=60)
    junior = floor_.reviewer("junior", {"expert": 1})
    nobody = floor_.reviewer("nobody", {"default": 1})
    [task] = floor_.tasks({"name": "hard", "queue": "expert"})
    assert floor_.held(junior) is None
    floor_.time_passes(30)
    assert floor_.sweep().notices == []  # half way: still level 5
    assert routing.waiting(db.session, floor_.floor.config, _row(task["id"]))["relax_in_s"] \
        == pytest.approx(30, abs=2)
    floor_.time_passes(31)
    handed = floor_.sweep().notices
    assert [(n.reviewer_id, n.task["id"]) for n in handed] == [(junior.id, task["id"])]
    assert floor_.held(nobody) is None


def test_relax_counts_from_created_at_and_a_requeued_task_keeps_it(floor_):
    floor_.queue("expert", min_level=5, relax_after_s=60)
    senior = floor_.reviewer("senior", {"expert": 5})
    [task] = floor_.tasks({"name": "hard", "queue": "expert"})
    assert floor_.held(senior) == "hard"
    floor_.time_passes(61)
    junior = floor_.reviewer("junior", {"expert": 1})
    assert floor_.held(junior) is None
    # Back in the queue: junior has waited longest now, and the task has
    # waited 61 s since it was created (a requeue keeps created_at).
    floor_.floor.dispatcher.release(db.session, task["id"], None)
    assert (floor_.held(junior), floor_.held(senior)) == ("hard", None)


def test_priority_then_age_across_the_queues_a_reviewer_qualifies_for(floor_):
    for name in ("en", "de", "fr"):
        floor_.queue(name)
    floor_.tasks({"name": "en-old", "queue": "en", "priority": 1})
    floor_.time_passes(1)
    floor_.tasks({"name": "de-new", "queue": "de", "priority": 1},
                 {"name": "fr-top", "queue": "fr", "priority": 7},
                 {"name": "de-top", "queue": "de", "priority": 5})
    soon = utcnow() + timedelta(minutes=5)
    floor_.tasks({"name": "en-urgent", "queue": "en", "priority": 1, "deadline": soon})
    alice = floor_.reviewer("alice", {"en": 1, "de": 3})
    order = [floor_.held(alice)]
    while (nxt := floor_.complete(alice)) is not None:
        order.append(nxt)
    # fr-top is not hers; within priority 1 the urgent one first, then the oldest.
    assert order == ["de-top", "en-urgent", "en-old", "de-new"]


def test_a_new_task_goes_to_the_longest_idle_qualified_free_reviewer(floor_):
    floor_.queue("en")
    longest = floor_.reviewer("longest", {"default": 1})
    second = floor_.reviewer("second", {"en": 1})
    third = floor_.reviewer("third", {"en": 2})
    [task] = floor_.tasks({"name": "en-1", "queue": "en"})
    assert floor_.held(second) == "en-1"
    assert floor_.held(longest) is None and floor_.held(third) is None
    # Bulk: each task, in order, to the longest-idle one left who qualifies.
    floor_.complete(second)  # second goes to the end of the line
    floor_.tasks({"name": "d-1"}, {"name": "en-2", "queue": "en"},
                 {"name": "en-3", "queue": "en"})
    assert (floor_.held(longest), floor_.held(third), floor_.held(second)) == \
        ("d-1", "en-2", "en-3")


def test_a_changed_skill_counts_from_the_next_claim_and_a_held_task_stays(floor_):
    floor_.queue("en")
    floor_.queue("de")
    alice = floor_.reviewer("alice", {"en": 1})
    floor_.tasks({"name": "en-1", "queue": "en"}, {"name": "en-2", "queue": "en"},
                 {"name": "de-1", "queue": "de"})
    assert floor_.held(alice) == "en-1"
    routing.set_skills(db.session, alice.id, {"de": 1})
    assert floor_.held(alice) == "en-1"  # kept
    assert floor_.complete(alice) == "de-1"  # the next claim reads the new skills
    assert floor_.complete(alice) is None


def test_a_freshly_skilled_free_reviewer_gets_work_at_the_next_dispatch(floor_):
    floor_.queue("en")
    alice = floor_.reviewer("alice", {"default": 1})
    floor_.tasks({"name": "en-1", "queue": "en"})
    assert floor_.held(alice) is None
    routing.set_skills(db.session, alice.id, {"en": 1})
    assert floor_.sweep().notices[0].reviewer_id == alice.id  # what dispatch_later runs
    assert floor_.held(alice) == "en-1"


def test_moving_a_pending_task_to_another_queue_hands_it_to_who_qualifies_there(floor_):
    floor_.queue("en")
    alice = floor_.reviewer("alice", {"en": 1})
    [task] = floor_.tasks({"name": "t"})
    assert floor_.held(alice) is None
    outcome = floor_.floor.dispatcher.update_task(db.session, task["id"], {"queue": "en"}, None)
    assert outcome.value["queue"] == "en"
    assert floor_.held(alice) == "t"
    with pytest.raises(Conflict) as refused:  # held now: it stays where it is
        floor_.floor.dispatcher.update_task(db.session, task["id"], {"queue": "default"}, None)
    assert refused.value.code == "task_not_pending"


def test_assigning_to_a_named_reviewer_respects_skills_and_availability(floor_):
    floor_.queue("en", min_level=3, relax_after_s=600)
    low = floor_.reviewer("low", {"en": 2})
    none = floor_.reviewer("none", {"default": 1})
    busy = floor_.reviewer("busy", {"en": 3})
    [first] = floor_.tasks({"name": "first", "queue": "en"})
    assert floor_.held(busy) == "first"
    [task] = floor_.tasks({"name": "second", "queue": "en"})
    assign = floor_.floor.dispatcher.assign_task
    for who, code, words in ((low, "not_qualified", "level 2"),
                             (none, "not_qualified", "no skill"),
                             (busy, "reviewer_unavailable", "holds a task")):
        with pytest.raises(Conflict) as refused:
            assign(db.session, task["id"], None, reviewer_id=who.id)
        assert refused.value.code == code and words in refused.value.message
    assert "until the task has waited 600 s" in _message(assign, task["id"], low.id)
    # Nobody qualified is free: it stays pending, as without queues.
    assert assign(db.session, task["id"], None).value["assignee_id"] is None
    floor_.complete(busy)  # takes "second" itself
    assert floor_.held(busy) == "second"
    [third] = floor_.tasks({"name": "third", "queue": "en"})
    floor_.time_passes(601)  # relaxed: level 2 will do now
    assert assign(db.session, third["id"], None, reviewer_id=low.id).value["assignee_id"] \
        == low.id


def test_waiting_says_why_a_pending_task_is_on_nobodys_screen(floor_):
    floor_.queue("en", min_level=2, relax_after_s=300)
    [task] = floor_.tasks({"name": "t", "queue": "en"})
    config = floor_.floor.config

    def reason():
        return routing.waiting(db.session, config, _row(task["id"]))
    assert reason()["reason"] == "no_qualified_reviewer_online"
    assert reason()["relax_in_s"] == pytest.approx(300, abs=2)
    alice = floor_.floor.reviewer("alice")
    routing.set_skills(db.session, alice.id, {"en": 2})
    floor_.floor.dispatcher.set_availability(db.session, alice.id, False, claim=False)
    floor_.connect(alice)
    assert reason()["reason"] == "qualified_paused"
    routing.set_skills(db.session, alice.id, {"default": 1})
    floor_.floor.dispatcher.set_availability(db.session, alice.id, True, claim=True)
    floor_.tasks({"name": "d"})
    assert floor_.held(alice) == "d"
    routing.set_skills(db.session, alice.id, {"en": 2})
    assert reason()["reason"] == "qualified_busy"
    assert reason()["online_qualified"] == 1
    figures = {q["name"]: q for q in routing.queue_figures(db.session, config)}
    assert (figures["en"]["pending"], figures["en"]["online_qualified"]) == (1, 1)
    assert (figures["default"]["assigned"], figures["default"]["online_qualified"]) == (1, 0)


def _row(task_id):
    row = db.session.execute(sa.select(Task.__table__).where(Task.id == task_id)).first()
    db.session.rollback()
    return row


def _message(assign, task_id, reviewer_id):
    with pytest.raises(Conflict) as refused:
        assign(db.session, task_id, None, reviewer_id=reviewer_id)
    return refused.value.message


@pytest.mark.skipif(database_kind() != "mysql", reason="row locks: SQLite serialises writers")
def test_looking_past_a_task_a_concurrent_claim_holds_never_hands_one_task_out_twice(floor_):
    """dispatch_pending pairs, locks, and when a concurrent claim holds one of
    its tasks, pairs the reviewers left again: the tasks it has locked itself
    must not come round a second time (SKIP LOCKED never skips one's own)."""
    alice = floor_.reviewer("alice", online=False)
    bob = floor_.reviewer("bob", online=False)
    first, second, third = floor_.tasks({"name": "1"}, {"name": "2"}, {"name": "3"})
    for user in (alice, bob):  # online now, free, the tasks still pending
        floor_.floor.socket(user, f"s{user.id}", "p1")
    with Session(db.engine) as other:
        # Another transaction is claiming the first task right now.
        other.execute(sa.select(Task.id).where(Task.id == first["id"]).with_for_update())
        outcome = floor_.floor.dispatcher.dispatch_pending(db.session)
        other.rollback()
    handed = [(n.reviewer_id, n.task["id"]) for n in outcome.notices]
    # Each gets one of the two tasks nobody else holds (which one: the order
    # of the pairing rounds decides), none gets one twice.
    assert sorted(r for r, _ in handed) == sorted([alice.id, bob.id])
    assert sorted(t for _, t in handed) == [second["id"], third["id"]]
    assert {floor_.held(alice), floor_.held(bob)} == {"2", "3"}


@pytest.mark.skipif(database_kind() != "mysql", reason="row locks: SQLite serialises writers")
def test_a_task_moved_to_another_queue_while_a_dispatch_pairs_it_is_not_handed_out(
        floor_, monkeypatch):
    """dispatch_pending pairs tasks as it read them, then locks them: a task a
    supervisor moved to a queue the reviewer has no skill for in between
    (committed after the pairing's read) must not reach that reviewer."""
    floor_.queue("en")
    floor_.queue("fr")
    alice = floor_.reviewer("alice", {"en": 1}, online=False)
    [task] = floor_.tasks({"name": "t", "queue": "en"})
    floor_.floor.socket(alice, "s-alice", "p1")  # online and free, the task pending
    pair, moves = queue.match, [task["id"]]

    def match_then_move(w, free, *args, **kwargs):
        chosen = pair(w, free, *args, **kwargs)
        while moves:  # a PATCH {"queue": "fr"} commits meanwhile (once)
            with Session(db.engine) as other:
                other.execute(sa.update(Task).where(Task.id == moves.pop()).values(queue="fr"))
                other.commit()
        return chosen
    monkeypatch.setattr(queue, "match", match_then_move)
    outcome = floor_.floor.dispatcher.dispatch_pending(db.session)
    assert [(n.reviewer_id, n.task["id"]) for n in outcome.notices] == []
    assert floor_.held(alice) is None
    assert floor_.floor.task_row(task["id"])["status"] == "pending"


def test_a_reviewer_skilled_in_hundreds_of_queues_claims_the_best_task_of_them(floor_):
    """The claim reads every qualified queue's heads in one UNION: SQLite
    allows 500 terms in a compound SELECT (two per queue), and a statement
    without bound would fail the claim of a reviewer with 300 skills."""
    names = [f"q{i:03d}" for i in range(300)]
    for name in names:
        floor_.queue(name)
    alice = floor_.reviewer("alice", {name: 1 for name in names}, online=False)
    floor_.tasks({"name": "low", "queue": "q010"}, {"name": "high", "queue": "q250",
                                                    "priority": 5})
    floor_.connect(alice)
    assert floor_.held(alice) == "high"
    assert floor_.complete(alice) == "low"


def test_the_sweep_hands_out_a_relaxed_task_however_many_queues_relax(floor_):
    """Who is free and qualified for something pending must be one bounded
    statement: a term per relaxing queue failed every dispatch on SQLite
    (expression tree too deep) once a floor had 1,000 of them."""
    for i in range(1100):
        floor_.queue(f"r{i:04d}", min_level=5, relax_after_s=60 + i % 7)
    alice = floor_.reviewer("alice", {"r0500": 1}, online=False)
    bob = floor_.reviewer("bob", {"r0501": 1}, online=False)
    floor_.tasks({"name": "t", "queue": "r0500"}, {"name": "u", "queue": "r0501"})
    for user in (alice, bob):
        floor_.floor.socket(user, f"s-{user.username}", "p1")
    floor_.time_passes(70)  # r0500 relaxes after 63 s, r0501 after 64 s
    floor_.sweep()
    assert (floor_.held(alice), floor_.held(bob)) == ("t", "u")


@pytest.mark.skipif(database_kind() != "mysql", reason="row locks: SQLite serialises writers")
def test_two_supervisors_setting_one_reviewers_skills_at_once_both_succeed(floor_):
    """set_skills deletes the reviewer's skills and inserts the new ones: a
    second one at once, whose delete waited on a row the first deleted, went
    on past the rows the first inserted before it in the index and met them
    as a duplicate key (MariaDB: a 500 for one of two supervisors editing
    one reviewer)."""
    import threading
    floor_.queue("de")
    floor_.queue("en")
    alice = floor_.reviewer("alice", {"en": 1}, online=False)
    app, failures = current_app._get_current_object(), []

    def second():
        with app.app_context(), Session(db.engine) as session:
            try:
                routing.set_skills(session, alice.id, {"de": 3})
            except Exception as error:  # noqa: BLE001 (what the test looks for)
                failures.append(error)
    with Session(db.engine) as first:  # the first supervisor's set_skills, half-way
        first.execute(sa.select(User.id).where(User.id == alice.id).with_for_update())
        first.execute(sa.delete(Skill).where(Skill.user_id == alice.id))
        editor = threading.Thread(target=second)
        editor.start()
        editor.join(2)  # it waits for the first (on its delete, before the fix)
        first.execute(sa.insert(Skill), [{"user_id": alice.id, "queue": "de", "level": 2}])
        first.commit()
    editor.join()
    assert failures == []
    assert routing.skills_of(db.session, [alice.id])[alice.id] == {"de": 3}
