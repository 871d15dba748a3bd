"""Issue 9's tables (commit 46f704f): conversation state, leases, a shared send budget.

Commit 46f704f had no migrations: a database it made has these tables already,
so the upgrade creates only those missing.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Moment = sa.DateTime(timezone=True)


def upgrade() -> None:
    tables = set(sa.inspect(op.get_bind()).get_table_names())
    if "conversationstate" not in tables:
        op.create_table(
            "conversationstate",
            sa.Column("telegram_user_id", sa.BigInteger(), autoincrement=False),
            sa.Column("kind", sa.String(16)),
            sa.Column("state", sa.String(), nullable=False),  # JSON of plain values
            sa.Column("updated_at", Moment, nullable=False),
            sa.PrimaryKeyConstraint("telegram_user_id", "kind"),
        )
    if "lease" not in tables:
        op.create_table(
            "lease",
            sa.Column("name", sa.String(40), primary_key=True),
            sa.Column("holder", sa.String(100), nullable=False),
            sa.Column("expires_at", Moment, nullable=False),
        )
    if "sendbudget" not in tables:
        op.create_table(
            "sendbudget",
            sa.Column("name", sa.String(40), primary_key=True),
            sa.Column("tokens", sa.Float(), nullable=False),
            sa.Column("refilled_at", sa.Float(), nullable=False),  # seconds since the epoch
        )


def downgrade() -> None:
    for table in ("sendbudget", "lease", "conversationstate"):
        op.drop_table(table)
