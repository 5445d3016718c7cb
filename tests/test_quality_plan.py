"""The plans of every reviewer's audit and gold figures at once
(audits.AUDITED_BY_REVIEWER, audits.GOLD_BY_REVIEWER: the board's snapshot,
up to ten times a second, and GET /stats/reviewers): a covering range read
of the audited or gold tasks alone (0007_quality_indexes), never a read of
every task. Before, both went through the assignee-first indexes of 0006
(a skip-scan on SQLite, the whole index on MariaDB): bench/board_quality.py
measures it at 100,000 tasks."""
import random
from datetime import timedelta

import sqlalchemy as sa

from qc_live import audits
from qc_live.clock import utcnow
from qc_live.extensions import db
from qc_live.models import Role, Task, User

EXPECTED = {"audited": "ix_tasks_audit_assignee", "gold": "ix_tasks_gold_assignee"}


def _fill(now) -> None:
    rng = random.Random(17)
    db.session.execute(sa.insert(User), [
        {"username": f"r{n:02d}", "password_hash": "x", "role": Role.REVIEWER.value,
         "active": True, "available": True, "token_version": 0, "created_at": now}
        for n in range(50)])
    ids = list(db.session.scalars(sa.select(User.id).where(User.role == "reviewer")))
    rows = []
    for n in range(6000):
        done = now - timedelta(seconds=rng.randint(0, 86400))
        roll = rng.random()
        rows.append({"name": f"t{n}", "payload": {}, "priority": 0, "status": "completed",
                     "queue": "default", "created_at": done, "updated_at": done,
                     "assignee_id": rng.choice(ids), "assigned_at": done, "completed_at": done,
                     "outcome": "pass", "expected_outcome": "pass" if roll < 0.03 else None,
                     "audit": "agreed" if 0.03 <= roll < 0.08 else
                     "disputed" if 0.08 <= roll < 0.09 else None})
    db.session.execute(sa.insert(Task), rows)
    db.session.commit()
    sqlite = db.engine.dialect.name == "sqlite"
    db.session.execute(sa.text("ANALYZE" if sqlite else "ANALYZE TABLE tasks"))
    db.session.commit()


def test_every_reviewers_figures_read_only_the_audited_and_gold_tasks(app):
    _fill(utcnow())
    engine = db.engine
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as conn:
        for label, statement in (("audited", audits.AUDITED_BY_REVIEWER),
                                 ("gold", audits.GOLD_BY_REVIEWER)):
            compiled = statement.compile(dialect=engine.dialect,
                                         compile_kwargs={"literal_binds": True})
            if sqlite:
                plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + compiled.string).all()
                reads = [row[-1] for row in plan if row[-1].startswith(("SEARCH", "SCAN"))]
                where = f"{label}\n{plan}"
                assert reads, where
                for detail in reads:
                    assert detail.startswith("SEARCH tasks USING COVERING INDEX "
                                             + EXPECTED[label]), where
            else:
                plan = conn.exec_driver_sql("EXPLAIN " + compiled.string).all()
                where = f"{label}\n{compiled.string}\n{plan}"
                [row] = plan
                assert (row[3], row[5]) == ("range", EXPECTED[label]), where
                assert "Using index" in (row[9] or "").split("; "), where  # covering
    # And the figures are right.
    by_reviewer = {r["id"]: r for r in audits.reviewer_figures(db.session, trend=False)}
    db.session.rollback()
    gold = dict(db.session.execute(sa.select(Task.assignee_id, sa.func.count())
                                   .where(Task.expected_outcome.is_not(None))
                                   .group_by(Task.assignee_id)).all())
    audited = dict(db.session.execute(sa.select(Task.assignee_id, sa.func.count())
                                      .where(Task.audit.is_not(None))
                                      .group_by(Task.assignee_id)).all())
    db.session.rollback()
    assert {rid: r["gold_done"] for rid, r in by_reviewer.items() if r["gold_done"]} == gold
    assert {rid: r["audits_done"] for rid, r in by_reviewer.items() if r["audits_done"]} == \
        audited
