"""Review forms (issue 15): a queue's form, and the structured verdict.

- `queues.form` (JSON, NULL: no form): what the reviewer page displays of a
  task's payload and how, the checklist, the fail reasons and whether a note
  is required on fail (docs/api.md "Review forms");
- `tasks.reasons` (JSON list of reason codes, NULL when not given) and
  `tasks.checklist` (JSON object id -> bool, NULL when not given): the
  verdict's structure beside `outcome` and `note`.

All three columns are new and nullable: existing queues have no form and
existing completed tasks have neither, which is what they were.

Revision ID: 0005_forms
Revises: 0004_webhooks
Create Date: 2026-11-29
"""
import sqlalchemy as sa
from alembic import op

revision = "0005_forms"
down_revision = "0004_webhooks"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("queues", sa.Column("form", sa.JSON, nullable=True))
    op.add_column("tasks", sa.Column("reasons", sa.JSON, nullable=True))
    op.add_column("tasks", sa.Column("checklist", sa.JSON, nullable=True))


def downgrade():
    op.drop_column("tasks", "checklist")
    op.drop_column("tasks", "reasons")
    op.drop_column("queues", "form")
