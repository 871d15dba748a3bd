"""Conflicts (PRODUCT.md §5): disputes, requests for more time, proof, staff items with
their deadlines, the overdue digest, and the name blocks similar names are found by.

Won deals waiting for staff become staff items, due 48 hours (the default
`approval_hours`) after they were reported; their notices point at those items.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op

from bot.storage.migrations.blocks import fill_name_blocks

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

DISPUTE_UNIQUE = "ix_registration_dispute_key"
DEFAULT_APPROVAL = dt.timedelta(hours=48)


def upgrade() -> None:
    # Plain ALTER TABLE ADD COLUMN on both databases: SQLite adds a column in place.
    op.add_column("registration", sa.Column("dispute_key", sa.String(40), nullable=True))
    op.add_column(
        "registration", sa.Column("extensions", sa.Integer(), nullable=False, server_default="0")
    )
    op.add_column(
        "registration",
        sa.Column("awaiting_extension", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column("registration", sa.Column("name_block", sa.String(40), nullable=True))
    # A unique index, not a constraint: SQLite adds one without copying the table.
    op.create_index(DISPUTE_UNIQUE, "registration", ["dispute_key"], unique=True)
    op.create_index("ix_registration_name_block", "registration", ["name_block"])
    op.add_column("customer", sa.Column("name_block", sa.String(40), nullable=True))
    op.create_index("ix_customer_name_block", "customer", ["name_block"])
    fill_name_blocks("customer", "vat", "name")
    fill_name_blocks("registration", "id", "customer_name")
    op.create_table(
        "staffitem",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "registration_id", sa.Integer(), sa.ForeignKey("registration.id"), nullable=False
        ),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("arrived_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.String(500), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(64), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=True),
        sa.Column("reason", sa.String(500), nullable=True),
    )
    op.create_index("ix_staffitem_registration_id", "staffitem", ["registration_id"])
    op.create_index("ix_staffitem_open", "staffitem", ["decided_at", "due_at"])
    op.create_table(
        "dispute",
        sa.Column(
            "registration_id",
            sa.Integer(),
            sa.ForeignKey("registration.id"),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("against_registration_id", sa.Integer(), sa.ForeignKey("registration.id")),
        sa.Column("last_purchase", sa.Date(), nullable=True),
    )
    op.create_table(
        "attachment",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "registration_id", sa.Integer(), sa.ForeignKey("registration.id"), nullable=False
        ),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("file_id", sa.String(255), nullable=False),
        sa.Column("file_name", sa.String(200), nullable=True),
        sa.Column("added_by", sa.String(64), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_attachment_registration_id", "attachment", ["registration_id"])
    op.create_table(
        "staffdigest",
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("chat_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
    )
    with op.batch_alter_table("staffnotice") as batch:
        batch.add_column(sa.Column("item_id", sa.Integer(), nullable=True))
        batch.create_foreign_key("staffnotice_item_id_fkey", "staffitem", ["item_id"], ["id"])
    op.create_index("ix_staffnotice_item_id", "staffnotice", ["item_id"])
    items_for_won_deals()


def items_for_won_deals() -> None:
    """A won deal waiting for staff arrived when it was last updated (reported won)."""
    moment = sa.DateTime(timezone=True)
    registration = sa.table(
        "registration", sa.column("id"), sa.column("status"), sa.column("updated_at", moment)
    )
    item = sa.table(
        "staffitem",
        sa.column("id"),
        sa.column("registration_id"),
        sa.column("kind"),
        sa.column("arrived_at", moment),
        sa.column("due_at", moment),
    )
    notice = sa.table("staffnotice", sa.column("registration_id"), sa.column("item_id"))
    bind = op.get_bind()
    won = bind.execute(
        sa.select(registration.c.id, registration.c.updated_at).where(
            registration.c.status == "won"
        )
    ).all()
    for registration_id, updated_at in won:
        arrived = _aware(updated_at)
        bind.execute(
            sa.insert(item).values(
                registration_id=registration_id,
                kind="won",
                arrived_at=arrived,
                due_at=arrived + DEFAULT_APPROVAL,
            )
        )
        item_id = bind.execute(
            sa.select(sa.func.max(item.c.id)).where(item.c.registration_id == registration_id)
        ).scalar_one()
        bind.execute(
            sa.update(notice)
            .where(notice.c.registration_id == registration_id)
            .values(item_id=item_id)
        )


def _aware(moment: dt.datetime) -> dt.datetime:
    """SQLite hands a timestamp back naive (it is UTC), PostgreSQL aware."""
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def downgrade() -> None:
    op.drop_index("ix_staffnotice_item_id", "staffnotice")
    with op.batch_alter_table("staffnotice") as batch:
        batch.drop_column("item_id")  # its foreign key goes with it
    op.drop_table("staffdigest")
    op.drop_index("ix_attachment_registration_id", "attachment")
    op.drop_table("attachment")
    op.drop_table("dispute")
    op.drop_index("ix_staffitem_open", "staffitem")
    op.drop_index("ix_staffitem_registration_id", "staffitem")
    op.drop_table("staffitem")
    op.drop_index("ix_customer_name_block", "customer")
    with op.batch_alter_table("customer") as batch:
        batch.drop_column("name_block")
    op.drop_index("ix_registration_name_block", "registration")
    op.drop_index(DISPUTE_UNIQUE, "registration")
    with op.batch_alter_table("registration") as batch:
        batch.drop_column("name_block")
        batch.drop_column("awaiting_extension")
        batch.drop_column("extensions")
        batch.drop_column("dispute_key")
