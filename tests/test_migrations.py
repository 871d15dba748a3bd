"""Migrations: databases earlier versions made, brought to this one through `pai-bot migrate`.

The earlier schemas are written out here as the versions on main made them (with
create_all, before migrations existed), independently of the revisions under test:
the core (214741c), a database between the core and issue 8 (e76c523), and the
version after issues 5 to 8 (a7dbc48).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import sys
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    insert,
    select,
    text,
)
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import SQLModel

from bot.app.cli import main
from bot.config import Settings
from bot.domain.errors import CustomerNotNew, CustomerProtected
from bot.domain.lifecycle import Status
from bot.domain.names import name_block
from bot.domain.references import is_reference
from bot.resources import open_resources
from bot.services.accounts import find_account
from bot.services.eligibility import check_eligibility
from bot.services.registrations import list_registrations
from bot.storage.database import make_engine
from bot.storage.migrations import HEAD, RECOGNISED
from bot.storage.schema import (
    SchemaOutdated,
    SchemaUnknown,
    alembic_config,
    create_tables,
    head_revision,
    migrate_database,
    migration_engine,
)
from models.types import Cents, DecimalText, UTCDateTime
from tests.conftest import reset_postgresql
from tests.factories import NOW, VATS, italian_vat, register, report

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0"
CORE, BETWEEN, ISSUES_5_TO_8 = "214741c", "e76c523", "a7dbc48"
# The revision each of those versions' databases stands at.
STANDS_AT = {CORE: "0001", BETWEEN: "0001", ISSUES_5_TO_8: "0002"}


def made_by(version: str) -> MetaData:
    """The tables `version` created, column for column, as its models declared them."""
    after_5 = version in (BETWEEN, ISSUES_5_TO_8)
    after_8 = version == ISSUES_5_TO_8
    metadata = MetaData()

    def moment(name: str, *, nullable: bool = False) -> Column[Any]:
        return Column(name, UTCDateTime, nullable=nullable)

    Table(
        "partner",
        metadata,
        Column("code", String(40), nullable=False, unique=True),
        Column("company", String(200), nullable=False),
        Column("level", String(40), nullable=False),
        Column("id", Integer, primary_key=True),
        moment("created_at"),
        moment("updated_at"),
    )
    Table(
        "salesperson",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("telegram_user_id", BigInteger, nullable=False, unique=True),
        Column("partner_id", Integer, ForeignKey("partner.id"), nullable=False, index=True),
        Column("language", String(8)),
        *(
            [
                Column("telegram_language", String(16)),
                Column("display_name", String(200)),
                Column("username", String(64)),
            ]
            if after_5
            else []
        ),
        Column("reminders_enabled", Boolean, nullable=False),
        moment("linked_at"),
        *(
            [moment("last_seen_at", nullable=True), moment("unlinked_at", nullable=True)]
            if after_5
            else []
        ),
        *([moment("unreachable_at", nullable=True)] if after_8 else []),
    )
    Table(
        "invite",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("token", String(64), nullable=False, unique=True),
        Column("partner_id", Integer, ForeignKey("partner.id"), nullable=False, index=True),
        moment("created_at"),
        moment("expires_at"),
        moment("used_at", nullable=True),
        Column("used_by_salesperson_id", Integer, ForeignKey("salesperson.id")),
    )
    Table(
        "customer",
        metadata,
        Column("vat", String(20), primary_key=True),
        Column("name", String(200), nullable=False),
    )
    Table(
        "purchase",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("vat", String(20), nullable=False),
        Column("purchase_date", Date, nullable=False),
        UniqueConstraint("vat", "purchase_date", name="uq_purchase_vat_date"),
    )
    Table(
        "registration",
        metadata,
        Column("id", Integer, primary_key=True),
        *([Column("reference", String(10), nullable=False, unique=True)] if after_5 else []),
        Column("partner_id", Integer, ForeignKey("partner.id"), nullable=False),
        Column("salesperson_id", Integer, ForeignKey("salesperson.id")),
        Column("vat", String(20), nullable=False, index=True),
        Column("customer_name", String(200), nullable=False),
        Column("registered_on", Date, nullable=False),
        moment("created_at"),
        moment("updated_at"),
        Column("protected_until", Date, nullable=False),
        Column("protection_key", String(20), unique=True),
        Column("status", String(16), nullable=False, index=True),
        Column("deal_value", Cents, nullable=False),
        Column("product", String(200), nullable=False),
        Column("expected_close", Date, nullable=False),
        Column("incentive_amount", Cents, nullable=False),
        Column("currency", String(3), nullable=False),
        Column("incentive_version", Date, nullable=False),
        Column("level", String(40), nullable=False),
        Column("loyalty_min_registrations", Integer),
        Column("loyalty_multiplier", DecimalText),
        Column("loyalty_count", Integer, nullable=False),
        Index("ix_registration_loyalty", "partner_id", "registered_on", "status"),
    )
    Table(
        "statuschange",
        metadata,
        Column("id", Integer, primary_key=True),
        Column(
            "registration_id", Integer, ForeignKey("registration.id"), nullable=False, index=True
        ),
        Column("from_status", String(16)),
        Column("to_status", String(16), nullable=False),
        Column("changed_by", String(64), nullable=False),
        moment("changed_at"),
        Column("note", String(500)),
    )
    Table(
        "botstate",
        metadata,
        Column("key", String(64), primary_key=True),
        Column("value", String(500), nullable=False),
    )
    if not after_8:
        return metadata
    Table(
        "reminder",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("kind", String(16), nullable=False),
        Column("subject", String(40), nullable=False),
        Column("period", String(40), nullable=False),
        Column("salesperson_id", Integer, ForeignKey("salesperson.id"), nullable=False, index=True),
        Column("partner_id", Integer, ForeignKey("partner.id"), nullable=False),
        Column("registration_id", Integer, ForeignKey("registration.id")),
        Column("due_on", Date, nullable=False),
        Column("status", String(16), nullable=False, index=True),
        Column("claim", String(32), nullable=False, index=True),
        Column("attempts", Integer, nullable=False),
        moment("created_at"),
        moment("sent_at", nullable=True),
        UniqueConstraint("kind", "subject", "period", "salesperson_id", name="uq_reminder_once"),
        Index("ix_reminder_kind_due", "kind", "due_on"),
    )
    Table(
        "staffnotice",
        metadata,
        Column("id", Integer, primary_key=True),
        Column(
            "registration_id", Integer, ForeignKey("registration.id"), nullable=False, index=True
        ),
        Column("chat_id", BigInteger, nullable=False),
        Column("message_id", BigInteger, nullable=False),
    )
    Table(
        "verdicttally",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("day", Date, nullable=False),
        Column("outcome", String(16), nullable=False),
        Column("count", Integer, nullable=False),
        UniqueConstraint("day", "outcome", name="uq_verdict_tally"),
    )
    Table(
        "broadcast",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("created_by", BigInteger, nullable=False),
        moment("created_at"),
        Column("text_html", String, nullable=False),
        Column("audience", String(40), nullable=False),
        Column("status", String(16), nullable=False),
        Column("progress_chat_id", BigInteger),
        Column("progress_message_id", BigInteger),
        moment("finished_at", nullable=True),
    )
    Table(
        "broadcastdelivery",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("broadcast_id", Integer, ForeignKey("broadcast.id"), nullable=False),
        Column("salesperson_id", Integer, ForeignKey("salesperson.id"), nullable=False),
        Column("status", String(16), nullable=False),
        Column("attempts", Integer, nullable=False),
        moment("next_attempt_at", nullable=True),
        moment("sent_at", nullable=True),
        Column("error", String(200)),
        UniqueConstraint("broadcast_id", "salesperson_id", name="uq_delivery_once"),
        Index("ix_delivery_broadcast_status", "broadcast_id", "status"),
    )
    return metadata


# --- an earlier version's database, with the rows its users left ---------------------

REGISTERED = dt.date(2026, 10, 1)  # two months before NOW: still protected
CREATED = dt.datetime(2026, 10, 1, 9, 30, tzinfo=dt.UTC)


async def add(connection: AsyncConnection, table: Table, **values: Any) -> Any:
    """Insert one row as the earlier version did; its primary key back."""
    result = await connection.execute(insert(table).values(**values))
    return result.inserted_primary_key[0]


async def fill(connection: AsyncConnection, metadata: MetaData, version: str) -> None:
    """Partners, people, invites, the vendor's history, deals in every status, their history."""
    t = metadata.tables
    after_5 = version in (BETWEEN, ISSUES_5_TO_8)
    partners = {}
    for code, company, level in (
        ("ACME", "Acme Informatica S.r.l.", "gold"),
        ("BETA", "Beta Sistemi S.p.A.", "certified"),
        ("GAMMA", "Gamma Soluzioni", "registered"),
    ):
        partners[code] = await add(
            connection,
            t["partner"],
            code=code,
            company=company,
            level=level,
            created_at=CREATED - dt.timedelta(days=200),
            updated_at=CREATED - dt.timedelta(days=100),
        )
    people = {}
    for telegram_id, code, language, reminders in (
        (1001, "ACME", "it", True),
        (1002, "ACME", None, True),
        (2001, "BETA", "en", False),
        (3001, "GAMMA", None, True),
        (9_000_000_001, "GAMMA", "it", True),  # Telegram ids beyond 32 bits
    ):
        extra: dict[str, Any] = {}
        if after_5:
            extra = {
                "telegram_language": "it-IT",
                "display_name": f"Persona {telegram_id}",
                "username": f"user{telegram_id}",
                "last_seen_at": CREATED,
                "unlinked_at": CREATED if telegram_id == 1002 else None,
            }
        if version == ISSUES_5_TO_8:
            extra["unreachable_at"] = CREATED if telegram_id == 3001 else None
        people[telegram_id] = await add(
            connection,
            t["salesperson"],
            telegram_user_id=telegram_id,
            partner_id=partners[code],
            language=language,
            reminders_enabled=reminders,
            linked_at=CREATED - dt.timedelta(days=150),
            **extra,
        )
    for token, code, used_by in (
        ("tok-used", "ACME", 1001),
        ("tok-open", "BETA", None),
        ("tok-old", "GAMMA", None),
    ):
        await add(
            connection,
            t["invite"],
            token=token,
            partner_id=partners[code],
            created_at=CREATED - dt.timedelta(days=160),
            expires_at=CREATED - dt.timedelta(days=153),
            used_at=CREATED - dt.timedelta(days=155) if used_by else None,
            used_by_salesperson_id=people[used_by] if used_by else None,
        )
    for index, vat in enumerate(VATS):
        await add(connection, t["customer"], vat=vat, name=f"Cliente {index} S.r.l.")
    purchases = [
        (VATS[0], dt.date(2025, 1, 15)),
        (VATS[0], dt.date(2025, 2, 20)),
        (VATS[3], dt.date(2024, 11, 30)),
        (italian_vat(40), dt.date(2026, 9, 1)),  # bought lately: not new
    ]
    for vat, day in purchases:
        await add(connection, t["purchase"], vat=vat, purchase_date=day)

    def deal(index: int, code: str, person: int | None, status: str, **frozen: Any) -> dict:
        vat = VATS[index]
        holding = status in ("qualified", "won", "approved", "paid")
        row = {
            "partner_id": partners[code],
            "salesperson_id": people[person] if person else None,
            "vat": vat,
            "customer_name": f"Cliente {index} S.r.l.",
            "registered_on": REGISTERED - dt.timedelta(days=index),
            "created_at": CREATED - dt.timedelta(days=index),
            "updated_at": CREATED,
            "protected_until": REGISTERED + dt.timedelta(days=90 - index),
            "protection_key": vat if holding else None,
            "status": status,
            "deal_value": Decimal("12500.00") + index,
            "product": "Accounting suite, 10 seats",
            "expected_close": dt.date(2027, 1, 31),
            "incentive_amount": Decimal("550.00"),
            "currency": "EUR",
            "incentive_version": dt.date(2025, 7, 1),
            "level": "gold",
            "loyalty_min_registrations": 3,
            "loyalty_multiplier": Decimal("1.10"),
            "loyalty_count": 4,
        }
        row.update(frozen)
        if after_5:
            row["reference"] = f"PAI-{index + 2}ABCDE"
        return row

    deals = [
        deal(0, "ACME", 1001, "qualified"),
        deal(1, "ACME", 1002, "won"),
        deal(2, "BETA", 2001, "approved", level="certified", incentive_amount=Decimal("330.00")),
        deal(3, "BETA", 2001, "lost"),
        deal(4, "GAMMA", 3001, "expired", loyalty_min_registrations=None, loyalty_multiplier=None),
        deal(5, "ACME", None, "rejected"),
        deal(6, "ACME", 1001, "paid", incentive_amount=Decimal("200.00"), level="gold"),
    ]
    moves = {
        "qualified": [],
        "won": ["won"],
        "approved": ["won", "approved"],
        "lost": ["lost"],
        "expired": ["expired"],
        "rejected": ["won", "rejected"],
        "paid": ["won", "approved", "paid"],
    }
    registrations = []
    for row in deals:
        registration = await add(connection, t["registration"], **row)
        registrations.append(registration)
        before = None
        for step, status in enumerate(["qualified", *moves[row["status"]]]):
            await add(
                connection,
                t["statuschange"],
                registration_id=registration,
                from_status=before,
                to_status=status,
                changed_by="staff:42" if status in ("approved", "rejected", "paid") else "tg:1001",
                changed_at=row["created_at"] + dt.timedelta(days=step),
                note="budget cut" if status in ("lost", "rejected") else None,
            )
            before = status
    await add(connection, t["botstate"], key="bot_username", value="pai_bot")
    if version != ISSUES_5_TO_8:
        return
    await add(
        connection,
        t["reminder"],
        kind="nudge",
        subject=f"partner:{partners['GAMMA']}",
        period="1",
        salesperson_id=people[3001],
        partner_id=partners["GAMMA"],
        registration_id=None,
        due_on=dt.date(2026, 11, 1),
        status="sent",
        claim="tick-1",
        attempts=1,
        created_at=CREATED,
        sent_at=CREATED,
    )
    await add(
        connection,
        t["staffnotice"],
        registration_id=registrations[1],
        chat_id=-1001234567890,
        message_id=77,
    )
    await add(connection, t["verdicttally"], day=REGISTERED, outcome="new", count=12)
    broadcast = await add(
        connection,
        t["broadcast"],
        created_by=42,
        created_at=CREATED,
        text_html="<b>Novità</b> del programma",
        audience="all",
        status="done",
        progress_chat_id=42,
        progress_message_id=5,
        finished_at=CREATED,
    )
    for person, status in ((1001, "delivered"), (3001, "blocked")):
        await add(
            connection,
            t["broadcastdelivery"],
            broadcast_id=broadcast,
            salesperson_id=people[person],
            status=status,
            attempts=1,
            next_attempt_at=None,
            sent_at=CREATED,
            error="Forbidden" if status == "blocked" else None,
        )


