"""The bot's long-lived resources, built in one place and shared by handlers, jobs and the CLI."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.clock import Clock, SystemClock
from bot.config import Settings
from bot.db import create_tables, make_engine, make_sessions
from bot.drafts import DraftStore, MemoryDrafts
from bot.rules import Rules, load_rules


@dataclass
class Resources:
    """Engine, session factory, rules, settings and clock: one object, made once.

    Holds a session factory, never a session: each update or job opens its own.
    """

    settings: Settings
    rules: Rules
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    clock: Clock
    drafts: DraftStore = field(default_factory=MemoryDrafts)

    def now(self) -> dt.datetime:
        return self.clock.now()

    def today(self) -> dt.date:
        """Today in the programme's time zone."""
        return self.rules.today(self.clock.now())

    async def close(self) -> None:
        await self.engine.dispose()


async def open_resources(
    settings: Settings, *, clock: Clock | None = None, rules: Rules | None = None
) -> Resources:
    """Read the rules, open the database and create missing tables."""
    programme_rules = rules or load_rules(settings.pai_rules_file)
    engine = make_engine(settings.database_url, settings.timeouts)
    try:
        await create_tables(engine)
    except BaseException:
        await engine.dispose()
        raise
    return Resources(
        settings=settings,
        rules=programme_rules,
        engine=engine,
        sessions=make_sessions(engine),
        clock=clock or SystemClock(),
    )
