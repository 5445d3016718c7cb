"""Indexes for every reviewer's audit figures at once (issue 17's board).

audits.reviewer_figures groups the audited tasks (audit IS NOT NULL) and the
gold tasks (expected_outcome IS NOT NULL) by reviewer, for GET
/stats/reviewers and the board's snapshot (up to ten times a second). With
only the per-reviewer indexes of 0006 (assignee_id first) both read every
task: a whole index on MariaDB, a scan and a row per audited task on SQLite
(~20-30 ms each at 100,000 tasks, growing with the table). These lead with
the filtered column and cover the query: a range over the audited or gold
tasks alone.

- ix_tasks_audit_assignee (audit, finalized_at, assignee_id)
- ix_tasks_gold_assignee (expected_outcome, assignee_id, outcome)

Revision ID: 0007_quality_indexes
Revises: 0006_audits
Create Date: 2026-11-29
"""
from alembic import op

revision = "0007_quality_indexes"
down_revision = "0006_audits"
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name == "sqlite":
        op.create_index("ix_tasks_audit_assignee", "tasks",
                        ["audit", "finalized_at", "assignee_id"])
        op.create_index("ix_tasks_gold_assignee", "tasks",
                        ["expected_outcome", "assignee_id", "outcome"])
    else:  # one ALTER TABLE: the table is rebuilt once
        op.execute("ALTER TABLE tasks "
                   "ADD INDEX ix_tasks_audit_assignee (audit, finalized_at, assignee_id), "
                   "ADD INDEX ix_tasks_gold_assignee (expected_outcome, assignee_id, outcome)")


def downgrade():
    op.drop_index("ix_tasks_gold_assignee", table_name="tasks")
    op.drop_index("ix_tasks_audit_assignee", table_name="tasks")
