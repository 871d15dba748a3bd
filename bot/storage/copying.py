"""Moving a programme from its SQLite file to PostgreSQL (PRODUCT.md §9: `pai-bot copy-db`).

The target gets this version's schema through the migrations, then every table in the
order its links need, in batches, inside one transaction: a copy that fails halfway
leaves the target empty, to be tried again. The source is read in one read
transaction, so the copy is one moment of it; counts are compared per table before
the target commits, and again against the source as it is now, so a bot still
writing to the file is noticed rather than half copied.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Integer, Table, event, func, insert, inspect, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel import SQLModel

import models  # noqa: F401  (registers the tables on SQLModel.metadata)
from bot.problems import SetupError
from bot.storage.conversations import conversations_url
from bot.storage.database import (
    DatabaseMissing,
    Timeouts,
    async_url,
    display_url,
    make_engine,
    sqlite_file,
)
from bot.storage.schema import head_revision, migrate_database, schema_state

# Rows read and written at once: a few MB, whatever the table's size.
BATCH = 5000
# Kept in the conversations file beside a SQLite database (bot/storage/conversations.py).
CONVERSATION_TABLES = frozenset({"conversationstate", "handledupdate"})
DATABASE_FILE, CONVERSATIONS_FILE = "database", "conversations file"


class CopyRefused(SetupError):
    """The copy cannot start or did not match; str() is one sentence for the operator."""


@dataclass(frozen=True)
class CopiedTable:
    name: str
    source: int  # rows in the source
    copied: int  # rows in the target after the copy
    where: str  # the file they came from: DATABASE_FILE or CONVERSATIONS_FILE


Told = Callable[[CopiedTable], None]


async def copy_database(
    source_url: str, target_url: str, timeouts: Timeouts, told: Told | None = None
) -> list[CopiedTable]:
    """Copy the SQLite database at `source_url` (with its conversations file) into the
    empty PostgreSQL database at `target_url`; the tables with their counts."""
    source_file = _sqlite_source(source_url)
    refuse_unless_postgresql(target_url)
    source = _snapshot_engine(source_url, timeouts)
    talks_file = sqlite_file(conversations_url(source_url))
    talks = (
        _snapshot_engine(conversations_url(source_url), timeouts)
        if talks_file is not None and talks_file.exists()
        else None
    )
    target = make_engine(target_url, timeouts)
    try:
        await _refuse_unless_at_head(source, source_file)
        await _refuse_unless_empty(target, target_url)
        await migrate_database(target_url, timeouts)
        return await _copy_all(source, talks, target, told)
    finally:
        for engine in (source, talks, target):
            if engine is not None:
                await engine.dispose()


def _sqlite_source(source_url: str) -> Path:
    path = sqlite_file(source_url)
    if path is None:
        raise CopyRefused(
            "copy-db copies a SQLite database to PostgreSQL: DATABASE_URL "
            f"({display_url(source_url)}) is not a SQLite file"
        )
    if not path.exists():
        raise DatabaseMissing(f"there is no SQLite database at {path}")
    return path


def refuse_unless_postgresql(target_url: str) -> None:
    try:
        backend = async_url(target_url).get_backend_name()
    except SetupError:
        backend = ""
    if backend != "postgresql":
        # Not repeated: what was typed may hold a password.
        raise CopyRefused(
            "the target is not a PostgreSQL URL: give one like "
            "postgresql://user:password@host:5432/pai"
        )


def _snapshot_engine(url: str, timeouts: Timeouts) -> AsyncEngine:
    """A SQLite engine whose reads share one transaction: one moment of the file, while
    anything else may go on reading (WAL)."""
    engine = make_engine(url, timeouts)

    @event.listens_for(engine.sync_engine, "connect")
    def _manual(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN")

    return engine


async def _refuse_unless_at_head(source: AsyncEngine, path: Path) -> None:
    async with source.connect() as connection:
        state = await connection.run_sync(schema_state)
    head = head_revision()
    if state.revision is None:
        raise CopyRefused(f"{path} holds none of the bot's tables: there is nothing to copy")
    if state.revision != head or not state.recorded:
        raise CopyRefused(
            f"{path} is at schema revision {state.revision}, this version's is {head}: "
            "run `pai-bot migrate` on it first"
        )


async def _refuse_unless_empty(target: AsyncEngine, target_url: str) -> None:
    """The target may be new, or hold the bot's tables without a row (a copy that
    failed, or `pai-bot migrate` run on it): anything else is someone's data."""
    where = display_url(target_url)
    try:
        async with target.connect() as connection:
            names = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
            ours = [table for table in _tables() if table.name in names]
            for table in ours:
                if await connection.scalar(select(select(table).exists())):
                    raise CopyRefused(
                        f"{where} is not empty (its {table.name} table holds rows): "
                        "copy-db fills only an empty database"
                    )
    except CopyRefused:
        raise
    except Exception as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise CopyRefused(f"cannot use {where}: {reason}") from None


