"""The database: async engine from DATABASE_URL, sessions, tables."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlmodel import SQLModel

import models  # noqa: F401  (registers the tables on SQLModel.metadata)
from bot.errors import DomainError

_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
}


class DatabaseUrlError(DomainError):
    """DATABASE_URL is not a SQLite or PostgreSQL URL."""


def async_url(database_url: str) -> URL:
    """Map `sqlite:///…` and `postgresql://…` to their async drivers."""
    try:
        url = make_url(database_url)
    except ArgumentError:
        # Not the parser's message: it would repeat the URL, password included.
        raise DatabaseUrlError(
            "DATABASE_URL is not a database URL such as sqlite:///pai.db"
        ) from None
    backend = url.drivername.split("+", 1)[0]
    if backend not in _ASYNC_DRIVERS:
        raise DatabaseUrlError("DATABASE_URL must start with sqlite:/// or postgresql://")
    return url.set(drivername=_ASYNC_DRIVERS[backend])


def display_url(database_url: str) -> str:
    """DATABASE_URL as it can be shown in logs and messages: checked, password hidden."""
    async_url(database_url)
    return make_url(database_url).render_as_string(hide_password=True)


def make_engine(database_url: str) -> AsyncEngine:
    url = async_url(database_url)
    if url.get_backend_name() == "sqlite":
        # A writer waits up to 30 s for another instead of failing at once; statement
        # parameters (VAT numbers, names) stay out of error messages and logs.
        engine = create_async_engine(url, connect_args={"timeout": 30}, hide_parameters=True)
        event.listen(engine.sync_engine, "connect", _tune_sqlite)
        return engine
    return create_async_engine(url, pool_pre_ping=True, hide_parameters=True)


def _tune_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the bot read while an import writes; foreign keys are off by default.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def create_tables(engine: AsyncEngine) -> None:
    """Create missing tables (migrations come later)."""
    async with engine.begin() as connection:
        await connection.run_sync(SQLModel.metadata.create_all)
