"""Results out: webhook subscriptions and their outbox (issue 16).

`webhooks` holds the subscriptions (the secret is stored to sign with; the API
never returns it). `webhook_deliveries` is the outbox: one row per event and
subscription, written in the same transaction as the task's transition, with
the body exactly as sent, its status, attempts, back-off and the lease of the
process delivering it. Both tables are new, so the upgrade touches no data.

Revision ID: 0004_webhooks
Revises: 0003_queues
Create Date: 2026-11-29
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0004_webhooks"
down_revision = "0003_queues"
branch_labels = None
depends_on = None


def upgrade():
    mysql_family = op.get_bind().dialect.name in ("mysql", "mariadb")
    timestamp = mysql.DATETIME(fsp=6) if mysql_family else sa.DateTime()
    long_text = mysql.MEDIUMTEXT() if mysql_family else sa.Text()
    op.create_table(
        "webhooks",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("events", sa.JSON, nullable=False),
        sa.Column("secret", sa.String(255), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created_at", timestamp, nullable=False),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("event_id", sa.String(36), nullable=False, unique=True),
        sa.Column("webhook_id", sa.Integer, sa.ForeignKey("webhooks.id"), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("task_id", sa.Integer, nullable=False),
        sa.Column("body", long_text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", timestamp, nullable=False),
        sa.Column("retry_until", timestamp, nullable=False),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.Column("created_at", timestamp, nullable=False),
        sa.Column("delivered_at", timestamp, nullable=True),
        sa.Column("claimed_by", sa.String(32), nullable=True),
        sa.Column("claimed_until", timestamp, nullable=True),
        sa.Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        sa.Index("ix_webhook_deliveries_log", "webhook_id", "id"),
    )


def downgrade():
    op.drop_table("webhook_deliveries")
    op.drop_table("webhooks")
