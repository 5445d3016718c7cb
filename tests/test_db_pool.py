"""The MySQL/MariaDB connection pool: its settings, and what clients get when
every connection is busy (the contract's `unavailable`, not `internal_error`)."""
import threading

import pymysql
import pytest

from live import MYSQL, Reviewer, database_kind, wait_until
from qc_live.config import ConfigError, from_env

mysql_only = pytest.mark.skipif(database_kind() != "mysql",
                                reason="the pool settings are for MySQL/MariaDB")


def _lock_waits(database) -> int:
    """Transactions of this test's database waiting for a row lock (other
    people's tests share the MariaDB server)."""
    [(count,)] = database.query(
        "SELECT COUNT(*) FROM information_schema.innodb_trx t "
        "JOIN information_schema.processlist p ON p.id = t.trx_mysql_thread_id "
        "WHERE p.db = %s AND t.trx_state = 'LOCK WAIT'", database.name)
    return count


@mysql_only
def test_exhausted_pool_answers_unavailable_and_recovers(database, start_server):
    server = start_server(QC_DB_POOL_SIZE="1", QC_DB_MAX_OVERFLOW="0",
                          QC_DB_POOL_TIMEOUT="2")
    alice, bob = server.reviewer("alice"), server.reviewer("bob")
    t1, t2 = server.add_tasks([{"name": "one"}, {"name": "two"}])
    a = Reviewer(server, alice["token"]).connect()
    b = Reviewer(server, bob["token"]).connect()
    try:
        alice_task, bob_task = a.task()["id"], b.task()["id"]
        assert {alice_task, bob_task} == {t1["id"], t2["id"]}
        # Both acks written (they are batched, ~50 ms late): else the ack's
        # UPDATE could be what waits on the row lock below, holding the pool.
        wait_until(lambda: database.query(
            "SELECT COUNT(*) FROM tasks WHERE acked_at IS NOT NULL")[0][0] == 2,
            timeout=30, what="both offers acknowledged in the database")

        # Lock alice's task row from outside: her completion then waits in
        # MariaDB, holding the process's only pooled connection.
        holder = pymysql.connect(**MYSQL, database=database.name, autocommit=False)
        stuck = []
        try:
            holder.cursor().execute("SELECT id FROM tasks WHERE id = %s FOR UPDATE",
                                    (alice_task,))
            completing = threading.Thread(target=lambda: stuck.append(server.request(
                "POST", "/complete_task", alice["token"], json={"task_id": alice_task})))
            completing.start()
            wait_until(lambda: _lock_waits(database) > 0, timeout=30,
                       what="alice's completion waiting for the row lock")

            rest = server.request("GET", f"/tasks/{bob_task}", server.admin_token)
            assert rest.status_code == 503, rest.text
            assert rest.json()["error"]["code"] == "unavailable"
            ack = b.complete(bob_task)
            assert ack["ok"] is False and ack["error"]["code"] == "unavailable", ack
        finally:
            holder.rollback()
            holder.close()
        completing.join(60)

        # The stuck request finishes once the lock goes; nothing is lost.
        assert stuck and stuck[0].status_code == 200, stuck and stuck[0].text
        assert b.complete(bob_task)["ok"] is True
        assert server.task(bob_task)["status"] == "completed"
        assert server.task(alice_task)["status"] == "completed"
    finally:
        a.disconnect()
        b.disconnect()


def _env(tmp_path, **settings):
    return {"QC_INSTANCE_PATH": str(tmp_path), "QC_SECRET_KEY": "k" * 48, **settings}


def test_pool_settings_default_to_40_kept_connections_and_no_overflow(tmp_path):
    config = from_env(_env(tmp_path))
    assert (config.db_pool_size, config.db_max_overflow, config.db_pool_timeout) == (40, 0, 10)
    config = from_env(_env(tmp_path, QC_DB_POOL_SIZE="5", QC_DB_MAX_OVERFLOW="2",
                           QC_DB_POOL_TIMEOUT="0.5"))
    assert (config.db_pool_size, config.db_max_overflow, config.db_pool_timeout) == (5, 2, 0.5)


@pytest.mark.parametrize("name, value", [
    ("QC_DB_POOL_SIZE", "0"), ("QC_DB_POOL_SIZE", "-3"), ("QC_DB_POOL_SIZE", "4.5"),
    ("QC_DB_MAX_OVERFLOW", "-1"), ("QC_DB_MAX_OVERFLOW", "many"),
    ("QC_DB_POOL_TIMEOUT", "-1"), ("QC_DB_POOL_TIMEOUT", "soon"),
])
def test_bad_pool_settings_stop_start_up(tmp_path, name, value):
    with pytest.raises(ConfigError, match=name):
        from_env(_env(tmp_path, **{name: value}))
