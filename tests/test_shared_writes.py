"""Group commit on SQLite (group_commit.run_write_shared): completions that queue
up while one is being written share the next transaction; each caller still
gets only its own outcome, and one caller's failure costs the others nothing."""
import threading
import time

import pytest
import sqlalchemy as sa

from live import database_kind
from qc_live import group_commit
from qc_live.database import DatabaseUnavailable
from qc_live.errors import Conflict, QCError
from qc_live.extensions import db
from qc_live.models import User

pytestmark = pytest.mark.skipif(database_kind() != "sqlite",
                                reason="on MySQL/MariaDB run_write_shared is run_write")


@pytest.fixture
def group_of(app, monkeypatch):
    """group_of(leader_work, *other_works) -> outcomes: the leader's call lets
    the others queue behind it (at its yield to the event loop) before it runs
    the group; returns each call's value or exception, and the commits made."""
    commits = []
    sa.event.listen(db.engine, "commit", lambda conn: commits.append(1))
    group = group_commit.group_of(db.engine)

    def run(leader_work, *other_works):
        outcomes = [None] * (1 + len(other_works))

        def call(index, work):
            try:
                outcomes[index] = group_commit.run_write_shared(db.session, work,
                                                                refusals=(QCError,))
            except Exception as exc:  # the test looks at it
                outcomes[index] = exc

        def in_thread(index, work):
            with app.app_context():
                call(index, work)
                db.session.remove()

        threads = [threading.Thread(target=in_thread, args=(i + 1, w))
                   for i, w in enumerate(other_works)]

        def others_queue_up():
            for thread in threads:
                thread.start()
            deadline = time.monotonic() + 10
            while len(group.queue) < len(outcomes):
                assert time.monotonic() < deadline, "the other callers never queued"
                threading.Event().wait(0.01)
        monkeypatch.setattr(group_commit, "let_others_queue", others_queue_up)
        commits.clear()
        call(0, leader_work)
        for thread in threads:
            thread.join(10)
        monkeypatch.setattr(group_commit, "let_others_queue", lambda: None)
        return outcomes, len(commits)
    return run


def _add(name, then=None):
    def work(session):
        session.add(User(username=name, role="reviewer", password_hash="x"))
        session.flush()
        if then is not None:
            then()
        return name
    return work


def _refuse(session):
    raise Conflict("not yours", code="task_not_assigned")


def _names():
    return set(db.session.scalars(sa.select(User.username).where(User.username != "admin")))


def test_queued_callers_share_one_commit_and_a_refusal_stays_with_its_caller(group_of):
    outcomes, commits = group_of(_add("ann"), _refuse, _add("bob"))
    assert commits == 1
    assert outcomes[0] == "ann" and outcomes[2] == "bob"
    assert isinstance(outcomes[1], Conflict)
    assert _names() == {"ann", "bob"}


def test_an_unexpected_failure_reruns_each_caller_alone(group_of):
    def boom():
        raise RuntimeError("disk on fire")
    outcomes, commits = group_of(_add("ann"), _add("cid", then=boom), _add("bob"))
    # The group rolled back (cid had written), then each ran alone.
    assert commits == 2
    assert outcomes[0] == "ann" and outcomes[2] == "bob"
    assert isinstance(outcomes[1], RuntimeError)
    assert _names() == {"ann", "bob"}


def test_a_database_failure_goes_to_every_caller_without_reruns(group_of):
    def gone():
        raise DatabaseUnavailable("database gone")
    outcomes, commits = group_of(_add("ann"), _add("cid", then=gone))
    assert commits == 0
    assert all(isinstance(outcome, DatabaseUnavailable) for outcome in outcomes)
    assert _names() == set()


def test_the_lead_passes_on_and_a_lone_caller_runs_at_once(app, group_of):
    group_of(_add("ann"), _add("bob"))
    group = group_commit.group_of(db.engine)
    assert group.leading is False and group.queue == []
    assert group_commit.run_write_shared(db.session, _add("cid")) == "cid"
    assert _names() == {"ann", "bob", "cid"}


def test_a_leader_stopped_at_its_yield_hands_the_lead_on(app, monkeypatch):
    group = group_commit.group_of(db.engine)
    results = {}

    def bob():
        with app.app_context():
            results["bob"] = group_commit.run_write_shared(db.session, _add("bob"))
            db.session.remove()
    thread = threading.Thread(target=bob, daemon=True)
    yields = []

    def killed_at_first_yield():
        yields.append(1)
        if len(yields) == 1:  # ann leads: bob queues behind her, then she is stopped
            thread.start()
            while len(group.queue) < 2:
                threading.Event().wait(0.01)
            raise KeyboardInterrupt  # as a killed green thread's GreenletExit would
    monkeypatch.setattr(group_commit, "let_others_queue", killed_at_first_yield)
    with pytest.raises(KeyboardInterrupt):
        group_commit.run_write_shared(db.session, _add("ann"))
    thread.join(10)
    assert results == {"bob": "bob"}  # bob led next instead of waiting forever
    assert _names() == {"bob"}
    assert group.leading is False and group.queue == []
