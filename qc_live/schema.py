"""The database schema and its version: Alembic migrations under `migrations/`.

Every change to the tables is a revision there (Flask-Migrate wires Alembic to
the app: `flask --app qc_live db upgrade|current|history|migrate|check`).
Each upgrade runs through migrations/env.py, which holds the *migration lock*
for its whole length (`locked`) and first calls `prepare`:

- a database at a revision this code does not know (made by a newer release)
  is refused (`SchemaError`), never touched;
- a database made before migrations existed (`create_all`, no
  `alembic_version` table) is compared with the baseline revision's schema
  and stamped with it when it matches, or refused with the differences.

The lock: MySQL/MariaDB `GET_LOCK` (a named lock held by one connection), so
of several processes starting at once exactly one migrates and the others
wait, then find nothing left to do. SQLite: the migration is one
`BEGIN IMMEDIATE` transaction (DDL is transactional there), so it waits for
any writer and no writer runs beside it; foreign-key enforcement is off
during it, as Alembic's batch mode (table copies) needs, and checked after.

At start-up `run.py` upgrades to head (`upgrade`) unless `QC_AUTO_MIGRATE=0`,
and refuses to serve a database that is not at head (`require_current`).
"""
import logging
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from .database import WRITE_OPTION

log = logging.getLogger(__name__)
# Alembic says "Context impl SQLiteImpl" each time it looks at the version;
# what changed is logged once, by migrations/env.py.
logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
BASELINE = "0001_baseline"
LOCK_NAME = "qc_live.schema"
# How long a starting process waits for another one's migration (seconds).
LOCK_WAIT_SECONDS = 900
VERSION_TABLE = "alembic_version"
UPGRADE_COMMAND = "flask --app qc_live db upgrade"


class SchemaError(RuntimeError):
    """The database's schema cannot be used or upgraded by this code."""


def script_directory() -> ScriptDirectory:
    return ScriptDirectory(str(MIGRATIONS))


def head_revision() -> str:
    return script_directory().get_current_head()


