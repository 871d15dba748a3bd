"""`pai-bot copy-db --to URL`: a programme on SQLite moved to PostgreSQL (PRODUCT.md §9),
run as an operator runs it, and the bot going on there where it stopped."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select, text

from bot.app.cli import main
from bot.domain.lifecycle import Status
from bot.domain.rules import Rules
from bot.storage import copying
from bot.storage.conversations import PostgresConversations, SqliteConversations
from bot.storage.database import Timeouts, make_engine, make_sessions
from bot.storage.schema import create_tables, head_revision
from models import Registration
from tests.conftest import TEST_DATABASE_URL, reset_postgresql
from tests.factories import (
    NOW,
    add_partners,
    add_purchases,
    italian_vat,
    link_salesperson,
    register,
    report,
)

pytestmark = pytest.mark.skipif(not TEST_DATABASE_URL, reason="TEST_DATABASE_URL is not set")
DRAFT = {"step": "company", "vat": italian_vat(99), "started": "2026-11-28T10:00:00+00:00"}


def count(url: str, table: str) -> int:
    async def go() -> int:
        engine = make_engine(url)
        try:
            async with engine.connect() as connection:
                return int(
                    (await connection.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one()
                )
        finally:
            await engine.dispose()

    return asyncio.run(go())


def tables_in(url: str) -> int:
    return count(url, "information_schema.tables WHERE table_schema = 'public'")


@pytest.fixture
def programme_on_sqlite(tmp_path: Path, rules: Rules, monkeypatch: pytest.MonkeyPatch) -> str:
    """A SQLite programme as the bot leaves it: partners, a sales history, two linked
    salespeople, a won deal, and a registration half typed in the conversations file."""
    url = f"sqlite:///{tmp_path / 'pai.db'}"

    async def build() -> None:
        engine = make_engine(url)
        await create_tables(engine)
        sessions = make_sessions(engine)
        await add_partners(sessions, rules, tmp_path, "ACME,Acme,gold\nBETA,Beta,certified\n")
        await add_purchases(
            sessions,
            rules,
            tmp_path,
            "".join(f"{italian_vat(n)},Cliente {n},2024-0{n % 9 + 1}-10\n" for n in range(30)),
        )
        acme = await link_salesperson(sessions, "ACME", 1001)
        await link_salesperson(sessions, "BETA", 2002)
        won = await register(sessions, rules, acme, italian_vat(500), name="Nuovo Srl")
        await report(sessions, rules, acme, won, Status.WON)
        await register(sessions, rules, acme, italian_vat(501))
        await engine.dispose()
        talks = await SqliteConversations.open(tmp_path / "pai-conversations.db", Timeouts())
        await talks.save(1001, "registration", DRAFT, NOW)
        await talks.close()

    asyncio.run(build())
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.chdir(tmp_path)
    return url


@pytest.fixture
def empty_postgresql() -> str:
    assert TEST_DATABASE_URL is not None
    asyncio.run(reset_postgresql(TEST_DATABASE_URL))
    return TEST_DATABASE_URL


def copy_db(capsys: pytest.CaptureFixture[str], target: str) -> tuple[int, str, str]:
    code = main(["copy-db", "--to", target])
    out, err = capsys.readouterr()
    return code, out, err


def test_every_row_moves_and_the_bot_goes_on_where_it_stopped(
    programme_on_sqlite, empty_postgresql, capsys, rules
):
    code, out, err = copy_db(capsys, empty_postgresql)

    assert code == 0, err
    lines = {line.split()[0]: line.split() for line in out.splitlines()[:-1]}
    assert lines["purchase"][1:4] == ["30", "rows", "30"]
    assert lines["registration"][1:4] == ["2", "rows", "2"]
    assert lines["conversationstate"][-4:] == ["(from", "the", "conversations", "file)"]
    assert "every count equal" in out.splitlines()[-1]
    for table in ("partner", "salesperson", "purchase", "customer", "statuschange", "invite"):
        assert count(empty_postgresql, table) == count(programme_on_sqlite, table), table

    async def carry_on() -> None:
        engine = make_engine(empty_postgresql)
        sessions = make_sessions(engine)
        async with sessions() as session:
            deals = (await session.execute(select(Registration).order_by(Registration.id))).all()
            won = deals[0][0]
            assert won.status == Status.WON
            assert isinstance(won.incentive_amount, Decimal) and won.incentive_amount > 0
            assert won.created_at.tzinfo is not None
            version = await session.execute(text("SELECT version_num FROM alembic_version"))
            assert version.scalar_one() == head_revision()
        # The half-typed registration is there for the salesperson's next message.
        talks = await PostgresConversations.open(engine, Timeouts())
        assert await talks.load(1001, "registration") == DRAFT
        await talks.close()
        # New rows take new ids: the counters went on after the copied ones.
        from bot.services.accounts import find_account

        async with sessions() as session:
            acme = await find_account(session=session, telegram_user_id=1001)
        assert acme is not None
        third = await register(
            sessions, rules, acme, italian_vat(502), now=NOW + dt.timedelta(hours=1)
        )
        assert third.reference not in {deal[0].reference for deal in deals}
        await link_salesperson(sessions, "BETA", 3003)
        await engine.dispose()

    asyncio.run(carry_on())


def test_a_target_that_holds_rows_is_refused_and_left_alone(
    programme_on_sqlite, empty_postgresql, capsys
):
    assert copy_db(capsys, empty_postgresql)[0] == 0
    before = count(empty_postgresql, "purchase")

    code, _out, err = copy_db(capsys, empty_postgresql)

    assert code == 1
    assert "is not empty" in err and "copy-db fills only an empty database" in err
    assert count(empty_postgresql, "purchase") == before


def test_a_target_with_the_schema_but_no_rows_is_filled(
    programme_on_sqlite, empty_postgresql, capsys
):
    async def schema_only() -> None:
        engine = make_engine(empty_postgresql)
        await create_tables(engine)
        await engine.dispose()

    asyncio.run(schema_only())
    assert copy_db(capsys, empty_postgresql)[0] == 0
    assert count(empty_postgresql, "partner") == 2


def test_an_unmigrated_source_is_refused_naming_migrate(
    programme_on_sqlite, empty_postgresql, capsys, tmp_path
):
    with sqlite3.connect(tmp_path / "pai.db") as db:
        db.execute("UPDATE alembic_version SET version_num = '0008'")

    code, _out, err = copy_db(capsys, empty_postgresql)

    assert code == 1
    assert "at schema revision 0008" in err and "pai-bot migrate" in err
    assert tables_in(empty_postgresql) == 0  # refused before anything was made there


@pytest.mark.parametrize(
    ("target", "said"),
    [
        ("sqlite:///other.db", "the target is not a PostgreSQL URL"),
        ("mysql://root@localhost/pai", "the target is not a PostgreSQL URL"),
        ("not a url", "the target is not a PostgreSQL URL"),
        ("postgresql://postgres@127.0.0.1:5432/pai_no_such_database", "does not exist"),
    ],
)
def test_a_wrong_target_is_refused_in_one_sentence(programme_on_sqlite, capsys, target, said):
    code, out, err = copy_db(capsys, target)

    assert code == 1
    assert said in err
    assert "Traceback" not in err and out == ""
    assert len(err.strip().splitlines()) <= 3  # which database, where to, the sentence


def test_a_source_that_is_postgresql_is_refused(empty_postgresql, capsys, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", empty_postgresql)

    code, _out, err = copy_db(capsys, empty_postgresql)

    assert code == 1 and "is not a SQLite file" in err


def test_a_bot_still_writing_during_the_copy_is_noticed_and_nothing_kept(
    programme_on_sqlite, empty_postgresql, capsys, tmp_path, monkeypatch
):
    copy_table = copying._copy_table

    async def and_a_partner_arrives(table, reading, into, where):
        done = await copy_table(table, reading, into, where)
        if table.name == "partner":  # the file is written between two tables
            with sqlite3.connect(tmp_path / "pai.db") as db:
                db.execute(
                    "INSERT INTO partner (code, company, level, created_at, updated_at) "
                    "VALUES ('LATE', 'Late', 'gold', '2026-11-28 10:00:00', '2026-11-28 10:00:00')"
                )
        return done

    monkeypatch.setattr(copying, "_copy_table", and_a_partner_arrives)

    code, _out, err = copy_db(capsys, empty_postgresql)

    assert code == 1
    assert "the source changed while it was copied (partner: 2 rows, now 3)" in err
    assert "stop the bot" in err
    assert count(empty_postgresql, "partner") == 0
