"""The bot's long-lived resources, built in one place and shared by handlers, jobs and the CLI."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.domain.clock import Clock, SystemClock
from bot.domain.rules import Rules, load_rules
from bot.events import Events
from bot.services.vies import ViesClient
from bot.storage.conversations import (
    Conversations,
    Drafts,
    DraftStore,
    NoConversations,
    PostgresConversations,
    open_conversations,
)
from bot.storage.database import make_engine, make_sessions
from bot.storage.rows import RowReads, SessionRowReads, open_row_reads
from bot.storage.schema import create_tables

log = logging.getLogger(__name__)
# Seconds a stop waits for long work to wind down before cancelling it: longer than a
# send's read timeout (5 s), so a message in flight gets its answer and is not left
# "maybe delivered".
STOP_GRACE = 10.0


@dataclass
class Resources:
    """Engine, session factory, rules, settings and clock: one object, made once.

    Holds a session factory, never a session: each update or job opens its own.
    """

    settings: Settings
    rules: Rules
    engine: AsyncEngine
    clock: Clock
    # Where each user is in each conversation (a registration, a broadcast being
    # written, a rejection waiting for its reason): in the database, never in memory.
    conversations: Conversations
    # The reads every update makes (who is writing), one round trip each.
    rows: RowReads
    # Long work (a broadcast being sent) that a stop interrupts; resumed at start.
    _long: set[asyncio.Task[None]] = field(default_factory=set)
    # Set when the bot stops: long work finishes what it handed over and takes no more.
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    # Work that must not hold up an answer (noting a visit); awaited on close.
    _background: set[asyncio.Task[None]] = field(default_factory=set)
    # VIES, asked beside verdicts (PRODUCT.md §6); made at its first use, unless off.
    _vies: ViesClient | None = None
    # What the services say happened, and who listens (wired where the bot is assembled).
    events: Events = field(init=False)
    # Each update or job opens its own session from here; their events reach `events`.
    sessions: async_sessionmaker[AsyncSession] = field(init=False)

    def __post_init__(self) -> None:
        self.events = Events(self.run_in_background)
        self.sessions = make_sessions(self.engine, self.events.session_info())

    @property
    def vies(self) -> ViesClient | None:
        """The VIES client, or None when PAI_VIES=off."""
        if not self.settings.pai_vies:
            return None
        if self._vies is None:
            self._vies = ViesClient(self.settings.pai_vies_url)
        return self._vies

    @property
    def drafts(self) -> DraftStore:
        return Drafts(self.conversations)

    def now(self) -> dt.datetime:
        return self.clock.now()

    def today(self) -> dt.date:
        """Today in the programme's time zone."""
        return self.rules.today(self.clock.now())

    def run_in_background(self, work: Coroutine[Any, Any, None], what: str) -> None:
        """Run `work` beside the current answer; a failure is logged, never raised."""

        async def guarded() -> None:
            try:
                await work
            except Exception as exc:  # bookkeeping: the user already has their answer
                log.info("%s failed: %s", what, type(exc).__name__)

        task = asyncio.get_running_loop().create_task(guarded())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def settle(self) -> None:
        """Wait for the work running in the background."""
        while self._background:
            await asyncio.gather(*self._background)

    def run_until_closed(self, work: Coroutine[Any, Any, None], what: str) -> None:
        """Run long work beside the bot; closing cancels it (it must resume at start)."""

        async def guarded() -> None:
            try:
                await work
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s failed", what)

        task = asyncio.get_running_loop().create_task(guarded())
        self._long.add(task)
        task.add_done_callback(self._long.discard)

    async def stopped_within(self, seconds: float) -> bool:
        """Wait up to `seconds`, cut short by a stop; True when the bot is stopping."""
        try:
            await asyncio.wait_for(self.stopping.wait(), seconds)
        except TimeoutError:
            return False
        return True

    async def wind_down(self) -> None:
        """Let long work finish what it handed to Telegram and take no more.

        Runs while the bot can still talk to Telegram (PTB's post_stop): what is being
        sent gets its answer; what waits for its turn is left for the restart.
        """
        self.stopping.set()
        if self._long:
            _done, late = await asyncio.wait(set(self._long), timeout=STOP_GRACE)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    async def close(self) -> None:
        try:
            await self.wind_down()
            await self.settle()
            await self.engine.dispose()
            if self._vies is not None:
                await self._vies.close()
        finally:
            # Always: aiosqlite's threads would keep the process from exiting.
            await self.rows.close()
            await self.conversations.close()


async def open_resources(
    settings: Settings,
    *,
    clock: Clock | None = None,
    rules: Rules | None = None,
    chat: bool = True,
) -> Resources:
    """Read the rules, open the database and create missing tables; with `chat`, the
    conversations' store too (the command line has no conversations)."""
    programme_rules = rules or load_rules(settings.pai_rules_file)
    engine = make_engine(settings.database_url, settings.timeouts)
    try:
        await create_tables(engine)
        conversations: Conversations = NoConversations()
        rows: RowReads = SessionRowReads(engine)
        if chat:
            conversations = await open_conversations(
                settings.database_url, engine, settings.timeouts
            )
            pool = conversations.pool if isinstance(conversations, PostgresConversations) else None
            try:
                rows = await open_row_reads(settings.database_url, engine, pool, settings.timeouts)
            except BaseException:
                await conversations.close()
                raise
    except BaseException:
        await engine.dispose()
        raise
    return Resources(
        settings=settings,
        rules=programme_rules,
        engine=engine,
        clock=clock or SystemClock(),
        conversations=conversations,
        rows=rows,
    )
