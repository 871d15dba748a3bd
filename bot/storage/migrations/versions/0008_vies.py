"""What VIES said of each VAT number: answers kept 30 days, failures retried by the tick.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    moment = sa.DateTime(timezone=True)
    op.create_table(
        "viescheck",
        sa.Column("vat", sa.String(20), primary_key=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("address", sa.String(500), nullable=True),
        sa.Column("answered_at", moment, nullable=True),
        sa.Column("error", sa.String(40), nullable=True),
        sa.Column("failing_since", moment, nullable=True),
        sa.Column("retry_at", moment, nullable=True),
    )
    op.create_index("ix_viescheck_retry_at", "viescheck", ["retry_at"])


def downgrade() -> None:
    op.drop_index("ix_viescheck_retry_at", "viescheck")
    op.drop_table("viescheck")