async def fresh(database_url: str) -> None:
    """An empty database: the PostgreSQL test database is shared by the tests."""
    if database_url.startswith("postgres"):
        await reset_postgresql(database_url)


async def build(database_url: str, version: str) -> MetaData:
    """A database as `version` made it at its first start, then used for a while."""
    await fresh(database_url)
    metadata = made_by(version)
    engine = make_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
            await fill(connection, metadata, version)
    finally:
        await engine.dispose()
    return metadata


async def rows_of(database_url: str, metadata: MetaData) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of `metadata`'s tables, in the columns it knows, by primary key."""
    engine = make_engine(database_url)
    try:
        async with engine.connect() as connection:
            return {
                table.name: [
                    tuple(row)
                    for row in await connection.execute(
                        select(table).order_by(*table.primary_key.columns)
                    )
                ]
                for table in metadata.sorted_tables
            }
    finally:
        await engine.dispose()


async def on_connection(database_url: str, work: Callable[[Connection], Any]) -> Any:
    engine = migration_engine(database_url)
    try:
        async with engine.begin() as connection:
            return await connection.run_sync(work)
    finally:
        await engine.dispose()


async def differences(database_url: str, metadata: MetaData) -> list[Any]:
    """What Alembic's autogenerate would change to make the database match `metadata`."""

    def compare(connection: Connection) -> list[Any]:
        return list(compare_metadata(MigrationContext.configure(connection), metadata))

    return await on_connection(database_url, compare)


