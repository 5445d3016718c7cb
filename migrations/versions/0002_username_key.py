"""Usernames unique ignoring case: users.username_key, a UNIQUE index on it.

The key is the name NFKC-normalised and case-folded (a frozen copy of
qc_live.models.username_key is below: a migration must not change when the
code does). Existing rows get their key; if an older release let two names
differ in case only ('ADMIN' and 'admin'), the oldest account keeps the key
and the later ones keep NULL (logged): each still logs in by its exact
spelling, and renaming one gives it a key. Nullable, so that the previous
release, which does not know the column, keeps working during a rolling
upgrade.

Revision ID: 0002_username_key
Revises: 0001_baseline
Create Date: 2026-11-29
"""
import logging
import unicodedata

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0002_username_key"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None

log = logging.getLogger("qc_live.schema")


def _key(name: str) -> str:
    folded = unicodedata.normalize("NFKC", name.strip()).casefold()
    return unicodedata.normalize("NFKC", folded)


def upgrade():
    bind = op.get_bind()
    if bind.dialect.name in ("mysql", "mariadb"):
        collation = "utf8mb4_nopad_bin" if bind.dialect.is_mariadb else "utf8mb4_0900_bin"
        kind = mysql.VARCHAR(255, charset="utf8mb4", collation=collation)
    else:
        kind = sa.String(255)
    op.add_column("users", sa.Column("username_key", kind, nullable=True))
    users = sa.table("users", sa.column("id", sa.Integer), sa.column("username", sa.String),
                     sa.column("username_key", sa.String))
    seen = {}
    for user_id, name in bind.execute(sa.select(users.c.id, users.c.username)
                                      .order_by(users.c.id)).all():
        key = _key(name)
        if key in seen:
            log.warning("username %r (id %d) differs only in case from %r: it keeps its "
                        "spelling but no key; rename one of them", name, user_id, seen[key])
            continue
        if len(key) > 255:
            log.warning("username %r (id %d) is too long once normalised: it keeps its "
                        "spelling but no key; rename it", name, user_id)
            continue
        seen[key] = name
        bind.execute(users.update().where(users.c.id == user_id).values(username_key=key))
    op.create_index("uq_users_username_key", "users", ["username_key"], unique=True)


def downgrade():
    op.drop_index("uq_users_username_key", table_name="users")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("username_key")
