"""Privacy (PRODUCT.md §8): the notice, /privacy, a copy of one's data, erasure that
leaves nothing of the person in the database's bytes, the shell's commands, retention
moved by the test clock, and the record of staff's look-ups. On both databases."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import select, text, update

from bot.app.cli import main
from bot.app.demo.telegram import User
from bot.domain.lifecycle import Status
from bot.jobs.reminders import run_tick
from bot.services.accounts import create_invite
from handlers.callbacks import EraseMe
from models import (
    AccessLog,
    Broadcast,
    BroadcastDelivery,
    ConversationState,
    Registration,
    Reminder,
    Salesperson,
    StatusChange,
    ViesCheck,
)
from tests.conftest import BACKENDS, database_url_for, reset_postgresql
from tests.factories import VATS
from tests.harness import Chat, Harness, buttons, running_bot
from tests.test_conversations import load_programme, register_one

STAFF = 900
# Someone whose name, username and id appear nowhere else in the database.
ERMENEGILDA = User(
    id=987654321012,
    first_name="Ermenegilda",
    last_name="Quarantotti",
    username="ermen_sales",
    language_code="en",
)


@pytest.fixture(params=BACKENDS)
async def bot(request, tmp_path, rules):
    url = database_url_for(request.param, tmp_path)
    if request.param == "postgresql":
        await reset_postgresql(url)
    async with running_bot(tmp_path, database_url=url, pai_admin_ids=frozenset({STAFF})) as bot:
        await load_programme(bot, rules, tmp_path)
        yield bot


async def invited(bot: Harness, user: User = ERMENEGILDA, partner: str = "ACME") -> Chat:
    async with bot.sessions() as session:
        invite = await create_invite(session=session, partner_code=partner, now=bot.clock.now())
    chat = Chat(bot, user)
    await chat.send(f"/start {invite.token}")
    return chat


async def rows(bot: Harness, table) -> list:  # type: ignore[no-untyped-def]
    async with bot.sessions() as session:
        return list((await session.execute(select(table))).scalars())


async def test_the_welcome_after_an_invite_has_a_two_line_notice_pointing_to_privacy(bot):
    chat = await invited(bot)
    welcome = chat.messages()[-1]["text"]
    notice = welcome.split("\n\n")[-1]
    assert notice.count("\n") == 1 and "/privacy" in notice and "Vendor S.p.A." in notice


async def test_privacy_says_what_is_held_why_how_long_who_sees_and_whom_to_write(bot):
    chat = await invited(bot)
    await register_one(chat, VATS[1])
    [shown] = await chat.send("/privacy")
    said = shown["text"]
    assert "Linked to Acme Informatica & Figli" in said
    assert "Registrations you made: 1" in said
    for part in (
        "Why",
        "How long",
        "Who sees it",
        "Your rights",
        "privacy@vendor.example",
        "730 days",
    ):
        assert part in said
    assert [label for label, _ in buttons(shown)] == ["📄 Send me my data", "🗑 Erase me"]
    [nothing] = await bot.chat(55, "en").send("/privacy")
    assert "The bot keeps nothing about you" in nothing["text"]


async def test_send_me_my_data_is_a_json_document_with_everything_about_me(bot):
    chat = await invited(bot)
    await register_one(chat, VATS[1])
    [shown] = await chat.send("/privacy")
    [sent] = await chat.press(shown, "Send me my data")
    name, content = bot.api.files[(ERMENEGILDA.id, sent["message_id"])]
    assert name == "my-data.json"
    data = json.loads(content)
    assert data["person"]["telegram_id"] == ERMENEGILDA.id
    assert data["person"]["name"] == "Ermenegilda Quarantotti"
    assert data["person"]["username"] == "ermen_sales"
    assert data["partner"] == "Acme Informatica & Figli"
    assert data["settings"] == {"language": None, "reminders": True}
    [made] = data["registrations"]
    assert made["vat"] == VATS[1] and made["history"][0]["to"] == "qualified"
    assert "1 registrations you made" in sent["caption"]


def file_bytes(database: Path) -> bytes:
    found = b""
    for path in (database, Path(f"{database}-wal")):
        if path.exists():
            found += path.read_bytes()
    return found


def dump(url: str) -> bytes:
    plain = url.replace("postgresql+asyncpg://", "postgresql://")
    return subprocess.run(["pg_dump", "--data-only", plain], capture_output=True, check=True).stdout


async def everything_stored(bot: Harness, tmp_path: Path) -> bytes:
    url = bot.resources.settings.database_url
    if url.startswith("sqlite"):
        await bot.resources.engine.dispose()  # every connection closed: the file as it rests
        return file_bytes(Path(url.removeprefix("sqlite:///")))
    return await asyncio.to_thread(dump, url)


async def test_erase_me_asks_once_more_then_leaves_nothing_of_the_person_in_the_database(
    bot, tmp_path
):
    chat = await invited(bot)
    await register_one(chat, VATS[1])
    await chat.send(f"/new {VATS[3]}")  # a registration half typed: a conversation kept
    async with bot.sessions() as session:
        [person] = (await session.execute(select(Salesperson))).scalars()
        session.add(
            Reminder(
                kind="nudge",
                subject="partner:1",
                period="1",
                salesperson_id=person.id,
                partner_id=person.partner_id,
                due_on=bot.today(),
                status="sent",
                claim="tick",
            )
        )
        broadcast = Broadcast(
            created_by=STAFF,
            created_at=bot.clock.now(),
            text_html="news",
            audience="all",
            status="done",
        )
        session.add(broadcast)
        await session.flush()
        session.add(
            BroadcastDelivery(
                broadcast_id=broadcast.id, salesperson_id=person.id, status="delivered"
            )
        )
        await session.commit()
    before = await everything_stored(bot, tmp_path)
    assert b"Ermenegilda" in before and b"ermen_sales" in before
    [shown] = await chat.send("/privacy")
    [confirm] = await chat.press(shown, "Erase me")
    assert "cannot be undone" in confirm["text"]
    await chat.press(confirm, "Yes, erase me")
    assert "the bot no longer knows you" in confirm["text"]
    [tombstone] = await rows(bot, Salesperson)
    assert tombstone.telegram_user_id < 0 and tombstone.unlinked_at is not None
    assert (tombstone.display_name, tombstone.username, tombstone.language) == (None, None, None)
    [kept] = await rows(bot, Registration)  # the partner keeps its registration, and quote
    assert kept.vat == VATS[1] and kept.incentive_amount > 0
    assert {c.changed_by for c in await rows(bot, StatusChange)} == {f"former:{tombstone.id}"}
    assert [
        c for c in await rows(bot, ConversationState) if c.telegram_user_id == ERMENEGILDA.id
    ] == []
    assert await rows(bot, Reminder) == [] and await rows(bot, BroadcastDelivery) == []
    stored = await everything_stored(bot, tmp_path)
    for trace in (b"Ermenegilda", b"Quarantotti", b"ermen_sales", str(ERMENEGILDA.id).encode()):
        assert trace not in stored, trace


async def test_after_erasure_the_account_is_a_stranger_and_can_be_invited_again(bot):
    chat = await invited(bot)
    await register_one(chat, VATS[1])
    [shown] = await chat.send("/privacy")
    [confirm] = await chat.press(shown, "Erase me")
    await chat.press(confirm, "Yes, erase me")
    [status] = await chat.send("/status")
    assert "works only for partners' salespeople" in status["text"]
    again = await invited(bot)
    assert "Acme" in again.messages()[-1]["text"]
    people = await rows(bot, Salesperson)
    assert sorted(p.telegram_user_id > 0 for p in people) == [False, True]  # someone new
    [status] = await again.send("/status")
    assert "former salesperson" not in status["text"]  # the company's registration, kept
    answered = len(bot.api.answers())
    # The old button pressed again (a second device): nothing left to do, nothing changes.
    await chat.press_data(confirm, EraseMe(confirmed=True).data)
    assert len(await rows(bot, Salesperson)) == 2 and len(bot.api.answers()) > answered


async def cli(bot: Harness, monkeypatch, capsys, *argv: str) -> tuple[int, str, str]:
    monkeypatch.setenv("DATABASE_URL", bot.resources.settings.database_url)
    monkeypatch.setattr("bot.logs.configure_logging", lambda *_: None)
    code = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


async def test_the_shell_exports_and_erases_and_refuses_unknown_ids_and_unasked_erasure(
    bot, tmp_path, monkeypatch, capsys
):
    chat = await invited(bot)
    await register_one(chat, VATS[1])
    file = tmp_path / "person.json"
    code, out, _ = await cli(
        bot, monkeypatch, capsys, "privacy", "export", str(ERMENEGILDA.id), str(file)
    )
    assert code == 0 and "1 registrations" in out
    assert json.loads(file.read_text())["person"]["username"] == "ermen_sales"
    code, _, err = await cli(bot, monkeypatch, capsys, "privacy", "export", "42", str(file))
    assert code == 2 and "holds nothing about Telegram id 42" in err
    # Without --yes and without a terminal to ask on: refused, nothing erased.
    code, _, err = await cli(bot, monkeypatch, capsys, "privacy", "erase", str(ERMENEGILDA.id))
    assert code == 1 and "--yes" in err
    assert (await rows(bot, Salesperson))[0].username == "ermen_sales"
    code, out, _ = await cli(
        bot, monkeypatch, capsys, "privacy", "erase", str(ERMENEGILDA.id), "--yes"
    )
    assert code == 0 and "erased" in out
    code, _, err = await cli(
        bot, monkeypatch, capsys, "privacy", "erase", str(ERMENEGILDA.id), "--yes"
    )
    assert code == 2 and "erased already" in err  # twice: harmless


async def test_retention_by_the_tick_clears_old_names_deliveries_and_access_rows(bot, rules):
    chat = await invited(bot)
    await register_one(chat, VATS[1], company="Typed Name Srl")
    await register_one(chat, VATS[3], company="Still Open Srl")
    now = bot.clock.now()
    async with bot.sessions() as session:
        lost, open_one = (
            await session.execute(select(Registration).order_by(Registration.id))
        ).scalars()
        await session.execute(
            update(Registration)
            .where(Registration.id == lost.id)
            .values(status=Status.LOST.value, updated_at=now)
        )
        [person] = (await session.execute(select(Salesperson))).scalars()
        old = Broadcast(
            created_by=STAFF, created_at=now, text_html="old", audience="all", status="done"
        )
        session.add(old)
        await session.flush()
        session.add(
            BroadcastDelivery(broadcast_id=old.id, salesperson_id=person.id, status="delivered")
        )
        session.add(AccessLog(at=now, who="cli", what="export"))
        session.add(ViesCheck(vat=VATS[1], outcome="valid", name="ROSSI MARIO", answered_at=now))
        await session.commit()
    bot.clock.advance(dt.timedelta(days=181))
    report = await run_tick(bot.app)
    assert (report.names_cleared, report.deliveries_deleted, report.access_deleted) == (0, 1, 0)
    assert report.vies_deleted == 1  # a sole trader's name and address, kept 90 days
    bot.clock.advance(dt.timedelta(days=185))  # a year and a day after the look-up
    assert (await run_tick(bot.app)).access_deleted == 1
    bot.clock.advance(dt.timedelta(days=rules.privacy.retention_days - 366 + 1))
    assert (await run_tick(bot.app)).names_cleared == 1
    names = {r.id: r.customer_name for r in await rows(bot, Registration)}
    assert names[lost.id] == "" and names[open_one.id] == "Still Open Srl"


async def test_staff_look_ups_are_recorded_and_printed_by_the_shell(bot, monkeypatch, capsys):
    staff = bot.chat(STAFF, "en")
    await staff.send(f"/find {VATS[1]}")
    await staff.send("/export")
    [row, export] = await rows(bot, AccessLog)
    assert (row.who, row.what) == (f"staff:{STAFF}", f"find {VATS[1]}")
    assert export.what.startswith("export registrations")
    code, out, _ = await cli(bot, monkeypatch, capsys, "access-log", "--since", "2026-11-01")
    assert code == 0
    assert f"staff:{STAFF}\tfind {VATS[1]}" in out
    code, out, _ = await cli(bot, monkeypatch, capsys, "access-log", "--since", "2027-01-01")
    assert "no look-ups recorded since 2027-01-01" in out
    code, _, err = await cli(bot, monkeypatch, capsys, "access-log", "--since", "yesterday")
    assert code == 2 and "not a date" in err


async def test_sqlite_zeroes_what_it_frees(bot):
    if not bot.resources.settings.database_url.startswith("sqlite"):
        pytest.skip("SQLite's own setting")
    async with bot.sessions() as session:
        assert (await session.execute(text("PRAGMA secure_delete"))).scalar_one() == 1