async def walk(database_url: str, step: Callable[[Config, str], None], revision: str) -> None:
    await on_connection(database_url, lambda connection: step(alembic_config(connection), revision))


async def recorded_revision(database_url: str) -> str | None:
    def current(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    return await on_connection(database_url, current)


async def pai_bot(monkeypatch, capsys, database_url: str, *argv: str) -> tuple[int, str, str]:
    """The real CLI, as staff run it, on `database_url`."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    code = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def shell(tmp_path, monkeypatch):
    """A shell in an empty folder (no .env), with none of the bot's settings."""
    monkeypatch.chdir(tmp_path)
    for name in ("TELEGRAM_BOT_TOKEN", "TELEGRAM_BOT_USERNAME", "PAI_RULES_FILE", "PAI_ADMIN_IDS"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


# --- every revision, up and down ---------------------------------------------------


async def test_every_migration_walks_up_down_and_up_again_and_its_head_matches_the_models(
    database_url,
):
    await fresh(database_url)
    revisions = ["0001", "0002", head_revision()]
    # Each earlier revision is exactly what that version's create_all made.
    expected = {"0001": made_by(CORE), "0002": made_by(ISSUES_5_TO_8)}
    for revision in revisions:
        await walk(database_url, command.upgrade, revision)
        assert await recorded_revision(database_url) == revision
        assert await differences(database_url, expected.get(revision, SQLModel.metadata)) == []
    for revision in reversed(revisions[:-1]):
        await walk(database_url, command.downgrade, revision)
        assert await recorded_revision(database_url) == revision
        assert await differences(database_url, expected[revision]) == []
    await walk(database_url, command.downgrade, "base")
    assert await recorded_revision(database_url) is None
    assert await differences(database_url, MetaData()) == []  # no table of ours is left
    await walk(database_url, command.upgrade, "head")
    assert await differences(database_url, SQLModel.metadata) == []


async def test_0007_rewrites_name_blocks_that_0006_keyed_by_the_first_word(database_url):
    await fresh(database_url)
    await walk(database_url, command.upgrade, "0006")
    names = {f"IT{n:011d}": f"Studio Tecnico Bianchi {n} S.r.l." for n in range(2500)}

    def first_word_blocks(connection: Connection) -> None:
        connection.execute(
            text("INSERT INTO customer (vat, name, name_block) VALUES (:vat, :name, 'studio')"),
            [{"vat": vat, "name": name} for vat, name in names.items()],
        )

    def blocks(connection: Connection) -> set[str]:
        return set(connection.execute(text("SELECT name_block FROM customer")).scalars())

    await on_connection(database_url, first_word_blocks)
    await walk(database_url, command.upgrade, "0007")
    # Every row, past the first batch of 1,000: the key of today's bot/domain/names.py.
    assert await on_connection(database_url, blocks) == {name_block("Studio Tecnico Bianchi")}
    await walk(database_url, command.downgrade, "0006")
    assert await recorded_revision(database_url) == "0006"


# --- an earlier version's database through `pai-bot migrate` ---------------------------


@pytest.mark.parametrize("version", [CORE, BETWEEN, ISSUES_5_TO_8])
async def test_pai_bot_migrate_keeps_every_row_and_link_an_earlier_version_left(
    database_url, version, shell, monkeypatch, capsys
):
    metadata = await build(database_url, version)
    before = await rows_of(database_url, metadata)

    code, out, err = await pai_bot(monkeypatch, capsys, database_url, "migrate")

    assert code == 0, err
    assert f"its tables match revision {STANDS_AT[version]}." in out
    assert f"Migrated from revision {STANDS_AT[version]} to {head_revision()}" in out
    assert await recorded_revision(database_url) == head_revision()
    assert await differences(database_url, SQLModel.metadata) == []
    # Every row of every table, every value, as the earlier version left it.
    assert await rows_of(database_url, metadata) == before
    assert len(before["registration"]) == 7
    assert len(before["purchase"]) == 4
    await links_survived(database_url)
    await won_deals_became_staff_items(database_url)
    await references_given(database_url, version)
    await services_work(database_url)
    # And back: the core's schema again, whatever made the constraints being dropped.
    await walk(database_url, command.downgrade, "0001")
    assert await differences(database_url, made_by(CORE)) == []


async def links_survived(database_url: str) -> None:
    """Who belongs to which partner, and whose each registration is, by natural keys."""
    engine = make_engine(database_url)
    try:
        async with engine.connect() as connection:
            people = (
                await connection.execute(
                    text(
                        "SELECT s.telegram_user_id, p.code FROM salesperson s "
                        "JOIN partner p ON p.id = s.partner_id ORDER BY s.telegram_user_id"
                    )
                )
            ).all()
            deals = (
                await connection.execute(
                    text(
                        "SELECT r.vat, c.name, p.code, s.telegram_user_id, r.status, "
                        "(SELECT count(*) FROM statuschange h WHERE h.registration_id = r.id) "
                        "FROM registration r JOIN partner p ON p.id = r.partner_id "
                        "JOIN customer c ON c.vat = r.vat "
                        "LEFT JOIN salesperson s ON s.id = r.salesperson_id ORDER BY r.vat"
                    )
                )
            ).all()
            invites = (
                await connection.execute(
                    text(
                        "SELECT i.token, p.code, s.telegram_user_id FROM invite i "
                        "JOIN partner p ON p.id = i.partner_id "
                        "LEFT JOIN salesperson s ON s.id = i.used_by_salesperson_id "
                        "ORDER BY i.token"
                    )
                )
            ).all()
    finally:
        await engine.dispose()
    assert [tuple(row) for row in people] == [
        (1001, "ACME"),
        (1002, "ACME"),
        (2001, "BETA"),
        (3001, "GAMMA"),
        (9_000_000_001, "GAMMA"),
    ]
    by_vat = {row[0]: tuple(row[1:]) for row in deals}
    assert by_vat == {
        VATS[0]: ("Cliente 0 S.r.l.", "ACME", 1001, "qualified", 1),
        VATS[1]: ("Cliente 1 S.r.l.", "ACME", 1002, "won", 2),
        VATS[2]: ("Cliente 2 S.r.l.", "BETA", 2001, "approved", 3),
        VATS[3]: ("Cliente 3 S.r.l.", "BETA", 2001, "lost", 2),
        VATS[4]: ("Cliente 4 S.r.l.", "GAMMA", 3001, "expired", 2),
        VATS[5]: ("Cliente 5 S.r.l.", "ACME", None, "rejected", 3),
        VATS[6]: ("Cliente 6 S.r.l.", "ACME", 1001, "paid", 4),
    }
    assert [tuple(row) for row in invites] == [
        ("tok-old", "GAMMA", None),
        ("tok-open", "BETA", None),
        ("tok-used", "ACME", 1001),
    ]


async def won_deals_became_staff_items(database_url: str) -> None:
    """The won deal waiting for staff is an item due 48 hours after it was reported, and
    customers' names have their blocks for the similar-names look-up."""
    engine = make_engine(database_url)
    try:
        async with engine.connect() as connection:
            items = (
                await connection.execute(
                    text(
                        "SELECT r.vat, i.kind, i.decided_at FROM staffitem i "
                        "JOIN registration r ON r.id = i.registration_id"
                    )
                )
            ).all()
            blocks = dict(
                (await connection.execute(text("SELECT vat, name_block FROM customer"))).all()
            )
    finally:
        await engine.dispose()
    assert [tuple(row) for row in items] == [(VATS[1], "won", None)]
    assert blocks[VATS[1]] == "cliente"


async def references_given(database_url: str, version: str) -> None:
    """Registrations the core made get a reference each; ones that had it keep it."""
    engine = make_engine(database_url)
    try:
        async with engine.connect() as connection:
            references = (
                (await connection.execute(text("SELECT reference FROM registration ORDER BY id")))
                .scalars()
                .all()
            )
    finally:
        await engine.dispose()
    assert len(set(references)) == len(references) == 7
    assert all(is_reference(reference) for reference in references)
    if version != CORE:
        assert references == [f"PAI-{index + 2}ABCDE" for index in range(7)]


async def services_work(database_url: str) -> None:
    """The bot's services on the migrated rows: accounts, verdicts, deals, outcomes."""
    shared = await open_resources(Settings(_env_file=None, database_url=database_url))
    try:
        async with shared.sessions() as session:
            acme = await find_account(session=session, telegram_user_id=1001)
            beta = await find_account(session=session, telegram_user_id=2001)
        assert acme is not None and acme.partner_code == "ACME" and acme.language == "it"
        assert beta is not None and beta.partner_code == "BETA"
        async with shared.sessions() as session:
            # ACME's qualified deal still protects its customer from another partner...
            with pytest.raises(CustomerProtected):
                await check_eligibility(
                    session=session, rules=shared.rules, account=beta, vat=VATS[0], now=NOW
                )
            # ...and the vendor's history still says who bought lately.
            with pytest.raises(CustomerNotNew):
                await check_eligibility(
                    session=session, rules=shared.rules, account=beta, vat=italian_vat(40), now=NOW
                )
        # A customer released by a lost deal can be registered again, with a reference.
        again = await register(shared.sessions, shared.rules, beta, VATS[3], now=NOW)
        assert is_reference(again.reference)
        async with shared.sessions() as session:
            page = await list_registrations(
                session=session, rules=shared.rules, account=acme, now=NOW
            )
        mine = {view.vat: view for view in page.registrations}
        assert mine[VATS[0]].status == "qualified"
        assert mine[VATS[0]].deal_value == Decimal("12500.00")
        assert mine[VATS[6]].quote.amount == Decimal("200.00")
        won = await report(shared.sessions, shared.rules, acme, mine[VATS[0]], Status.WON)
        assert won.status == "won"
    finally:
        await shared.close()


async def test_a_failed_migration_leaves_the_database_as_it_was(database_url, monkeypatch):
    metadata = await build(database_url, CORE)
    before = await rows_of(database_url, metadata)
    upgrade = command.upgrade

    def upgrade_then_fail(config: Config, revision: str) -> None:
        upgrade(config, revision)
        raise RuntimeError("the disk filled up")

    monkeypatch.setattr(command, "upgrade", upgrade_then_fail)
    with pytest.raises(RuntimeError):
        await migrate_database(database_url)

    # All or nothing, SQLite's copied tables included: no revision, no new column or table.
    assert await recorded_revision(database_url) is None
    assert await differences(database_url, metadata) == []
    assert await rows_of(database_url, metadata) == before


# --- what `pai-bot run` and the other commands do with each kind of database -----------


async def pai_bot_run(shell, database_url: str) -> tuple[int, str, int]:
    """The real `pai-bot run` against a Bot API that counts who knocks; exit, stderr, knocks."""
    knocks = 0

    async def count(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal knocks
        knocks += 1
        writer.close()

    server = await asyncio.start_server(count, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    environment = {
        **{k: v for k, v in os.environ.items() if k not in ("TELEGRAM_BOT_TOKEN", "DATABASE_URL")},
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_API_BASE_URL": f"http://127.0.0.1:{port}/bot",
        "DATABASE_URL": database_url,
    }
    async with server:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot.app.cli",
            "run",
            cwd=shell,
            env=environment,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, err.decode(), knocks


@pytest.mark.slow
@pytest.mark.parametrize("version", [CORE, ISSUES_5_TO_8])
async def test_pai_bot_run_refuses_a_database_that_needs_migrating_before_calling_telegram(
    database_url, version, shell
):
    metadata = await build(database_url, version)
    before = await rows_of(database_url, metadata)

    code, err, knocks = await pai_bot_run(shell, database_url)

    assert code == 2
    assert err.strip() == (
        "pai-bot: the database was made by an earlier version: "
        "run `pai-bot migrate` to bring it up to date (keeps every row)"
    )
    assert knocks == 0
    assert await rows_of(database_url, metadata) == before  # nothing written, no revision
    assert await recorded_revision(database_url) is None


async def test_every_command_refuses_an_earlier_versions_database_in_one_sentence(
    database_url, shell, monkeypatch, capsys
):
    await build(database_url, CORE)
    for argv in (["check", VATS[0]], ["export", "out.csv"], ["stats"]):
        code, _, err = await pai_bot(monkeypatch, capsys, database_url, *argv)
        assert code == 2
        assert (
            err.strip()
            .splitlines()[-1]
            .endswith("run `pai-bot migrate` to bring it up to date (keeps every row)")
        )
    engine = make_engine(database_url)
    try:
        with pytest.raises(SchemaOutdated):
            await create_tables(engine)
    finally:
        await engine.dispose()


async def test_a_new_database_works_with_any_command_and_records_the_head_revision(
    database_url, shell, monkeypatch, capsys
):
    await fresh(database_url)
    (shell / "partners.csv").write_text("code,company,level\nACME,Acme,gold\n")

    code, out, err = await pai_bot(
        monkeypatch, capsys, database_url, "import-partners", "partners.csv"
    )
    assert code == 0, err
    assert await recorded_revision(database_url) == head_revision()
    assert await differences(database_url, SQLModel.metadata) == []
    code, out, _ = await pai_bot(monkeypatch, capsys, database_url, "check", VATS[0])
    assert code == 0
    code, out, _ = await pai_bot(monkeypatch, capsys, database_url, "migrate")
    assert code == 0
    assert out.strip() == f"Already up to date at revision {head_revision()}."


async def test_migrate_on_a_new_database_creates_it_at_the_head(
    database_url, shell, monkeypatch, capsys
):
    await fresh(database_url)
    code, out, err = await pai_bot(monkeypatch, capsys, database_url, "migrate")
    assert code == 0, err
    assert (
        out.strip() == f"The database was empty: created the schema at revision {head_revision()}."
    )
    assert await recorded_revision(database_url) == head_revision()


# Indexes a revision added on columns that were there before (every recognised shape is
# older): a shape's tables never had them.
INDEXES_ADDED_LATER = {"ix_reminder_last_nudge"}  # revision 0010


def shaped_as(shape: dict[str, frozenset[str]]) -> MetaData:
    """Today's tables cut down to the columns (and their indexes) of an earlier shape."""
    metadata = MetaData()
    for table in SQLModel.metadata.sorted_tables:
        if table.name not in shape:
            continue
        kept = shape[table.name]
        copy = Table(table.name, metadata, *(c._copy() for c in table.columns if c.name in kept))
        for index in table.indexes:
            names = [c.name for c in index.columns]
            if index.name in INDEXES_ADDED_LATER:
                continue
            if set(names) <= kept and index.name not in {i.name for i in copy.indexes}:
                Index(index.name, *(copy.c[name] for name in names), unique=index.unique)
    return metadata


async def test_a_database_the_last_version_without_migrations_made_is_recognised_and_migrated(
    database_url, shell, monkeypatch, capsys
):
    """Commit 46f704f created revision 0003's tables without recording a revision."""
    await fresh(database_url)
    engine = make_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(shaped_as(dict(RECOGNISED)["0003"]).create_all)
    finally:
        await engine.dispose()
    (shell / "partners.csv").write_text("code,company,level\nACME,Acme,gold\n")

    code, _, err = await pai_bot(
        monkeypatch, capsys, database_url, "import-partners", "partners.csv"
    )
    assert code == 2
    assert "run `pai-bot migrate`" in err

    code, out, err = await pai_bot(monkeypatch, capsys, database_url, "migrate")
    assert code == 0, err
    assert "its tables match revision 0003" in out
    code, _, err = await pai_bot(
        monkeypatch, capsys, database_url, "import-partners", "partners.csv"
    )
    assert code == 0, err
    assert await recorded_revision(database_url) == head_revision()


@pytest.mark.slow
async def test_a_database_a_newer_version_made_is_refused_by_run_migrate_and_every_command(
    database_url, shell, monkeypatch, capsys
):
    await fresh(database_url)
    engine = make_engine(database_url)
    try:
        await create_tables(engine)
        async with engine.begin() as connection:
            await connection.execute(text("UPDATE alembic_version SET version_num = '0999'"))
    finally:
        await engine.dispose()
    newer = "pai-bot: the database was made by a newer version of pai-bot (schema 0999"

    code, err, knocks = await pai_bot_run(shell, database_url)
    assert (code, knocks) == (2, 0)
    assert err.strip().startswith(newer)
    for argv in (["migrate"], ["check", VATS[0]]):
        code, _, err = await pai_bot(monkeypatch, capsys, database_url, *argv)
        assert code == 2
        assert err.strip().splitlines()[-1].startswith(newer)
    assert await recorded_revision(database_url) == "0999"


async def test_a_database_with_only_some_of_the_bots_tables_is_refused_naming_what_lacks(
    database_url,
):
    await fresh(database_url)
    engine = make_engine(database_url)
    try:
        async with engine.begin() as connection:  # not a database any version made
            await connection.run_sync(made_by(CORE).tables["partner"].create)
        with pytest.raises(SchemaUnknown) as refused:
            await create_tables(engine)
    finally:
        await engine.dispose()
    assert "lacking or incomplete: botstate, customer, invite" in str(refused.value)
    with pytest.raises(SchemaUnknown):
        await migrate_database(database_url)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_instances_starting_together_on_a_new_database_record_one_revision(database_url):
    await fresh(database_url)
    engines = [make_engine(database_url) for _ in range(4)]
    try:
        await asyncio.gather(*(create_tables(engine) for engine in engines))
        async with engines[0].connect() as connection:
            versions = (
                await connection.execute(text("SELECT version_num FROM alembic_version"))
            ).all()
    finally:
        for engine in engines:
            await engine.dispose()
    assert [tuple(row) for row in versions] == [(head_revision(),)]


def test_migrate_explains_itself_with_an_example(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["migrate", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "keeping every row" in out
    assert "Example: pai-bot migrate && pai-bot run" in out


def test_the_head_the_bot_checks_without_alembic_is_the_newest_revision():
    assert head_revision() == HEAD
