"""Staff look-ups recorded (PRODUCT.md §8): who looked at partners' data, what, when.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "accesslog",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("who", sa.String(40), nullable=False),
        sa.Column("what", sa.String(200), nullable=False),
    )
    op.create_index("ix_accesslog_at", "accesslog", ["at"])


def downgrade() -> None:
    op.drop_index("ix_accesslog_at", "accesslog")
    op.drop_table("accesslog")
