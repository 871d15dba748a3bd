"""Where each user is in each conversation with the bot, kept in the database: the stores,
and the registration drafts on top of them."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import Table
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.schema import CreateIndex, CreateTable

from bot.domain.drafts import Draft
from bot.storage.database import Timeouts, asyncpg_arguments, prepare_sqlite_file, sqlite_file
from models import ConversationState, HandledUpdate

if TYPE_CHECKING:
    import aiosqlite
    import asyncpg


class Conversations(Protocol):
    """Where each user is in each conversation with the bot: one database row per user
    and kind, read on every update and written whenever it changes.

    Nothing lives in process memory, so a restart (even a crash) or the user's next
    update landing on another instance finds the conversation where it was. It is read
    and written on every update, so both stores below keep to one statement per call,
    built once.
    """

    async def load(self, user_id: int, kind: str) -> dict[str, Any] | None: ...

    async def save(
        self, user_id: int, kind: str, state: dict[str, Any], now: dt.datetime
    ) -> None: ...

    async def take(self, user_id: int, kind: str) -> dict[str, Any] | None:
        """Remove the state and return what it was: of two updates racing for it (two
        taps on one button, on two instances), only one gets it."""
        ...

    async def forget_before(self, moment: dt.datetime) -> int:
        """Drop conversations untouched since `moment`: they hold VAT numbers and names."""
        ...

    async def first_sight(self, update_id: int, now: dt.datetime) -> bool:
        """Note that the update is being handled; False when it was already (Telegram
        sent it again): one statement, so of two instances given it one gets True."""
        ...

    async def forget_updates_before(self, moment: dt.datetime) -> int:
        """Drop the notes of updates handled before `moment`."""
        ...

    async def close(self) -> None: ...


_TABLE: Table = ConversationState.__table__  # type: ignore[attr-defined]
_HANDLED: Table = HandledUpdate.__table__  # type: ignore[attr-defined]
# Connections the PostgreSQL store keeps open at most: a statement takes about a
# millisecond, so a few serve hundreds of updates at once.
POSTGRES_CONNECTIONS = 10


class NoConversations:
    """Where there are no conversations (the command line): using it is a bug."""

    async def load(self, user_id: int, kind: str) -> dict[str, Any] | None:
        raise RuntimeError("the command line has no conversations")

    async def save(self, user_id: int, kind: str, state: dict[str, Any], now: dt.datetime) -> None:
        raise RuntimeError("the command line has no conversations")

    async def take(self, user_id: int, kind: str) -> dict[str, Any] | None:
        raise RuntimeError("the command line has no conversations")

    async def forget_before(self, moment: dt.datetime) -> int:
        raise RuntimeError("the command line has no conversations")

    async def first_sight(self, update_id: int, now: dt.datetime) -> bool:
        raise RuntimeError("the command line has no conversations")

    async def forget_updates_before(self, moment: dt.datetime) -> int:
        raise RuntimeError("the command line has no conversations")

    async def close(self) -> None:
        return None


class PostgresConversations:
    """Conversations in the PostgreSQL database, on a small asyncpg pool of their own.

    Each call is one statement in autocommit: one round trip. Through SQLAlchemy the
    same statement took four (the pool's ping, BEGIN, the statement, COMMIT), 0.56 ms
    of CPU a load against 0.12 ms here. Connections go back to the pool as they are:
    one autocommit statement leaves nothing to reset, and asyncpg's reset (unlisten,
    unlock, RESET ALL) would be a round trip more.
    """

    _LOAD = "SELECT state FROM conversationstate WHERE telegram_user_id = $1 AND kind = $2"
    _SAVE = (
        "INSERT INTO conversationstate (telegram_user_id, kind, state, updated_at)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT (telegram_user_id, kind)"
        " DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at"
    )
    _TAKE = (
        "DELETE FROM conversationstate WHERE telegram_user_id = $1 AND kind = $2 RETURNING state"
    )
    _FORGET = "DELETE FROM conversationstate WHERE updated_at < $1"
    _SEEN = (
        "INSERT INTO handledupdate (update_id, handled_at) VALUES ($1, $2)"
        " ON CONFLICT (update_id) DO NOTHING RETURNING 1"
    )
    _FORGET_UPDATES = "DELETE FROM handledupdate WHERE handled_at < $1"

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @property
    def pool(self) -> asyncpg.Pool:
        """The pool, which the other per-update reads share (bot/storage/rows.py)."""
        return self._pool

    @classmethod
    async def open(cls, engine: AsyncEngine, timeouts: Timeouts) -> PostgresConversations:
        import asyncpg  # only where the bot keeps conversations in PostgreSQL

        pool = await asyncpg.create_pool(
            # No floor to keep: after a database restart asyncpg would try to reconnect
            # the floor at once, and log a traceback per failed try.
            min_size=0,
            max_size=POSTGRES_CONNECTIONS,
            reset=_reset_if_in_transaction,
            **asyncpg_arguments(engine, timeouts),
        )
        return cls(pool)

    async def load(self, user_id: int, kind: str) -> dict[str, Any] | None:
        state = await self._pool.fetchval(self._LOAD, user_id, kind)
        return None if state is None else _decoded(state)

    async def save(self, user_id: int, kind: str, state: dict[str, Any], now: dt.datetime) -> None:
        await self._pool.execute(self._SAVE, user_id, kind, json.dumps(state), _aware(now))

    async def take(self, user_id: int, kind: str) -> dict[str, Any] | None:
        state = await self._pool.fetchval(self._TAKE, user_id, kind)
        return None if state is None else _decoded(state)

    async def forget_before(self, moment: dt.datetime) -> int:
        status = await self._pool.execute(self._FORGET, _aware(moment))  # "DELETE <count>"
        return int(status.rsplit(" ", 1)[-1])

    async def first_sight(self, update_id: int, now: dt.datetime) -> bool:
        return await self._pool.fetchval(self._SEEN, update_id, _aware(now)) is not None

    async def forget_updates_before(self, moment: dt.datetime) -> int:
        status = await self._pool.execute(self._FORGET_UPDATES, _aware(moment))
        return int(status.rsplit(" ", 1)[-1])

    async def close(self) -> None:
        await self._pool.close()


async def _reset_if_in_transaction(connection: asyncpg.Connection) -> None:
    if connection.is_in_transaction():  # never by these statements; safe all the same
        await connection.reset()


class SqliteConversations:
    """Conversations in a SQLite file of their own, on one aiosqlite connection.

    Each call is one statement in autocommit: one trip to aiosqlite's thread. Through
    SQLAlchemy the same statement takes four or five (cursor, execute, fetch, close,
    commit), and a registration step spent more CPU on them than on everything else
    it does (bench/e2e.py). Moments are kept as SQLAlchemy keeps them on SQLite.
    """

    _LOAD = "SELECT state FROM conversationstate WHERE telegram_user_id = ? AND kind = ?"
    _SAVE = (
        "INSERT INTO conversationstate (telegram_user_id, kind, state, updated_at)"
        " VALUES (?, ?, ?, ?) ON CONFLICT (telegram_user_id, kind)"
        " DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at"
    )
    _TAKE = "DELETE FROM conversationstate WHERE telegram_user_id = ? AND kind = ? RETURNING state"
    _FORGET = "DELETE FROM conversationstate WHERE updated_at < ? RETURNING 1"
    _SEEN = (
        "INSERT INTO handledupdate (update_id, handled_at) VALUES (?, ?)"
        " ON CONFLICT (update_id) DO NOTHING RETURNING 1"
    )
    _FORGET_UPDATES = "DELETE FROM handledupdate WHERE handled_at < ? RETURNING 1"

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._connection = connection

    @classmethod
    async def open(cls, path: Path | str, timeouts: Timeouts) -> SqliteConversations:
        import aiosqlite

        connection = await aiosqlite.connect(path, timeout=timeouts.busy, isolation_level=None)
        try:
            # The engine has set WAL already (bot/storage/database.py): asking again
            # needs the file's exclusive lock, which a second instance starting at the
            # same moment may hold ("database is locked").
            async with connection.execute("PRAGMA journal_mode") as mode:
                row = await mode.fetchone()
            if row is None or str(row[0]).lower() != "wal":
                await connection.execute("PRAGMA journal_mode=WAL")
            await connection.execute("PRAGMA synchronous=NORMAL")
            await connection.execute("PRAGMA secure_delete=ON")  # as bot/storage/database.py
            for table in (_TABLE, _HANDLED):
                await connection.executescript(_create_table_sql(table))
        except BaseException:
            await connection.close()
            raise
        return cls(connection)

    async def load(self, user_id: int, kind: str) -> dict[str, Any] | None:
        return _first_state(await self._connection.execute_fetchall(self._LOAD, (user_id, kind)))

    async def save(self, user_id: int, kind: str, state: dict[str, Any], now: dt.datetime) -> None:
        row = (user_id, kind, json.dumps(state), _sqlite_moment(now))
        await self._connection.execute_fetchall(self._SAVE, row)

    async def take(self, user_id: int, kind: str) -> dict[str, Any] | None:
        return _first_state(await self._connection.execute_fetchall(self._TAKE, (user_id, kind)))

    async def forget_before(self, moment: dt.datetime) -> int:
        gone = await self._connection.execute_fetchall(self._FORGET, (_sqlite_moment(moment),))
        return len(list(gone))

    async def first_sight(self, update_id: int, now: dt.datetime) -> bool:
        noted = await self._connection.execute_fetchall(
            self._SEEN, (update_id, _sqlite_moment(now))
        )
        return bool(list(noted))

    async def forget_updates_before(self, moment: dt.datetime) -> int:
        gone = await self._connection.execute_fetchall(
            self._FORGET_UPDATES, (_sqlite_moment(moment),)
        )
        return len(list(gone))

    async def close(self) -> None:
        await self._connection.close()


def _create_table_sql(table: Table) -> str:
    """A model's table and its indexes, as SQLAlchemy would create them on SQLite."""
    dialect = sqlite.dialect()
    statements = [str(CreateTable(table, if_not_exists=True).compile(dialect=dialect))]
    statements += [
        str(CreateIndex(index, if_not_exists=True).compile(dialect=dialect))
        for index in table.indexes
    ]
    return ";\n".join(statements)