def _tables() -> Sequence[Table]:
    """Every table of this version, each after the tables it links to."""
    return SQLModel.metadata.sorted_tables


async def _copy_all(
    source: AsyncEngine, talks: AsyncEngine | None, target: AsyncEngine, told: Told | None
) -> list[CopiedTable]:
    copied: list[CopiedTable] = []
    async with source.begin() as main, target.begin() as into:
        # Millions of rows take longer than a chat's statement may.
        await into.execute(text("SET LOCAL statement_timeout = 0"))
        conversations = await talks.connect() if talks is not None else None
        try:
            if conversations is not None:
                await conversations.begin()
            for table in _tables():
                reading, where = main, DATABASE_FILE
                if table.name in CONVERSATION_TABLES and conversations is not None:
                    reading, where = conversations, CONVERSATIONS_FILE
                done = await _copy_table(table, reading, into, where)
                copied.append(done)
                if told is not None:
                    told(done)
            await _restart_sequences(into)
            _refuse_unless_equal(copied)
            await _refuse_if_source_moved(source, talks, copied)
        finally:
            if conversations is not None:
                await conversations.close()
    return copied


async def _copy_table(
    table: Table, reading: AsyncConnection, into: AsyncConnection, where: str
) -> CopiedTable:
    source = int(await reading.scalar(select(func.count()).select_from(table)) or 0)
    rows = await reading.stream(select(table).order_by(*table.primary_key.columns))
    async for batch in rows.partitions(BATCH):
        await into.execute(insert(table), [dict(row._mapping) for row in batch])
    copied = int(await into.scalar(select(func.count()).select_from(table)) or 0)
    return CopiedTable(table.name, source, copied, where)


async def _restart_sequences(into: AsyncConnection) -> None:
    """Ids were copied as they were: each counter goes on after the highest."""
    for table in _tables():
        keys = list(table.primary_key.columns)
        if len(keys) != 1 or not isinstance(keys[0].type, Integer) or not keys[0].autoincrement:
            continue
        column = keys[0].name
        sequence = await into.scalar(
            text("SELECT pg_get_serial_sequence(:table, :column)"),
            {"table": table.name, "column": column},
        )
        if sequence is None:
            continue
        await into.execute(
            text(
                f"SELECT setval(:sequence, coalesce(max({column}), 0) + 1, false) FROM {table.name}"
            ),
            {"sequence": sequence},
        )


def _refuse_unless_equal(copied: list[CopiedTable]) -> None:
    for table in copied:
        if table.source != table.copied:
            raise CopyRefused(
                f"{table.name}: {table.source} rows in the source, {table.copied} copied; "
                "nothing was kept in the target"
            )


async def _refuse_if_source_moved(
    source: AsyncEngine, talks: AsyncEngine | None, copied: list[CopiedTable]
) -> None:
    """Counted again outside the copy's moment: a difference is a bot still running."""
    for table in copied:
        engine = talks if table.where == CONVERSATIONS_FILE and talks is not None else source
        async with engine.connect() as connection:
            now = int(
                await connection.scalar(select(func.count()).select_from(table_of(table))) or 0
            )
        if now != table.source:
            raise CopyRefused(
                f"the source changed while it was copied ({table.name}: {table.source} rows, "
                f"now {now}): stop the bot, then copy again; nothing was kept in the target"
            )


def table_of(copied: CopiedTable) -> Table:
    return SQLModel.metadata.tables[copied.name]
