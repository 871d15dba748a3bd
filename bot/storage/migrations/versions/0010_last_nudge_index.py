"""An index for the reminders' tick: each salesperson's last nudge, from the index alone.

The tick asks for it for every salesperson (bot/services/reminders.py); with this index
the answer never depends on the planner's statistics being fresh (issue 22).

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_reminder_last_nudge", "reminder", ["salesperson_id", "partner_id", "kind", "id"]
    )


def downgrade() -> None:
    op.drop_index("ix_reminder_last_nudge", "reminder")