def current_revision(connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade() -> None:
    """Bring the app's database to head (inside an app context). Raises
    SchemaError when the database is newer than this code or is not a
    qc_live database of a known shape."""
    from alembic import command
    from flask import current_app
    # Alembic itself, not flask_migrate.upgrade: that one turns every error
    # into a logged line and exit(1).
    command.upgrade(current_app.extensions["migrate"].migrate.get_config(), "head")


def require_current(engine) -> None:
    """Refuse (SchemaError) a database that is not exactly at head."""
    with engine.connect() as connection:
        current = current_revision(connection)
        head = head_revision()
        if current == head:
            return
        _refuse_unknown(current)
        tables = set(sa.inspect(connection).get_table_names())
    if current is None and not tables:
        raise SchemaError(f"the database is empty: run `{UPGRADE_COMMAND}` first "
                          "(or start with QC_AUTO_MIGRATE=1)")
    at = current or "no revision (made before migrations)"
    raise SchemaError(f"the database schema is at {at}, this code needs {head}: "
                      f"run `{UPGRADE_COMMAND}` (or start with QC_AUTO_MIGRATE=1)")


def _refuse_unknown(revision: str | None) -> None:
    if revision is None:
        return
    try:
        known = script_directory().get_revision(revision) is not None
    except Exception:  # alembic raises for an id it cannot resolve
        known = False
    if not known:
        raise SchemaError(
            f"the database schema is at revision {revision!r}, which this code does not "
            f"know: a newer release of qc_live made it. Run that release (or newer), or "
            f"restore a backup taken before the upgrade; this code refuses to serve it.")


@contextmanager
def locked(engine):
    """A connection holding the migration lock, for an upgrade to run on."""
    connection = engine.connect()
    try:
        if connection.dialect.name == "sqlite":
            raw = connection.connection.driver_connection
            # Outside any transaction, or SQLite ignores it.
            raw.execute("PRAGMA foreign_keys=OFF")
            # BEGIN IMMEDIATE (database.configure_engine): the write lock from the start.
            connection.execution_options(**{WRITE_OPTION: True}).begin()
            try:
                yield connection
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                if broken:
                    raise SchemaError(f"the migration left rows whose foreign keys point "
                                      f"nowhere: {broken[:5]}")
                connection.commit()
            except BaseException:
                connection.rollback()
                raise
            finally:
                raw.execute("PRAGMA foreign_keys=ON")
        else:
            got = connection.execute(sa.text("SELECT GET_LOCK(:name, :wait)"),
                                     {"name": LOCK_NAME, "wait": LOCK_WAIT_SECONDS}).scalar()
            connection.commit()
            if got != 1:
                raise SchemaError(f"another process held the migration lock for "
                                  f"{LOCK_WAIT_SECONDS} s; is a migration stuck? "
                                  f"(SELECT IS_USED_LOCK('{LOCK_NAME}') names its connection)")
            try:
                yield connection
                connection.commit()
            finally:
                connection.rollback()
                connection.execute(sa.text("SELECT RELEASE_LOCK(:name)"), {"name": LOCK_NAME})
                connection.commit()
    finally:
        connection.close()


def prepare(connection) -> None:
    """Under the lock, before Alembic looks at the version: refuse a newer
    database, and stamp a pre-migrations one with the baseline."""
    current = current_revision(connection)
    _refuse_unknown(current)
    if current is not None:
        return
    tables = set(sa.inspect(connection).get_table_names()) - {VERSION_TABLE}
    if not tables:
        return  # empty: the upgrade creates everything
    baseline = script_directory().get_revision(BASELINE).module
    expected = set(baseline.schema(connection.dialect).tables)
    if not tables & expected:
        raise SchemaError(f"the database has tables ({', '.join(sorted(tables))}) but none "
                          "of qc_live's: point DATABASE_URL at an empty database or at a "
                          "qc_live one")
    problems = differences(connection, baseline.schema(connection.dialect),
                           tolerate=baseline.OBSOLETE_INDEXES)
    if problems:
        raise SchemaError(
            "the database was made before migrations existed, and its tables differ from "
            "the last such release's (" + "; ".join(problems[:20]) + "). Refusing to guess: "
            "bring it to that release's schema by hand, or move its data into a new "
            "database (docs/deploy.md, Upgrading).")
    for table, index in baseline.OBSOLETE_INDEXES:
        names = {i["name"] for i in sa.inspect(connection).get_indexes(table)}
        if index in names:
            connection.execute(sa.text(f"DROP INDEX {index}" + (
                "" if connection.dialect.name == "sqlite" else f" ON {table}")))
    MigrationContext.configure(connection).stamp(script_directory(), BASELINE)
    log.info("stamped a database made before migrations with %s", BASELINE)


def differences(connection, metadata: sa.MetaData, tolerate=frozenset()) -> list[str]:
    """What Alembic's autogenerate would change to make the database match
    `metadata`, as sentences; empty when they match."""
    context = MigrationContext.configure(connection, opts={
        "compare_type": compare_type, "include_name": include_name})
    problems = []
    for change in _flatten(compare_metadata(context, metadata)):
        if change[0] in ("add_index", "remove_index") and \
                (change[1].table.name, change[1].name) in tolerate:
            continue
        problems.append(_describe(change))
    return problems


def include_name(name, type_, parent_names) -> bool:
    """Alembic sees qc_live's tables, not its own version table."""
    return not (type_ == "table" and name == VERSION_TABLE)


def _flatten(diffs):
    for diff in diffs:
        if isinstance(diff, list):  # column modifications come grouped
            yield from diff
        else:
            yield diff


def _describe(change) -> str:
    kind = change[0]
    if kind in ("add_table", "remove_table"):
        return f"{kind.replace('_', ' ')} {change[1].name}"
    if kind in ("add_index", "remove_index", "add_constraint", "remove_constraint"):
        item = change[1]
        columns = ", ".join(str(c) for c in getattr(item, "expressions", None) or
                            [c.name for c in item.columns])
        return f"{kind.replace('_', ' ')} {item.name} on {item.table.name} ({columns})"
    if kind in ("add_column", "remove_column"):
        return f"{kind.replace('_', ' ')} {change[2]}.{change[3].name}"
    if kind.startswith("modify_"):
        return f"{kind.replace('_', ' ')} {change[2]}.{change[3]}: {change[5]!r} -> {change[6]!r}"
    return repr(change)


def compare_type(context, inspected_column, metadata_column, inspected_type, metadata_type):
    """Alembic's type comparison, minus what a database only spells
    differently: MariaDB stores JSON as LONGTEXT with a json_valid check."""
    if isinstance(metadata_type.dialect_impl(context.dialect), sa.JSON) and \
            context.dialect.name in ("mysql", "mariadb") and \
            type(inspected_type).__name__ in ("LONGTEXT", "JSON"):
        return False
    return None  # Alembic's own comparison decides