def _sqlite_moment(moment: dt.datetime) -> str:
    """A moment as SQLAlchemy's DateTime keeps it on SQLite (UTC, to the microsecond), so
    both read each other's and text order is time order."""
    return _aware(moment).astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _aware(moment: dt.datetime) -> dt.datetime:
    """The moment, refused without a time zone: which one it meant is anyone's guess."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime given where an aware one is required")
    return moment


def _first_state(rows: Iterable[Any]) -> dict[str, Any] | None:
    for (state,) in rows:
        return _decoded(state)
    return None


def _decoded(state: str) -> dict[str, Any]:
    plain = json.loads(state)
    assert isinstance(plain, dict)
    return plain


# The conversations a user can be in: a registration (partners), a rejection waiting
# for its reason and a broadcast being written (staff).
REGISTRATION, REJECTION, BROADCAST = "registration", "rejection", "broadcast"
# A partner asked for proof of a won deal, or for why more time is needed.
PROOF, MORE_TIME = "proof", "more_time"
# A staff member's file waiting for Import, and a payouts file waiting to be marked paid.
IMPORT, PAYOUTS = "import", "payouts"


class DraftStore(Protocol):
    """Where drafts live between a user's messages, one per Telegram user."""

    async def load(self, user_id: int) -> Draft | None: ...

    async def save(self, user_id: int, draft: Draft) -> None: ...

    async def drop(self, user_id: int) -> None: ...


