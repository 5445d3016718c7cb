"""The floor under the MariaDB latency target, measured rather than estimated.

Target (issue #6): p50 of complete -> next task <= the echo round trip + 3x the
bare cost of one single-row commit through pymysql. This measures, in one run,
on one connection, with no sockets and no event loop, what the *database part*
of one completion costs through pymysql in each design:

  commit     UPDATE one row + COMMIT: the target's unit
  qc_live    Dispatcher.complete itself (SQLAlchemy Core; 8 round trips)
  raw        the same statements on a bare pymysql cursor (8 round trips)
  procedure  the same statements in a stored procedure, COMMIT inside:
             one CALL, one round trip

Each variant completes tasks one after another for one reviewer (completing
its task and claiming the next, the work loop at 1 reviewer); p50/p99 and the
process's CPU per completion. The stored procedure exists only in this
benchmark's scratch database; qc_live does not use one (docs/benchmarks.md).

    .venv/bin/python bench/mariadb_floor.py            # ~1 min
    .venv/bin/python bench/mariadb_floor.py --n 3000
"""
import argparse
import json
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

import pymysql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MYSQL = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}

COLUMNS = ("id, external_id, name, payload, priority, status, assignee_id, holder_id, "
           "created_at, assigned_at, acked_at, completed_at, deadline, outcome, note, updated_at")

# qc_live's statements (sql.py), spelled out for a bare cursor.
LOCK_REVIEWER = "SELECT id, role, active, available FROM users WHERE id = %s FOR UPDATE"
LOCK_TASK = f"SELECT {COLUMNS} FROM tasks WHERE id = %s FOR UPDATE"
FINISH = ("UPDATE tasks SET status = 'completed', holder_id = NULL, completed_at = %s, "
          "outcome = %s, note = NULL, updated_at = %s WHERE id = %s")
URGENT = ("SELECT id FROM tasks WHERE status = 'pending' AND priority = "
          "(SELECT q.priority FROM tasks AS q WHERE q.status = 'pending' AND "
          "(q.deadline IS NULL OR q.deadline > %s) ORDER BY q.priority DESC LIMIT 1) "
          "AND deadline > %s AND deadline <= %s ORDER BY deadline, id LIMIT 1 "
          "FOR UPDATE SKIP LOCKED")
FIFO = (f"SELECT {COLUMNS} FROM tasks WHERE status = 'pending' AND "
        "(deadline IS NULL OR deadline > %s) ORDER BY priority DESC, created_at, id LIMIT 1 "
        "FOR UPDATE SKIP LOCKED")
ASSIGN = ("UPDATE tasks SET status = 'assigned', assignee_id = %s, holder_id = %s, "
          "assigned_at = %s, acked_at = NULL, updated_at = %s WHERE id = %s")
EVENTS = ("INSERT INTO task_events (task_id, kind, reviewer_id, actor_id, at, detail) "
          "VALUES (%s, 'completed', %s, NULL, %s, %s), (%s, 'assigned', %s, NULL, %s, NULL)")

PROCEDURE = f"""
CREATE PROCEDURE qc_complete(IN p_reviewer INT, IN p_task INT, IN p_now DATETIME(6),
                             IN p_soon DATETIME(6), IN p_outcome VARCHAR(8))
BEGIN
  DECLARE v_active, v_available, v_holder, v_next INT DEFAULT NULL;
  DECLARE v_role, v_status VARCHAR(16) DEFAULT NULL;
  START TRANSACTION;
  SELECT role, active, available INTO v_role, v_active, v_available
    FROM users WHERE id = p_reviewer FOR UPDATE;
  SELECT status, holder_id INTO v_status, v_holder FROM tasks WHERE id = p_task FOR UPDATE;
  IF v_status <> 'assigned' OR v_holder IS NULL OR v_holder <> p_reviewer THEN
    ROLLBACK;
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'task_not_assigned';
  END IF;
  UPDATE tasks SET status = 'completed', holder_id = NULL, completed_at = p_now,
         outcome = p_outcome, note = NULL, updated_at = p_now WHERE id = p_task;
  INSERT INTO task_events (task_id, kind, reviewer_id, actor_id, at, detail)
    VALUES (p_task, 'completed', p_reviewer, NULL, p_now, NULL);
  IF v_active AND v_available THEN
    SELECT id INTO v_next FROM tasks WHERE status = 'pending' AND priority =
        (SELECT q.priority FROM tasks AS q WHERE q.status = 'pending'
           AND (q.deadline IS NULL OR q.deadline > p_now) ORDER BY q.priority DESC LIMIT 1)
      AND deadline > p_now AND deadline <= p_soon ORDER BY deadline, id LIMIT 1
      FOR UPDATE SKIP LOCKED;
    IF v_next IS NULL THEN
      SELECT id INTO v_next FROM tasks WHERE status = 'pending'
        AND (deadline IS NULL OR deadline > p_now)
        ORDER BY priority DESC, created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED;
    END IF;
    IF v_next IS NOT NULL THEN
      UPDATE tasks SET status = 'assigned', assignee_id = p_reviewer, holder_id = p_reviewer,
             assigned_at = p_now, acked_at = NULL, updated_at = p_now WHERE id = v_next;
      INSERT INTO task_events (task_id, kind, reviewer_id, actor_id, at, detail)
        VALUES (v_next, 'assigned', p_reviewer, NULL, p_now, NULL);
    END IF;
  END IF;
  SELECT {COLUMNS} FROM tasks WHERE id IN (p_task, v_next) ORDER BY id = p_task DESC;
  COMMIT;
END
"""


