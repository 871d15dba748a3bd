"""The database: async engine from DATABASE_URL, sessions, the SQLite file, the schema."""

from __future__ import annotations

import datetime as dt
import os
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

import models  # noqa: F401  (registers the tables on SQLModel.metadata)
from bot.problems import SetupError

_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
}


class DatabaseUrlError(SetupError):
    """DATABASE_URL is not a SQLite or PostgreSQL URL."""


class DatabaseMissing(SetupError):
    """A command that only reads was pointed at a SQLite file that does not exist."""


@dataclass(frozen=True)
class Timeouts:
    """How long a statement may wait, in seconds: nothing waits forever.

    `lock` and `statement` are PostgreSQL's lock_timeout and statement_timeout;
    `busy` is how long SQLite waits for another connection's write lock.
    """

    lock: float = 10.0
    statement: float = 30.0
    busy: float = 10.0


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


def sqlite_file(database_url: str) -> Path | None:
    """The file a SQLite URL names; None for PostgreSQL or an in-memory database."""
    url = async_url(database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


def prepare_sqlite_file(database_url: str, *, must_exist: bool) -> bool:
    """Make sure the SQLite file is there; return True when this call created it.

    Commands that only read refuse a missing file instead of silently reading an
    empty new database. A new file is readable by its owner only: it holds partners'
    deals and salespeople's names (SQLite gives its -wal and -shm files the same mode).
    """
    path = sqlite_file(database_url)
    if path is None or path.exists():
        return False
    if must_exist:
        raise DatabaseMissing(f"there is no database at {path}: check DATABASE_URL")
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        return False  # another process made it a moment ago
    except OSError as exc:
        raise DatabaseMissing(f"cannot create the database {path}: {exc.strerror}") from None
    return True


def describe_database_trouble(exc: BaseException) -> str:
    """What kept the database from answering, in words for an operator's log: busy
    (another program holds SQLite's write lock), a full disk, away, too slow."""
    cause = exc
    while cause.__cause__ is not None and cause.__cause__ is not cause:
        cause = cause.__cause__
    said = " ".join(str(getattr(exc, "orig", None) or exc).split()).lower()
    if "database is locked" in said or "database is busy" in said:
        return "the database is busy: another program holds its write lock (an import?)"
    if "disk is full" in said or "no space left" in said or getattr(cause, "errno", 0) == 28:
        return "the disk is full: the database cannot be written"
    if isinstance(exc, TimeoutError) or isinstance(cause, TimeoutError):
        return "the database did not answer in time"
    if isinstance(cause, ConnectionError | OSError) or "connection" in said:
        return f"the database cannot be reached ({type(cause).__name__})"
    return type(exc).__name__


# Where a failure comes from when it is the database's: the drivers and SQLAlchemy.
_DATABASE_MODULES = ("sqlalchemy.", "asyncpg.", "sqlite3", "aiosqlite.")


def database_failure(exc: BaseException) -> str | None:
    """What went wrong, in words, when `exc` is the database failing (away, busy, full,
    too slow); None for anything else, a bug included."""
    chain = [exc]
    while chain[-1].__cause__ is not None and len(chain) < 5:
        chain.append(chain[-1].__cause__)
    if any(type(e).__module__.startswith(_DATABASE_MODULES) for e in chain):
        return describe_database_trouble(exc)
    # A server that takes the connection and never answers, or refuses its TLS: the
    # drivers raise Python's own TimeoutError or ConnectionError, from their own code.
    if isinstance(exc, TimeoutError | ConnectionError) and _raised_in_database(exc):
        return describe_database_trouble(exc)
    return None


def _raised_in_database(exc: BaseException) -> bool:
    return any(
        str(frame.f_globals.get("__name__", "")).startswith(_DATABASE_MODULES)
        for frame, _line in traceback.walk_tb(exc.__traceback__)
    )


def make_engine(database_url: str, timeouts: Timeouts | None = None) -> AsyncEngine:
    url = async_url(database_url)
    limits = timeouts or Timeouts()
    if url.get_backend_name() == "sqlite":
        # A writer waits `busy` seconds for another instead of failing at once; statement
        # parameters (VAT numbers, names) stay out of error messages and logs.
        engine = create_async_engine(
            url, connect_args={"timeout": limits.busy}, hide_parameters=True
        )
        event.listen(engine.sync_engine, "connect", _tune_sqlite)
        return engine
    return create_async_engine(
        url,
        pool_pre_ping=True,
        hide_parameters=True,
        connect_args={"server_settings": postgres_limits(limits)},
    )


def postgres_limits(timeouts: Timeouts) -> dict[str, str]:
    """PostgreSQL's settings for every connection: how long a statement may wait, and
    no JIT compilation.

    JIT pays off for long analytical queries; it is started by the planner's cost
    estimate, which correlated subqueries inflate, and then costs 0.1-0.4 s of compiling
    on a statement that runs in less: the reminders' cut at 90,000 salespeople took
    0.58 s with it, 0.19 s without (issue 22).
    """
    return {
        "lock_timeout": str(int(timeouts.lock * 1000)),
        "statement_timeout": str(int(timeouts.statement * 1000)),
        "jit": "off",
    }


def asyncpg_arguments(engine: AsyncEngine, timeouts: Timeouts) -> dict[str, Any]:
    """asyncpg's own connect arguments for the engine's database, read from DATABASE_URL
    as SQLAlchemy reads it (`?ssl=require` and the like), with the same limits."""
    _args, given = engine.dialect.create_connect_args(engine.url)
    arguments = dict(given)
    arguments.pop("async_creator_fn", None)
    arguments.pop("prepared_statement_name_func", None)
    if "prepared_statement_cache_size" in arguments:  # pgbouncer: 0, no named statements
        arguments["statement_cache_size"] = int(arguments.pop("prepared_statement_cache_size"))
    arguments["server_settings"] = {
        **arguments.get("server_settings", {}),
        **postgres_limits(timeouts),
    }
    return arguments


def _tune_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the bot read while an import writes; foreign keys are off by default.
    # Set once per file: asking again takes the exclusive lock another instance may hold.
    cursor.execute("PRAGMA journal_mode")
    if str(cursor.fetchone()[0]).lower() != "wal":
        cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # What is deleted or overwritten is zeroed on disk: an erased person's name cannot
    # be read back from the file's free space (PRODUCT.md §8).
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


def dialect_insert(session: AsyncSession, table: Any) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT on both SQLite and PostgreSQL."""
    # Imported here: a command on SQLite never pays for PostgreSQL's dialect.
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(table)


async def copy_records(
    session: AsyncSession, table: str, columns: Sequence[str], records: Sequence[Sequence[Any]]
) -> None:
    """PostgreSQL's COPY of the records into the table, inside the session's transaction:
    the fastest way in, a tenth of the time of INSERTs."""
    driver = await driver_connection(session)
    await driver.copy_records_to_table(table, records=records, columns=list(columns))


async def driver_connection(session: AsyncSession) -> Any:
    """The session's asyncpg connection, in the session's transaction."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    assert raw.driver_connection is not None
    return raw.driver_connection


T = TypeVar("T")
# Values per IN (...) list: well under both databases' limits on bound parameters.
IN_BATCH = 1000


def in_chunks(items: Sequence[T], size: int = IN_BATCH) -> list[Sequence[T]]:
    """The items in slices of `size`, one query each."""
    return [items[i : i + size] for i in range(0, len(items), size)]


def date_of(value: dt.date | str | None) -> dt.date | None:
    """SQLite hands back max() of a date column as text; PostgreSQL as a date."""
    if value is None or isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(value)


def moment_of(value: dt.datetime | str) -> dt.datetime:
    """SQLite hands back max() of a datetime column as naive text; PostgreSQL aware."""
    moment = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(value)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def make_sessions(
    engine: AsyncEngine, info: dict[str, Any] | None = None
) -> async_sessionmaker[AsyncSession]:
    """Sessions on `engine`; `info` rides on each (bot/events.py's bus, for one)."""
    return async_sessionmaker(engine, expire_on_commit=False, info=info or {})