class Drafts:
    """Registrations in progress, kept in the conversations table."""

    def __init__(self, conversations: Conversations) -> None:
        self._conversations = conversations

    async def load(self, user_id: int) -> Draft | None:
        plain = await self._conversations.load(user_id, REGISTRATION)
        if plain is None:
            return None
        try:
            return Draft.from_plain(plain)
        except (KeyError, TypeError, ValueError):
            # Written by another version: start over rather than fail every message.
            await self.drop(user_id)
            return None

    async def save(self, user_id: int, draft: Draft) -> None:
        await self._conversations.save(user_id, REGISTRATION, draft.to_plain(), draft.touched_at)

    async def drop(self, user_id: int) -> None:
        await self._conversations.take(user_id, REGISTRATION)


class DraftsOfOneUpdate:
    """The drafts as one update sees them: each user's read from the database once,
    then kept in step with what the update itself saves or drops.

    An update looks at the draft more than once (a confirmation still to deliver,
    then the answer): one read instead of two is a round trip less on every message.
    Nothing outlives the update, so the next one reads the database again.
    """

    def __init__(self, store: DraftStore) -> None:
        self._store = store
        self._seen: dict[int, Draft | None] = {}

    async def load(self, user_id: int) -> Draft | None:
        if user_id not in self._seen:
            self._seen[user_id] = await self._store.load(user_id)
        draft = self._seen[user_id]
        # A copy: changing it without saving must not change what the next load says.
        return None if draft is None else dataclasses.replace(draft)

    async def save(self, user_id: int, draft: Draft) -> None:
        await self._store.save(user_id, draft)
        self._seen[user_id] = dataclasses.replace(draft)

    async def drop(self, user_id: int) -> None:
        await self._store.drop(user_id)
        self._seen[user_id] = None


def conversations_url(database_url: str) -> str:
    """Where conversations are kept: the database itself, except for a SQLite file.

    SQLite has one writer for the whole file: an import holding it for seconds would
    make every user's next answer wait. Conversations there go in a file of their own
    beside it (`pai.db` -> `pai-conversations.db`), so one user's write never waits on
    another's. PostgreSQL locks rows, so they stay in its one database.
    """
    path = sqlite_file(database_url)
    if path is None:
        return database_url
    return f"sqlite:///{path.with_name(f'{path.stem}-conversations{path.suffix}')}"


async def open_conversations(
    database_url: str, engine: AsyncEngine, timeouts: Timeouts
) -> Conversations:
    """The conversations store: in PostgreSQL's database, on a pool of its own; beside a
    SQLite database, in a file of their own."""
    if engine.dialect.name == "postgresql":
        return await PostgresConversations.open(engine, timeouts)
    url = conversations_url(database_url)
    prepare_sqlite_file(url, must_exist=False)
    return await SqliteConversations.open(sqlite_file(url) or ":memory:", timeouts)
