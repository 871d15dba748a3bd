"""Name blocks by the key that skips generic words (the longest telling word, near
blocks read too): a database that ran 0006 before that key (commit 770939d) holds
first-word blocks, which similar-names look-ups would miss. Rewritten for every row;
on a database that ran the newer 0006 it writes the same values again.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from bot.storage.migrations.blocks import fill_name_blocks

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    fill_name_blocks("customer", "vat", "name")
    fill_name_blocks("registration", "id", "customer_name")


def downgrade() -> None:
    """Nothing to undo: blocks by the newer key serve 0006's code as well."""
