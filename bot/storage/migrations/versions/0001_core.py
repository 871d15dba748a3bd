"""The core's schema, the first version on main (commit 214741c).

Partners, their salespeople and invites, the vendor's customers and purchases,
registrations with their history, and the bot's small remembered facts.

Revision ID: 0001
Revises: (none)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Every moment is stored in UTC with its zone (PostgreSQL) or as UTC text (SQLite).
Moment = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "partner",
        sa.Column("code", sa.String(40), nullable=False),
        sa.Column("company", sa.String(200), nullable=False),
        sa.Column("level", sa.String(40), nullable=False),
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("created_at", Moment, nullable=False),
        sa.Column("updated_at", Moment, nullable=False),
        sa.UniqueConstraint("code"),
    )
    op.create_table(
        "salesperson",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("telegram_user_id", sa.BigInteger(), nullable=False),
        sa.Column("partner_id", sa.Integer(), sa.ForeignKey("partner.id"), nullable=False),
        sa.Column("language", sa.String(8)),
        sa.Column("reminders_enabled", sa.Boolean(), nullable=False),
        sa.Column("linked_at", Moment, nullable=False),
        sa.UniqueConstraint("telegram_user_id"),
    )
    op.create_index("ix_salesperson_partner_id", "salesperson", ["partner_id"])
    op.create_table(
        "invite",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("partner_id", sa.Integer(), sa.ForeignKey("partner.id"), nullable=False),
        sa.Column("created_at", Moment, nullable=False),
        sa.Column("expires_at", Moment, nullable=False),
        sa.Column("used_at", Moment),
        sa.Column("used_by_salesperson_id", sa.Integer(), sa.ForeignKey("salesperson.id")),
        sa.UniqueConstraint("token"),
    )
    op.create_index("ix_invite_partner_id", "invite", ["partner_id"])
    op.create_table(
        "customer",
        sa.Column("vat", sa.String(20), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
    )
    op.create_table(
        "purchase",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("vat", sa.String(20), nullable=False),
        sa.Column("purchase_date", sa.Date(), nullable=False),
        sa.UniqueConstraint("vat", "purchase_date", name="uq_purchase_vat_date"),
    )
    op.create_table(
        "registration",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("partner_id", sa.Integer(), sa.ForeignKey("partner.id"), nullable=False),
        sa.Column("salesperson_id", sa.Integer(), sa.ForeignKey("salesperson.id")),
        sa.Column("vat", sa.String(20), nullable=False),
        sa.Column("customer_name", sa.String(200), nullable=False),
        sa.Column("registered_on", sa.Date(), nullable=False),
        sa.Column("created_at", Moment, nullable=False),
        sa.Column("updated_at", Moment, nullable=False),
        sa.Column("protected_until", sa.Date(), nullable=False),
        sa.Column("protection_key", sa.String(20)),
        sa.Column("status", sa.String(16), nullable=False),
        # Money as whole cents, the multiplier as its text: exact on SQLite too.
        sa.Column("deal_value", sa.BigInteger(), nullable=False),
        sa.Column("product", sa.String(200), nullable=False),
        sa.Column("expected_close", sa.Date(), nullable=False),
        sa.Column("incentive_amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("incentive_version", sa.Date(), nullable=False),
        sa.Column("level", sa.String(40), nullable=False),
        sa.Column("loyalty_min_registrations", sa.Integer()),
        sa.Column("loyalty_multiplier", sa.String(24)),
        sa.Column("loyalty_count", sa.Integer(), nullable=False),
        sa.UniqueConstraint("protection_key"),
    )
    op.create_index(
        "ix_registration_loyalty", "registration", ["partner_id", "registered_on", "status"]
    )
    op.create_index("ix_registration_status", "registration", ["status"])
    op.create_index("ix_registration_vat", "registration", ["vat"])
    op.create_table(
        "statuschange",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "registration_id", sa.Integer(), sa.ForeignKey("registration.id"), nullable=False
        ),
        sa.Column("from_status", sa.String(16)),
        sa.Column("to_status", sa.String(16), nullable=False),
        sa.Column("changed_by", sa.String(64), nullable=False),
        sa.Column("changed_at", Moment, nullable=False),
        sa.Column("note", sa.String(500)),
    )
    op.create_index("ix_statuschange_registration_id", "statuschange", ["registration_id"])
    op.create_table(
        "botstate",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(500), nullable=False),
    )


def downgrade() -> None:
    for table in (
        "botstate",
        "statuschange",
        "registration",
        "purchase",
        "customer",
        "invite",
        "salesperson",
        "partner",
    ):
        op.drop_table(table)  # its indexes go with it
