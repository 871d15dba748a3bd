"""One slow user never stalls the others: a locked database, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite
import asyncpg
import pytest
from sqlalchemy import select

from bot.storage.database import sqlite_file
from models import Registration
from tests.conftest import BACKENDS, database_url_for, reset_postgresql
from tests.harness import button_data, running_bot
from tests.test_conversations import join, load_programme, reach_summary

OTHERS = ("/help", "/status", "/settings", "/check IT12345670587", "/new")


@asynccontextmanager
async def registrations_locked(database_url: str) -> AsyncIterator[None]:
    """Hold, from another connection, the lock a registration's first write needs.

    SQLite: a write transaction (readers go on, writers wait). PostgreSQL: the
    registration table in EXCLUSIVE mode (SELECTs go on, INSERT and UPDATE wait).
    """
    path = sqlite_file(database_url)
    if path is not None:
        async with aiosqlite.connect(path) as db:
            await db.execute("BEGIN IMMEDIATE")
            try:
                yield
            finally:
                await db.execute("ROLLBACK")
        return
    connection = await asyncpg.connect(database_url)
    try:
        transaction = connection.transaction()
        await transaction.start()
        await connection.execute("LOCK TABLE registration IN EXCLUSIVE MODE")
        try:
            yield
        finally:
            await transaction.rollback()
    finally:
        await connection.close()


async def fresh_database(backend: str, tmp_path: Path) -> str:
    url = database_url_for(backend, tmp_path)
    if backend == "postgresql":
        await reset_postgresql(url)
    return url


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_locked_table_stalls_only_the_user_who_needs_it(tmp_path, rules, backend):
    url = await fresh_database(backend, tmp_path)
    async with running_bot(tmp_path, database_url=url) as bot:
        await load_programme(bot, rules, tmp_path)
        first = await join(bot, 11, language="en")
        summary = await reach_summary(first)
        others = [await join(bot, 20 + i, language="en") for i in range(len(OTHERS))]
        before = {chat.user.id: len(chat.messages()) for chat in others}
        # Everyone was last seen long enough ago that noting this visit is a write too.
        bot.clock.advance(dt.timedelta(minutes=16))
        async with registrations_locked(url):
            started = time.monotonic()
            bot.api.user_presses(first.user, summary, button_data(summary, "Confirm"))
            for chat, command in zip(others, OTHERS, strict=True):
                bot.api.user_sends(chat.user, command)
            await bot.post()
            waits = []
            for chat in others:
                waits.append(
                    await bot.wait_until(
                        lambda chat=chat: len(chat.messages()) > before[chat.user.id], within=5
                    )
                )
            answered_while_locked = time.monotonic() - started
            assert not any("Registered" in m["text"] for m in first.messages())
            await asyncio.sleep(0.3)  # the lock is held a little longer still
            held = time.monotonic() - started
        released = time.monotonic()
        await bot.wait_until(lambda: "Registered" in first.last["text"], within=10)
        first_answered = time.monotonic() - released
        print(
            f"\n{backend}: five others answered within {max(waits):.3f} s "
            f"(all by {answered_while_locked:.3f} s) while the lock was held for {held:.3f} s; "
            f"the first user answered {first_answered:.3f} s after it was released"
        )
        assert max(waits) < 1.0
        async with bot.sessions() as session:
            assert len((await session.execute(select(Registration))).scalars().all()) == 1


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_lock_held_past_the_timeout_gets_an_apology_and_the_draft_is_kept(
    tmp_path, rules, backend
):
    url = await fresh_database(backend, tmp_path)
    short = {"pai_pg_lock_timeout": 0.3, "pai_sqlite_busy_timeout": 0.3}
    async with running_bot(tmp_path, database_url=url, **short) as bot:
        await load_programme(bot, rules, tmp_path)
        chat = await join(bot, 11, language="en")
        summary = await reach_summary(chat)
        confirm = button_data(summary, "Confirm")
        async with registrations_locked(url):
            [apology] = await chat.press_data(summary, confirm)
        assert "cannot save anything right now" in apology["text"]  # the database, said so
        assert await chat.press_data(summary, confirm) == []  # the same button, after the lock
        assert "Registered" in summary["text"]  # the summary became the confirmation


@pytest.mark.parametrize("backend", BACKENDS)
async def test_control_characters_typed_in_chat_are_cleaned_the_same_on_both_databases(
    tmp_path, rules, backend
):
    url = await fresh_database(backend, tmp_path)
    async with running_bot(tmp_path, database_url=url) as bot:
        await load_programme(bot, rules, tmp_path)
        chat = await join(bot, 11, language="en")
        await chat.send("/new IT12345670587")
        await chat.send("Rossi\x00 Srl\x07\u202e")  # a NUL makes PostgreSQL refuse the row
        await chat.send("1000")
        await chat.send("Mouse\x00")
        [summary] = await chat.send("2027-01-08")
        await chat.press(summary, "Confirm")
        assert "Registered" in summary["text"]
        async with bot.sessions() as session:
            [registration] = (await session.execute(select(Registration))).scalars().all()
        assert (registration.customer_name, registration.product) == ("Rossi Srl", "Mouse")


async def test_command_menus_telegram_keeps_refusing_do_not_hold_up_the_first_answer(
    tmp_path, monkeypatch
):
    from bot.app.demo.telegram import FakeBotApi
    from bot.telegram import ratelimit

    monkeypatch.setattr(ratelimit, "BACKOFF", (0.2, 0.2, 0.2))
    from bot.app.demo.telegram import TelegramError as Refusal
    from tests.harness import running_bot

    api = FakeBotApi()
    api.failures["setMyCommands"] = [Refusal(502, "Bad Gateway")] * 12  # seconds of retries
    async with running_bot(tmp_path, api) as bot:
        chat = bot.chat(11, "en")
        bot.api.user_sends(chat.user, "/help")
        await bot.post()
        await bot.wait_until(lambda: bool(chat.messages()), within=5)
        assert api.failures["setMyCommands"]  # the menus were still being tried
        assert "invite" in chat.last["text"]  # answered meanwhile


async def test_a_lone_poller_on_a_locked_sqlite_file_keeps_polling_and_says_why(tmp_path, caplog):
    """An import holding SQLite's write lock past the lease is no other instance taking
    over: the poller goes on, says the database is busy, and leads again after."""
    import datetime as dt
    import sqlite3

    from bot.app.application import renew_lead
    from tests.harness import running_bot

    async with running_bot(tmp_path, pai_sqlite_busy_timeout=0.1) as bot:
        leadership = bot.app.bot_data.leadership
        assert leadership is not None and leadership.held
        holder = sqlite3.connect(tmp_path / "bot.db", isolation_level=None, timeout=0)
        holder.execute("BEGIN EXCLUSIVE")  # what a long import does to the file
        try:
            for _ in range(5):  # 50 s of renewals, well past the 30 s lease
                bot.clock.advance(dt.timedelta(seconds=10))
                await renew_lead(bot.app, polling=True, schedule_reminders=False)
            assert not bot.app.bot_data.lost_lead  # nobody took over: nothing stops
            assert bot.app.running
            assert "the database is busy" in caplog.text
            assert "took over" not in caplog.text
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        bot.clock.advance(dt.timedelta(seconds=10))
        await renew_lead(bot.app, polling=True, schedule_reminders=False)
        assert leadership.held  # the lease taken back at the first renewal that could


async def test_a_database_that_takes_the_connection_and_never_answers_is_named_so():
    """asyncpg raises Python's own TimeoutError for a server that accepts and stays
    silent: that is the database's trouble (one line, the cannot-save apology); the same
    error from anywhere else is not."""
    from sqlalchemy.ext.asyncio import create_async_engine

    from bot.storage.database import database_failure

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.read()  # takes what it is sent and never says a word
        finally:
            writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    engine = create_async_engine(
        f"postgresql+asyncpg://postgres@127.0.0.1:{port}/test", connect_args={"timeout": 0.3}
    )
    try:
        with pytest.raises(TimeoutError) as raised:
            async with engine.connect():
                pass
    finally:
        await engine.dispose()
        server.close()
        await server.wait_closed()  # the silent side hears the bot hang up, and closes
    assert database_failure(raised.value) == "the database did not answer in time"
    try:
        raise TimeoutError  # a timeout of the bot's own, nothing to do with the database
    except TimeoutError as ours:
        assert database_failure(ours) is None


async def test_a_poller_starting_on_a_locked_sqlite_file_says_so_and_leads_after(
    tmp_path, caplog, monkeypatch
):
    """A database too busy to say who leads is not another instance polling."""
    import datetime as dt
    import sqlite3

    from bot.app import application
    from bot.config import Settings
    from bot.jobs.leadership import Leadership
    from bot.resources import open_resources

    monkeypatch.setattr(application, "RENEW_EVERY", dt.timedelta(seconds=0.01))
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=f"sqlite:///{tmp_path / 'bot.db'}",
        pai_sqlite_busy_timeout=0.1,
    )
    shared = await open_resources(settings, chat=False)
    try:
        starting = Leadership(shared, holder="starting")
        holder = sqlite3.connect(tmp_path / "bot.db", isolation_level=None, timeout=0)
        holder.execute("BEGIN EXCLUSIVE")  # an import, as the process starts
        waiting = asyncio.create_task(application._wait_to_lead(starting))
        try:
            await asyncio.sleep(0.5)
            assert not waiting.done()
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        await asyncio.wait_for(waiting, 5)
        assert starting.held
    finally:
        await shared.close()
    assert "cannot take the leader lease: the database is busy" in caplog.text
    assert "trying again" in caplog.text
    assert "another instance" not in caplog.text and "leading goes on" not in caplog.text
