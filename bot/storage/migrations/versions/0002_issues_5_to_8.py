"""What issues 5 to 8 added, as of commit a7dbc48.

Salespeople's Telegram language, name, @username, last visit, unlinking and
blocking; registration references; the reminder log, staff notices, the daily
verdict tally, broadcasts and their deliveries.

Those versions had no migrations: a database made between the core and a7dbc48
has some of this already, so the upgrade adds only what is missing.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import secrets
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Moment = sa.DateTime(timezone=True)

# All nullable: the rows already there get NULL, as a new salesperson does.
NEW_SALESPERSON_COLUMNS: tuple[tuple[str, sa.types.TypeEngine[Any]], ...] = (
    ("telegram_language", sa.String(16)),
    ("display_name", sa.String(200)),
    ("username", sa.String(64)),
    ("last_seen_at", Moment),
    ("unlinked_at", Moment),
    ("unreachable_at", Moment),
)
# The name PostgreSQL gives the constraint when the table is created with it.
REFERENCE_UNIQUE = "registration_reference_key"
# As bot.references wrote them when this revision was made: "PAI-" and six characters.
REFERENCE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"


def upgrade() -> None:
    present = sa.inspect(op.get_bind())
    have = {c["name"] for c in present.get_columns("salesperson")}
    for name, type_ in NEW_SALESPERSON_COLUMNS:
        if name not in have:
            op.add_column("salesperson", sa.Column(name, type_))
    if "reference" not in {c["name"] for c in present.get_columns("registration")}:
        add_references()
    tables = set(present.get_table_names())
    for table, create in (
        ("reminder", create_reminder),
        ("staffnotice", create_staffnotice),
        ("verdicttally", create_verdicttally),
        ("broadcast", create_broadcast),
        ("broadcastdelivery", create_broadcastdelivery),
    ):
        if table not in tables:
            create()


def add_references() -> None:
    """Give every registration a random reference, then make it required and unique."""
    op.add_column("registration", sa.Column("reference", sa.String(10)))
    registration = sa.table("registration", sa.column("id"), sa.column("reference"))
    bind = op.get_bind()
    ids = bind.execute(sa.select(registration.c.id).order_by(registration.c.id)).scalars().all()
    references: set[str] = set()
    while len(references) < len(ids):
        references.add("PAI-" + "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(6)))
    if ids:
        bind.execute(
            sa.update(registration)
            .where(registration.c.id == sa.bindparam("registration_id"))
            .values(reference=sa.bindparam("new_reference")),
            [
                {"registration_id": id_, "new_reference": reference}
                for id_, reference in zip(ids, sorted(references), strict=True)
            ],
        )
    with op.batch_alter_table("registration") as batch:
        batch.alter_column("reference", existing_type=sa.String(10), nullable=False)
        batch.create_unique_constraint(REFERENCE_UNIQUE, ["reference"])


def create_reminder() -> None:
    op.create_table(
        "reminder",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("subject", sa.String(40), nullable=False),
        sa.Column("period", sa.String(40), nullable=False),
        sa.Column("salesperson_id", sa.Integer(), sa.ForeignKey("salesperson.id"), nullable=False),
        sa.Column("partner_id", sa.Integer(), sa.ForeignKey("partner.id"), nullable=False),
        sa.Column("registration_id", sa.Integer(), sa.ForeignKey("registration.id")),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("claim", sa.String(32), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", Moment, nullable=False),
        sa.Column("sent_at", Moment),
        sa.UniqueConstraint("kind", "subject", "period", "salesperson_id", name="uq_reminder_once"),
    )
    op.create_index("ix_reminder_claim", "reminder", ["claim"])
    op.create_index("ix_reminder_kind_due", "reminder", ["kind", "due_on"])
    op.create_index("ix_reminder_salesperson_id", "reminder", ["salesperson_id"])
    op.create_index("ix_reminder_status", "reminder", ["status"])


def create_staffnotice() -> None:
    op.create_table(
        "staffnotice",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "registration_id", sa.Integer(), sa.ForeignKey("registration.id"), nullable=False
        ),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_staffnotice_registration_id", "staffnotice", ["registration_id"])


def create_verdicttally() -> None:
    op.create_table(
        "verdicttally",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.UniqueConstraint("day", "outcome", name="uq_verdict_tally"),
    )


def create_broadcast() -> None:
    op.create_table(
        "broadcast",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("created_by", sa.BigInteger(), nullable=False),
        sa.Column("created_at", Moment, nullable=False),
        sa.Column("text_html", sa.String(), nullable=False),
        sa.Column("audience", sa.String(40), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("progress_chat_id", sa.BigInteger()),
        sa.Column("progress_message_id", sa.BigInteger()),
        sa.Column("finished_at", Moment),
    )


def create_broadcastdelivery() -> None:
    op.create_table(
        "broadcastdelivery",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("broadcast_id", sa.Integer(), sa.ForeignKey("broadcast.id"), nullable=False),
        sa.Column("salesperson_id", sa.Integer(), sa.ForeignKey("salesperson.id"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", Moment),
        sa.Column("sent_at", Moment),
        sa.Column("error", sa.String(200)),
        sa.UniqueConstraint("broadcast_id", "salesperson_id", name="uq_delivery_once"),
    )
    op.create_index("ix_delivery_broadcast_status", "broadcastdelivery", ["broadcast_id", "status"])


def downgrade() -> None:
    for table in ("broadcastdelivery", "broadcast", "verdicttally", "staffnotice", "reminder"):
        op.drop_table(table)
    with op.batch_alter_table("registration") as batch:
        batch.drop_column("reference")  # its unique constraint goes with it
    with op.batch_alter_table("salesperson") as batch:
        for name, _type in reversed(NEW_SALESPERSON_COLUMNS):
            batch.drop_column(name)
