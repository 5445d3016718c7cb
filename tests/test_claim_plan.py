"""The claim's query plans with many queues: every read of `tasks` in a
reviewer's claim (queue.next_task) is an index range read, and a queue's
FIFO head is read from that queue's index (ix_tasks_queue_head), never by
walking every queue's order.

On MariaDB, left alone, the optimizer read a queue's FIFO head by walking
ix_tasks_queue (all queues) in order until a row of that queue turned up:
with FOR UPDATE, every claim of the floor walked (and locked, row by row)
the same global head: multi-queue claims ran at less than half the rate of
a single queue. bench/routing.py measures it at 1,000,000 tasks in 50 queues.
"""
import random
from datetime import timedelta

import sqlalchemy as sa

from qc_live import queue
from qc_live.clock import utcnow
from qc_live.extensions import db
from qc_live.models import Queue, Task

QUEUES = 50
PER_QUEUE_INDEXES = {"ix_tasks_queue_head", "ix_tasks_queue_due"}


class Moment:
    def __init__(self, now):
        self.now = now


def _fill(now) -> None:
    rng = random.Random(14)
    db.session.execute(sa.insert(Queue), [
        {"name": f"q{i:02d}", "min_level": 1 + i % 5, "relax_after_s": 300 if i % 7 == 0
         else None, "created_at": now} for i in range(QUEUES)])
    db.session.execute(sa.insert(Task), [{
        "name": f"t{n}", "payload": {}, "priority": rng.choice((0, 0, 0, 1, 1, 2)),
        "status": "pending", "queue": f"q{rng.randrange(QUEUES):02d}",
        "created_at": now - timedelta(seconds=rng.randint(0, 3600)), "updated_at": now,
        "deadline": now + timedelta(minutes=rng.choice((20, 90, 300))) if n % 10 == 0 else None,
    } for n in range(6000)])
    db.session.commit()
    sqlite = db.engine.dialect.name == "sqlite"
    db.session.execute(sa.text("ANALYZE" if sqlite else "ANALYZE TABLE tasks, queues"))
    db.session.commit()


def _claim_statements(now):
    """(label, statement, params) of the claim's reads of tasks: a reviewer
    with three queues (one only before its relax cutoff)."""
    reaches = [("q01", queue.ALL), ("q07", now - timedelta(seconds=300)), ("q10", queue.ALL)]
    shape = tuple(r is not queue.ALL for _, r in reaches)
    found = [("heads", queue._heads(shape), queue._params(Moment(now), reaches))]
    for name, r in reaches[:2]:
        urgent, fifo = queue._locking_heads(r is not queue.ALL)
        params = queue._params(Moment(now), [(name, r)])
        found += [(f"urgent {name}", urgent, params), (f"fifo {name}", fifo, params)]
    return found


def test_the_claims_reads_walk_one_queues_index_with_many_queues(app):
    now = utcnow()
    _fill(now)
    engine = db.engine
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as conn:
        for label, statement, params in _claim_statements(now):
            compiled = statement.compile(dialect=engine.dialect)
            values = compiled.construct_params(params)
            if sqlite:
                plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + compiled.string,
                                            tuple(values[k] for k in compiled.positiontup)).all()
                reads = [row[-1] for row in plan if row[-1].split()[0] in ("SEARCH", "SCAN")
                         and row[-1].split()[1].startswith(("tasks", "top"))]
                where = f"{label}\n{plan}"
                assert reads, where
                for detail in reads:
                    assert detail.startswith("SEARCH"), where
                    assert any(ix in detail for ix in PER_QUEUE_INDEXES), where
                    assert "(queue=?" in detail, where
            else:
                plan = conn.exec_driver_sql("EXPLAIN " + compiled.string, values).all()
                where = f"{label}\n{compiled.string}\n{plan}"
                # id, select_type, table, type, possible_keys, key, key_len, ref, rows, Extra
                reads = [row for row in plan if row[2] and not row[2].startswith("<")]
                assert reads, where
                for row in reads:
                    assert row[3] in ("ref", "range"), where
                    assert "filesort" not in (row[9] or ""), where
                    # Never a walk of every queue's FIFO order (ix_tasks_queue); the urgent
                    # read may take ix_tasks_deadline: the few tasks due soon.
                    assert row[5] in PER_QUEUE_INDEXES | {"ix_tasks_deadline"}, where
                    if row[5] == "ix_tasks_deadline":
                        assert label.startswith(("urgent", "heads")), where
                    if label.startswith("fifo"):
                        assert row[5] == "ix_tasks_queue_head", where
                    assert "filesort" not in (row[9] or ""), where

