"""Queues and skills: every task belongs to a queue, every reviewer has skills.

- `queues` (name, description, min_level, relax_after_s, created_at), with
  the `default` queue, which always exists;
- `skills` (user_id, queue, level 1..10), PRIMARY KEY (user_id, queue);
- `tasks.queue`, NOT NULL, server default 'default', a foreign key to
  queues.name: every existing task is in `default`;
- every existing reviewer gets {"default": 1}, and `default` asks for level
  1: an upgraded floor dispatches exactly as before;
- the claim's indexes: ix_tasks_queue_head (queue, status, priority desc,
  created_at, id), one small range read per queue a reviewer qualifies
  for, and ix_tasks_queue_due (queue, status, priority, deadline), the
  urgent head within a queue's top priority; ix_tasks_queue_created (status,
  queue, created_at, id) for GET /tasks?queue= by age (one status at a time)
  and the board's figures per queue (a range of the live statuses, covering).

The server default on tasks.queue lets the previous release (which does
not know the column) keep creating tasks during a rolling upgrade.

Revision ID: 0003_queues
Revises: 0002_username_key
Create Date: 2026-11-29
"""
from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0003_queues"
down_revision = "0002_username_key"
branch_labels = None
depends_on = None

NAME_LENGTH = 64


def _types(bind):
    if bind.dialect.name in ("mysql", "mariadb"):
        collation = "utf8mb4_nopad_bin" if bind.dialect.is_mariadb else "utf8mb4_0900_bin"
        return (mysql.VARCHAR(NAME_LENGTH, charset="utf8mb4", collation=collation),
                mysql.DATETIME(fsp=6))
    return sa.String(NAME_LENGTH), sa.DateTime()


def upgrade():
    bind = op.get_bind()
    name, timestamp = _types(bind)
    queues = op.create_table(
        "queues",
        sa.Column("name", name, primary_key=True),
        sa.Column("description", sa.String(255), nullable=False),
        sa.Column("min_level", sa.Integer, nullable=False),
        sa.Column("relax_after_s", sa.Integer, nullable=True),
        sa.Column("created_at", timestamp, nullable=False),
    )
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    op.bulk_insert(queues, [{"name": "default", "description": "", "min_level": 1,
                             "relax_after_s": None, "created_at": now}])
    skills = op.create_table(
        "skills",
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", name="fk_skills_user"),
                  primary_key=True),
        sa.Column("queue", name, sa.ForeignKey("queues.name", name="fk_skills_queue"),
                  primary_key=True),
        sa.Column("level", sa.Integer, nullable=False),
    )
    op.create_index("ix_skills_queue", "skills", ["queue", "level"])
    if bind.dialect.name == "sqlite":
        # SQLite adds a column with a REFERENCES clause in place when its
        # default is not NULL (no table copy, which foreign_keys=ON forbids
        # while task_events points at tasks).
        op.execute("ALTER TABLE tasks ADD COLUMN queue VARCHAR(64) DEFAULT 'default' NOT NULL "
                   "CONSTRAINT fk_tasks_queue REFERENCES queues (name)")
    else:
        op.add_column("tasks", sa.Column("queue", name, nullable=False,
                                         server_default="default"))
        op.create_foreign_key("fk_tasks_queue", "tasks", "queues", ["queue"], ["name"])
    users = sa.table("users", sa.column("id", sa.Integer), sa.column("role", sa.String))
    bind.execute(sa.insert(skills).from_select(
        ["user_id", "queue", "level"],
        sa.select(users.c.id, sa.literal("default"), sa.literal(1))
        .where(users.c.role == "reviewer")))
    tasks = sa.table("tasks", sa.column("queue"), sa.column("status"), sa.column("priority"),
                     sa.column("created_at"), sa.column("id"), sa.column("deadline"))
    op.create_index("ix_tasks_queue_head", "tasks",
                    [tasks.c.queue, tasks.c.status, tasks.c.priority.desc(),
                     tasks.c.created_at, tasks.c.id])
    op.create_index("ix_tasks_queue_due", "tasks",
                    ["queue", "status", "priority", "deadline"])
    op.create_index("ix_tasks_queue_created", "tasks", ["status", "queue", "created_at", "id"])


def downgrade():
    op.drop_index("ix_tasks_queue_created", table_name="tasks")
    op.drop_index("ix_tasks_queue_due", table_name="tasks")
    op.drop_index("ix_tasks_queue_head", table_name="tasks")
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        op.drop_constraint("fk_tasks_queue", "tasks", type_="foreignkey")
        op.drop_column("tasks", "queue")
    else:
        op.execute("ALTER TABLE tasks DROP COLUMN queue")
    op.drop_index("ix_skills_queue", table_name="skills")
    op.drop_table("skills")
    op.drop_table("queues")
