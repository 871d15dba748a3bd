"""Each user's updates one at a time across instances sharing a PostgreSQL database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text

from bot.storage.database import Timeouts, make_engine


class UserLocks:
    """Each user's updates one at a time among instances sharing a PostgreSQL database:
    a transaction-scoped advisory lock per user, on connections of their own (so a
    handler's own queries never wait for a connection a lock holds).

    Keys are negative (-1 - user id), apart from SCHEMA_LOCK's. PostgreSQL's
    lock_timeout bounds the wait, as for any lock.
    """

    def __init__(self, database_url: str, timeouts: Timeouts | None = None) -> None:
        self._engine = make_engine(database_url, timeouts)

    @asynccontextmanager
    async def turn(self, user_id: int) -> AsyncIterator[None]:
        async with self._engine.begin() as connection:
            await connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": -1 - user_id}
            )
            yield

    async def close(self) -> None:
        await self._engine.dispose()
