"""Staff members as Telegram last showed them: the language of the texts the bot starts
to them (won deals, broadcast reports), and the name that says who decided.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "staffmember",
        sa.Column("telegram_user_id", sa.BigInteger(), autoincrement=False, primary_key=True),
        sa.Column("display_name", sa.String(200), nullable=True),
        sa.Column("username", sa.String(64), nullable=True),
        sa.Column("telegram_language", sa.String(16), nullable=True),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("staffmember")
