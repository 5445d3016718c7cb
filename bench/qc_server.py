"""Start qc_live for a benchmark: exactly `python run.py`, plus knobs that only
the benchmarks use (nothing here changes qc_live's code or defaults):

QC_BENCH_EVENT_LIMIT=off  lift the per-socket event limit (qc_live/limits.py:
                        10 events/s, bursts of 30). A benchmark reviewer
                        completes hundreds of tasks a second on one socket;
                        no person does.
QC_BENCH_SQL_STATS=1    count SQL statements, transactions and their wall
                        time, and (MariaDB) every command pymysql sends: its
                        round trips; GET /_bench/sql returns and resets them.

    QC_BENCH_EVENT_LIMIT=off DATABASE_URL=... .venv/bin/python bench/qc_server.py

(run.py itself sets TCP_NODELAY and eventlet's max_size, from QC_MAX_CONNECTIONS.)
"""
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import run  # noqa: E402  -- picks the async mode and monkey-patches, as `python run.py`

_create_app = run.create_app


def _install_sql_stats(app) -> None:
    import threading
    import time
    from collections import defaultdict

    import sqlalchemy as sa
    from flask import jsonify

    lock = threading.Lock()
    stats = {"statements": defaultdict(lambda: [0, 0.0]), "commits": 0, "rollbacks": 0,
             "round_trips": 0}

    # Every command pymysql sends and waits for (a statement, COMMIT, ROLLBACK,
    # a ping): what SQLAlchemy's statement events do not all show.
    import pymysql.connections
    send = pymysql.connections.Connection._execute_command

    def counted(connection, command, sql):
        with lock:
            stats["round_trips"] += 1
        return send(connection, command, sql)
    pymysql.connections.Connection._execute_command = counted

    keys = {}

    def key(statement: str) -> str:
        # Cached: the same few statements run thousands of times, and the
        # counting must not cost the server much (it is inside the measurement).
        found = keys.get(statement)
        if found is None:
            # IN lists and VALUES rows vary in length: keep the statement's head.
            found = keys[statement] = " ".join(statement.split())[:140]
        return found

    @sa.event.listens_for(sa.engine.Engine, "before_cursor_execute")
    def _before(conn, cursor, statement, params, context, executemany):
        conn.info.setdefault("qc_bench_t", []).append(time.perf_counter())

    @sa.event.listens_for(sa.engine.Engine, "after_cursor_execute")
    def _after(conn, cursor, statement, params, context, executemany):
        started = conn.info["qc_bench_t"].pop()
        with lock:
            entry = stats["statements"][key(statement)]
            entry[0] += 1
            entry[1] += time.perf_counter() - started

    @sa.event.listens_for(sa.engine.Engine, "commit")
    def _commit(conn):
        with lock:
            stats["commits"] += 1

    @sa.event.listens_for(sa.engine.Engine, "rollback")
    def _rollback(conn):
        with lock:
            stats["rollbacks"] += 1

    @app.get("/_bench/sql")
    def bench_sql():
        with lock:
            body = {"commits": stats["commits"], "rollbacks": stats["rollbacks"],
                    "round_trips": stats["round_trips"],
                    "statements": sorted(([k, n, round(t, 6)] for k, (n, t)
                                          in stats["statements"].items()),
                                         key=lambda row: -row[1])}
            stats["statements"].clear()
            stats["commits"] = stats["rollbacks"] = stats["round_trips"] = 0
        return jsonify(body)


def create_app(*args, **kwargs):
    app = _create_app(*args, **kwargs)
    if os.environ.get("QC_BENCH_EVENT_LIMIT", "").lower() == "off":
        from qc_live.limits import TokenBucket
        app.extensions["qc_limits"].socket_events = TokenBucket(rate=1e9, burst=1e9)
    if os.environ.get("QC_BENCH_SQL_STATS"):
        _install_sql_stats(app)
    return app


run.create_app = create_app

if __name__ == "__main__":
    sys.exit(run.main())