def timed(n: int, one) -> dict:
    walls = []
    cpu0 = time.process_time()
    for _ in range(n):
        t0 = time.perf_counter()
        one()
        walls.append((time.perf_counter() - t0) * 1000)
    cpu = (time.process_time() - cpu0) * 1000 / n
    walls.sort()
    return {"p50_ms": round(statistics.median(walls), 3),
            "p99_ms": round(walls[int(len(walls) * 0.99) - 1], 3),
            "cpu_ms": round(cpu, 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="completions per variant")
    parser.add_argument("--warmup", type=int, default=200)
    args = parser.parse_args()
    n, warm = args.n, args.warmup
    name = f"qc_bench_floor_{int(time.time())}"
    with pymysql.connect(**MYSQL) as admin:
        admin.cursor().execute(f"CREATE DATABASE {name}")
    try:
        return run(name, n, warm)
    finally:
        with pymysql.connect(**MYSQL) as admin:
            admin.cursor().execute(f"DROP DATABASE IF EXISTS {name}")


def run(name: str, n: int, warm: int) -> int:
    from qc_live import create_app, lifecycle, prepare_database, state
    from qc_live.lifecycle import TaskSpec
    from qc_live.clock import utcnow
    from qc_live.config import Config
    from qc_live.extensions import db
    from qc_live.models import User

    app = create_app(Config(
        database_url=f"mysql+pymysql://root@127.0.0.1:3306/{name}",
        secret_key="bench-secret-key-long-enough-for-hs256", async_mode="threading",
        instance_path=str(ROOT / "instance" / "bench-floor"), admin_username="admin",
        admin_password="bench-admin-password", log_level="WARNING"))
    prepare_database(app)
    results = {}
    variants = 3
    with app.app_context():
        reviewer = User(username="floor", role="reviewer", password_hash="x")
        db.session.add(reviewer)
        db.session.commit()
        rid = reviewer.id
        total = variants * (n + warm) + 10
        for start in range(0, total, 5000):
            specs = [TaskSpec(name=f"t{i}", payload={"sku": f"A-{i}", "lot": i},
                              external_id=f"floor-{i}")
                     for i in range(start, min(total, start + 5000))]
            state.dispatcher().create_tasks(db.session, specs, None)
        db.session.remove()

        def first(w):
            lifecycle.lock_reviewer(w, rid)
            return state.dispatcher()._claim(w, rid)
        held = [lifecycle.run(db.session, first).task["id"]]
        db.session.remove()

        def qc_live_once():
            outcome = state.dispatcher().complete(db.session, rid, held[0], "pass", None)
            held[0] = outcome.value["next_task"]["id"]
            db.session.remove()
        timed(warm, qc_live_once)
        results["qc_live"] = timed(n, qc_live_once)
        db.engine.dispose()

    conn = pymysql.connect(**MYSQL, database=name, autocommit=False)
    cur = conn.cursor()
    cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")

    def raw_once():
        now = utcnow()
        cur.execute(LOCK_REVIEWER, (rid,))
        cur.fetchone()
        cur.execute(LOCK_TASK, (held[0],))
        cur.fetchone()
        cur.execute(FINISH, (now, "pass", now, held[0]))
        cur.execute(URGENT, (now, now, now + timedelta(minutes=30)))
        urgent = cur.fetchone()
        cur.execute(FIFO, (now,))
        nxt = cur.fetchone()
        next_id = urgent[0] if urgent else nxt[0]
        cur.execute(ASSIGN, (rid, rid, now, now, next_id))
        cur.execute(EVENTS, (held[0], rid, now, json.dumps({"outcome": "pass"}),
                             next_id, rid, now))
        conn.commit()
        held[0] = next_id
    timed(warm, raw_once)
    results["raw"] = timed(n, raw_once)

    cur.execute(PROCEDURE)

    def procedure_once():
        now = utcnow()
        cur.execute("CALL qc_complete(%s, %s, %s, %s, %s)",
                    (rid, held[0], now, now + timedelta(minutes=30), "pass"))
        rows = cur.fetchall()
        while cur.nextset():
            pass
        held[0] = rows[1][0]
    timed(warm, procedure_once)
    results["procedure"] = timed(n, procedure_once)

    # As bench/load.py measures it: a row that really changes (an UPDATE that
    # changes nothing commits without writing the redo log).
    probe = pymysql.connect(**MYSQL, database=name, autocommit=False)
    pcur = probe.cursor()
    pcur.execute("CREATE TABLE bench_commit (id INT PRIMARY KEY, v BIGINT NOT NULL) "
                 "ENGINE=InnoDB")
    pcur.execute("INSERT INTO bench_commit VALUES (1, 0)")
    probe.commit()

    def commit_once():
        pcur.execute("UPDATE bench_commit SET v = v + 1 WHERE id = 1")
        probe.commit()
    timed(warm, commit_once)
    results["commit"] = timed(n, commit_once)

    def select_once():
        pcur.execute("SELECT 1")
        pcur.fetchone()
    results["select 1"] = timed(n, select_once)
    probe.close()
    conn.close()

    budget = 3 * results["commit"]["p50_ms"]
    print(f"### MariaDB: the database part of one completion ({n} each, one connection)\n")
    print("| variant | round trips | p50 ms | p99 ms | CPU ms (this process) | p50 ÷ 3× commit |")
    print("|---|---|---|---|---|---|")
    trips = {"commit": 2, "select 1": 1, "qc_live": 8, "raw": 8, "procedure": 1}
    for key in ("select 1", "commit", "qc_live", "raw", "procedure"):
        r = results[key]
        print(f"| {key} | {trips[key]} | {r['p50_ms']} | {r['p99_ms']} | {r['cpu_ms']} | "
              f"{r['p50_ms'] / budget:.2f} |")
    print(f"\n3× commit (the target's allowance above the echo round trip): {budget:.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
