"""Alembic's entry point for qc_live (through Flask-Migrate).

Every online run (upgrade, downgrade, stamp, autogenerate) holds qc_live's
migration lock and first lets `qc_live.schema.prepare` refuse a newer database
or adopt one made before migrations; see qc_live/schema.py.
"""
import logging

from alembic import context
from flask import current_app

from qc_live import schema

config = context.config
log = logging.getLogger("alembic.env")
db = current_app.extensions["migrate"].db


def process_revision_directives(context_, revision, directives):
    # `flask db migrate` with no model change writes no empty revision.
    if getattr(config.cmd_opts, "autogenerate", False) and directives[0].upgrade_ops.is_empty():
        directives[:] = []
        log.info("No changes in schema detected.")


def configure(**kwargs):
    context.configure(target_metadata=db.metadata, render_as_batch=True,
                      compare_type=schema.compare_type, include_name=schema.include_name,
                      process_revision_directives=process_revision_directives, **kwargs)


def run_migrations_offline():
    """`--sql`: print the SQL for a database at a known revision."""
    configure(url=db.engine.url.render_as_string(hide_password=False), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    with schema.locked(db.engine) as connection:
        schema.prepare(connection)
        before = schema.current_revision(connection)
        configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
        after = schema.current_revision(connection)
        if after != before:
            schema.log.info("database schema migrated: %s -> %s", before or "empty", after)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
