"""Second reviews and gold tasks (issue 17).

- `queues.audit_rate` (float, NOT NULL, server default 0): the share of a
  queue's completions sent to a second reviewer, the floor of each
  reviewer's adaptive audit probability (0: never audited);
- `tasks.kind` ('review' | 'audit', NOT NULL, server default 'review');
- `tasks.review_of` (the audited task's id, NULL for reviews; a foreign key
  to tasks.id and UNIQUE, `uq_tasks_review_of`: at most one audit per
  original, whatever the code does);
- `tasks.excluded_reviewer_id`: on an audit, the original's reviewer, whom
  the claim passes over in SQL (NULL for reviews);
- `tasks.expected_outcome` (NULL | 'pass' | 'fail'): a gold task's answer;
- `tasks.audit` (NULL | 'agreed' | 'disputed'): on an original, what its
  audit found;
- `tasks.final_outcome`, `tasks.final_note`, `tasks.finalized_at`: the final
  verdict and when it became final (task.finalized is written by the one
  UPDATE ... WHERE finalized_at IS NULL that changes a row: exactly once);
- indexes: ix_tasks_assignee_audit (assignee_id, audit) and
  ix_tasks_assignee_gold (assignee_id, expected_outcome, outcome) for the
  per-reviewer figures, read at each sampled completion;
  ix_tasks_audit_created (audit, finalized_at, created_at, id) for the
  dispute list.

Existing rows: every task a review, nothing audited, no gold; completed
tasks get finalized_at = completed_at and final_outcome = outcome (their
task.finalized was sent with task.completed), so none is finalised twice.

Revision ID: 0006_audits
Revises: 0005_forms
Create Date: 2026-11-29
"""
import sqlalchemy as sa
from alembic import op

revision = "0006_audits"
down_revision = "0005_forms"
branch_labels = None
depends_on = None


def upgrade():
    bind = op.get_bind()
    op.add_column("queues", sa.Column("audit_rate", sa.Float, nullable=False,
                                      server_default="0"))
    if bind.dialect.name == "sqlite":
        op.add_column("tasks", sa.Column("kind", sa.String(8), nullable=False,
                                         server_default="review"))
        # In place (no table copy, which foreign_keys=ON forbids while
        # task_events points at tasks): a REFERENCES column defaulting to NULL.
        op.execute("ALTER TABLE tasks ADD COLUMN review_of INTEGER "
                   "CONSTRAINT fk_tasks_review_of REFERENCES tasks (id)")
        for name, type_ in (("excluded_reviewer_id", sa.Integer), ("expected_outcome",
                            sa.String(8)), ("audit", sa.String(8)),
                            ("final_outcome", sa.String(8)), ("final_note", sa.Text),
                            ("finalized_at", sa.DateTime())):
            op.add_column("tasks", sa.Column(name, type_, nullable=True))
    else:
        # One ALTER TABLE (MariaDB rebuilds the table once, not once per column).
        op.execute("ALTER TABLE tasks ADD COLUMN kind VARCHAR(8) NOT NULL DEFAULT 'review', "
                   "ADD COLUMN review_of INTEGER NULL, "
                   "ADD COLUMN excluded_reviewer_id INTEGER NULL, "
                   "ADD COLUMN expected_outcome VARCHAR(8) NULL, "
                   "ADD COLUMN audit VARCHAR(8) NULL, "
                   "ADD COLUMN final_outcome VARCHAR(8) NULL, "
                   "ADD COLUMN final_note TEXT NULL, "
                   "ADD COLUMN finalized_at DATETIME(6) NULL, "
                   "ADD UNIQUE INDEX uq_tasks_review_of (review_of), "
                   "ADD CONSTRAINT fk_tasks_review_of FOREIGN KEY (review_of) "
                   "REFERENCES tasks (id)")
    tasks = sa.table("tasks", sa.column("status"), sa.column("outcome"), sa.column("note"),
                     sa.column("completed_at"), sa.column("final_outcome"),
                     sa.column("final_note"), sa.column("finalized_at"))
    bind.execute(sa.update(tasks).where(tasks.c.status == "completed")
                 .values(final_outcome=tasks.c.outcome, final_note=tasks.c.note,
                         finalized_at=tasks.c.completed_at))
    if bind.dialect.name == "sqlite":
        op.create_index("uq_tasks_review_of", "tasks", ["review_of"], unique=True)
        op.create_index("ix_tasks_assignee_audit", "tasks", ["assignee_id", "audit"])
        op.create_index("ix_tasks_assignee_gold", "tasks",
                        ["assignee_id", "expected_outcome", "outcome"])
        op.create_index("ix_tasks_audit_created", "tasks",
                        ["audit", "finalized_at", "created_at", "id"])
    else:
        op.execute("ALTER TABLE tasks ADD INDEX ix_tasks_assignee_audit (assignee_id, audit), "
                   "ADD INDEX ix_tasks_assignee_gold (assignee_id, expected_outcome, outcome), "
                   "ADD INDEX ix_tasks_audit_created (audit, finalized_at, created_at, id)")


def downgrade():
    bind = op.get_bind()
    op.drop_index("ix_tasks_audit_created", table_name="tasks")
    op.drop_index("ix_tasks_assignee_gold", table_name="tasks")
    op.drop_index("ix_tasks_assignee_audit", table_name="tasks")
    op.drop_index("uq_tasks_review_of", table_name="tasks")
    if bind.dialect.name != "sqlite":
        op.drop_constraint("fk_tasks_review_of", "tasks", type_="foreignkey")
    for column in ("finalized_at", "final_note", "final_outcome", "audit", "expected_outcome",
                   "excluded_reviewer_id", "review_of", "kind"):
        op.drop_column("tasks", column)
    op.drop_column("queues", "audit_rate")
