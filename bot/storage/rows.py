"""Reads every update makes (who is writing), as one statement in one round trip.

Through a SQLAlchemy session the same read is four round trips on PostgreSQL (the
pool's ping, BEGIN, the statement, ROLLBACK) and 0.30 ms of this process's CPU; on
the driver it is one and 0.06 ms (measured by bench/e2e.py's profile, issue 22).
Nothing is cached: an unlink takes effect at the next update, on every instance.

The statement is still SQLAlchemy's, compiled once for the database, and every value
goes through the column's own result processing, so a row read here holds the same
Python values (aware datetimes, booleans, decimals) as one read through a session.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import Select
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.storage.database import Timeouts, sqlite_file

if TYPE_CHECKING:
    import aiosqlite
    import asyncpg

Row = Mapping[str, Any]


class OneRow:
    """A SELECT with named parameters, compiled once for `dialect`: its SQL, the order of
    its parameters, and how each column's value is turned into Python."""

    def __init__(self, statement: Select[Any], dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql = str(compiled)
        self.parameters: Sequence[str] = list(compiled.positiontup or ())
        self.names = [column.name for column in statement.selected_columns]
        processors: list[Callable[[Any], Any] | None] = [
            # The dialect's own type (SQLite's DATETIME parses its text), as a session's.
            column.type.dialect_impl(dialect).result_processor(dialect, None)
            for column in statement.selected_columns
        ]
        self.processors = processors

    def arguments(self, values: Mapping[str, Any]) -> list[Any]:
        return [values[name] for name in self.parameters]

    def row(self, raw: Sequence[Any] | None) -> Row | None:
        if raw is None:
            return None
        return {
            name: value if process is None or value is None else process(value)
            for name, process, value in zip(self.names, self.processors, raw, strict=True)
        }


class RowReads(Protocol):
    async def first(self, statement: Select[Any], values: Mapping[str, Any]) -> Row | None:
        """The statement's first row, or None."""
        ...

    async def close(self) -> None: ...


class _Compiled:
    """Each statement compiled once for the database (statements are module constants)."""

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect
        self._known: dict[int, tuple[Select[Any], OneRow]] = {}

    def query(self, statement: Select[Any]) -> OneRow:
        known = self._known.get(id(statement))
        if known is None or known[0] is not statement:
            known = (statement, OneRow(statement, self._dialect))
            self._known[id(statement)] = known
        return known[1]


class PostgresRowReads(_Compiled):
    """On the asyncpg pool the conversations already keep (bot/storage/conversations.py):
    one autocommit statement, no connection of its own."""

    def __init__(self, pool: asyncpg.Pool, dialect: Dialect) -> None:
        super().__init__(dialect)
        self._pool = pool

    async def first(self, statement: Select[Any], values: Mapping[str, Any]) -> Row | None:
        query = self.query(statement)
        return query.row(await self._pool.fetchrow(query.sql, *query.arguments(values)))

    async def close(self) -> None:
        return None  # the pool is the conversations'


class SqliteRowReads(_Compiled):
    """On one aiosqlite connection of its own to the database file, in autocommit: a read
    in WAL never waits for a writer."""

    def __init__(self, connection: aiosqlite.Connection, dialect: Dialect) -> None:
        super().__init__(dialect)
        self._connection = connection

    @classmethod
    async def open(cls, path: Path, dialect: Dialect, busy: float) -> SqliteRowReads:
        import aiosqlite

        connection = await aiosqlite.connect(path, timeout=busy, isolation_level=None)
        return cls(connection, dialect)

    async def first(self, statement: Select[Any], values: Mapping[str, Any]) -> Row | None:
        query = self.query(statement)
        rows = await self._connection.execute_fetchall(query.sql, query.arguments(values))
        for raw in rows:
            return query.row(tuple(raw))
        return None

    async def close(self) -> None:
        await self._connection.close()


class SessionRowReads:
    """Through the engine, as any other read: for the command line, which reads once."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def first(self, statement: Select[Any], values: Mapping[str, Any]) -> Row | None:
        async with self._engine.connect() as connection:
            row = (await connection.execute(statement, values)).first()
        return None if row is None else dict(row._mapping)

    async def close(self) -> None:
        return None


async def open_row_reads(
    database_url: str, engine: AsyncEngine, pool: asyncpg.Pool | None, timeouts: Timeouts
) -> RowReads:
    """One round trip a read: on PostgreSQL on `pool` (the conversations'), on a SQLite
    file on a connection of its own; through the engine otherwise."""
    if pool is not None:
        return PostgresRowReads(pool, engine.dialect)
    path = sqlite_file(database_url)
    if path is None:
        return SessionRowReads(engine)
    return await SqliteRowReads.open(path, engine.dialect, timeouts.busy)
