"""Baseline: the schema of the last release before migrations (main at 2206c89).

Frozen here, independent of qc_live/models.py: `schema()` is what that
release's `create_all` made, on SQLite and on MySQL/MariaDB (DATETIME(6),
binary NO PAD collations for usernames and external ids). A database that
release made has no `alembic_version` table; qc_live/schema.py compares it
with `schema()` and stamps it with this revision when they match.

Revision ID: 0001_baseline
Revises:
Create Date: 2026-11-29
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None

# Indexes an older release made that this one dropped: a database may still
# have them, and stamping it drops them (they only cost time on every write).
OBSOLETE_INDEXES = {("tasks", "ix_tasks_assignee")}


def schema(dialect) -> sa.MetaData:
    """The baseline tables for `dialect` (a SQLAlchemy dialect)."""
    mysql_family = dialect.name in ("mysql", "mariadb")
    if mysql_family:
        collation = "utf8mb4_nopad_bin" if dialect.is_mariadb else "utf8mb4_0900_bin"

        def exact(length):
            return mysql.VARCHAR(length, charset="utf8mb4", collation=collation)
        timestamp = mysql.DATETIME(fsp=6)
    else:
        def exact(length):
            return sa.String(length)
        timestamp = sa.DateTime()

    md = sa.MetaData()
    sa.Table(
        "users", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("username", exact(80), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("available", sa.Boolean, nullable=False),
        sa.Column("idle_since", timestamp, nullable=True),
        sa.Column("offline_since", timestamp, nullable=True),
        sa.Column("token_version", sa.Integer, nullable=False),
        sa.Column("created_at", timestamp, nullable=False),
        sa.Index("ix_users_free", "role", "active", "available", "idle_since"),
    )
    tasks = sa.Table(
        "tasks", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("external_id", exact(191), nullable=True, unique=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("assignee_id", sa.Integer, sa.ForeignKey("users.id"), nullable=True),
        # UNIQUE: a reviewer holds at most one task.
        sa.Column("holder_id", sa.Integer, sa.ForeignKey("users.id"), nullable=True,
                  unique=True),
        sa.Column("created_at", timestamp, nullable=False),
        sa.Column("assigned_at", timestamp, nullable=True),
        sa.Column("acked_at", timestamp, nullable=True),
        sa.Column("completed_at", timestamp, nullable=True),
        sa.Column("deadline", timestamp, nullable=True),
        sa.Column("outcome", sa.String(8), nullable=True),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("updated_at", timestamp, nullable=False),
    )
    c = tasks.c
    sa.Index("ix_tasks_queue", c.status, c.priority.desc(), c.created_at, c.id)
    sa.Index("ix_tasks_due", c.status, c.priority, c.deadline)
    sa.Index("ix_tasks_deadline", c.status, c.deadline)
    sa.Index("ix_tasks_completed", c.status, c.completed_at)
    sa.Index("ix_tasks_created", c.status, c.created_at)
    sa.Index("ix_tasks_assignee_created", c.assignee_id, c.status, c.created_at, c.id)
    sa.Index("ix_tasks_assignee_priority", c.assignee_id, c.status, c.priority.desc(),
             c.created_at, c.id)
    sa.Index("ix_tasks_assignee_deadline", c.assignee_id, c.status, c.deadline, c.id)
    sa.Table(
        "task_events", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("task_id", sa.Integer, sa.ForeignKey("tasks.id"), nullable=False,
                  index=True),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("reviewer_id", sa.Integer, nullable=True),
        sa.Column("actor_id", sa.Integer, nullable=True),
        sa.Column("at", timestamp, nullable=False),
        sa.Column("detail", sa.JSON, nullable=True),
        sa.Index("ix_task_events_reviewer", "reviewer_id", "kind"),
    )
    sa.Table(
        "server_processes", md,
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("started_at", timestamp, nullable=False),
        sa.Column("heartbeat_at", timestamp, nullable=False, index=True),
    )
    sa.Table(
        "connections", md,
        sa.Column("sid", sa.String(64), primary_key=True),
        sa.Column("namespace", sa.String(32), nullable=False),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("process_id", sa.String(32), nullable=False, index=True),
        sa.Column("connected_at", timestamp, nullable=False),
        sa.Index("ix_connections_user", "user_id", "namespace"),
    )
    return md


def upgrade():
    bind = op.get_bind()
    schema(bind.dialect).create_all(bind)


def downgrade():
    bind = op.get_bind()
    schema(bind.dialect).drop_all(bind)
