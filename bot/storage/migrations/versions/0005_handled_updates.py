"""The updates the bot has taken to handle, so that one Telegram sends again is not
handled twice.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "handledupdate",
        sa.Column("update_id", sa.BigInteger(), autoincrement=False, primary_key=True),
        sa.Column("handled_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_handledupdate_handled_at", "handledupdate", ["handled_at"])


def downgrade() -> None:
    op.drop_index("ix_handledupdate_handled_at", "handledupdate")
    op.drop_table("handledupdate")
