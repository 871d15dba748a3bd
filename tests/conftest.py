"""Shared fixtures: a fresh database per test, on SQLite and (when configured) PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from hypothesis import settings
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import SQLModel

from bot.domain.rules import Rules, load_rules
from bot.storage.database import make_engine, make_sessions
from bot.storage.schema import create_tables

# CI sets it; without it the PostgreSQL half of the data-layer tests is skipped.
TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")
BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def rules() -> Rules:
    return load_rules()


def database_url_for(backend: str, tmp_path: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'pai.db'}"
    if not TEST_DATABASE_URL:
        pytest.skip("TEST_DATABASE_URL is not set: PostgreSQL tests skipped")
    return TEST_DATABASE_URL


_created: set[str] = set()


async def ensure_postgresql_database(url: str) -> None:
    """Create the test database when the server does not have it yet (a fresh machine)."""
    if url in _created:
        return
    target = make_url(url)
    try:
        connection = await asyncpg.connect(
            target.set(drivername="postgresql").render_as_string(False)
        )
    except asyncpg.InvalidCatalogNameError:
        server = target.set(drivername="postgresql", database="postgres")
        admin = await asyncpg.connect(server.render_as_string(False))
        try:
            await admin.execute(f'CREATE DATABASE "{target.database}"')
        except asyncpg.DuplicateDatabaseError:
            pass  # another test process made it a moment ago
        finally:
            await admin.close()
    else:
        await connection.close()
    _created.add(url)


async def reset_postgresql(url: str) -> None:
    """Empty the test database: the suite drops every table of the database it is given."""
    await ensure_postgresql_database(url)
    engine = make_engine(url)
    async with engine.begin() as connection:
        await connection.run_sync(SQLModel.metadata.drop_all)
        # The schema's recorded revision goes too: the next test's database is new.
        await connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
    await engine.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return database_url_for(request.param, tmp_path)


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    if database_url.startswith("postgres"):
        await reset_postgresql(database_url)
    engine = make_engine(database_url)
    await create_tables(engine)
    yield make_sessions(engine)
    await engine.dispose()


@pytest.fixture
async def sqlite_sessions(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'pai.db'}")
    await create_tables(engine)
    yield make_sessions(engine)
    await engine.dispose()


async def count_rows(sessions: async_sessionmaker[AsyncSession], table: str) -> int:
    async with sessions() as session:
        return int((await session.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())


# Parsers meet Babel's locale data on their first call: no per-example deadline.
settings.register_profile("pai", deadline=None)
settings.load_profile("pai")


# What starts the real bot: `pai-bot`, or a Python of its own (`python -m bot.app.cli`).
_REAL_PROCESS = ("pai-bot", sys.executable)


@pytest.fixture(autouse=True)
def real_processes_are_marked_slow(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """A test that starts the real process must be marked `slow`: `pytest -m "not slow"`
    is the quick loop, and it must stay quick."""
    if request.node.get_closest_marker("slow") is not None:
        yield
        return
    started: list[str] = []
    original = subprocess.Popen.__init__

    def noting(self: subprocess.Popen[Any], args: Any, *rest: Any, **named: Any) -> None:
        words = [str(word) for word in (args if isinstance(args, list | tuple) else [args])]
        if any(word.endswith(_REAL_PROCESS) or word == sys.executable for word in words):
            started.append(" ".join(words))
        original(self, args, *rest, **named)

    monkeypatch.setattr(subprocess.Popen, "__init__", noting)
    yield
    if started:
        pytest.fail(f"this test starts the real process ({started[0]}): mark it slow")
