"""Telegram's overall limit for the bot, shared by every instance through PostgreSQL.

Telegram counts messages per bot, not per process: two instances pacing themselves
at 30 a second each would send 60. Each message first reserves the next free slot in
one row (a token bucket holding at most one token, that may go into debt): one
statement, no retry loop, the row lock putting concurrent instances in line, and the
database server's clock for everyone, so the instances' clocks need not agree.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

log = logging.getLogger(__name__)
BUDGET = "telegram"
# Slots this much under the limit: a slot is reserved in the database, then waited for
# in the process, and sends from several processes sharing a machine's cores arrive up
# to ~100 ms off their slots; at 0.95 (50 ms of slack) CI still saw 2 × 429 in one
# second. At 0.90 a send may be 110 ms late before 31 fit in one of Telegram's seconds.
SHARED_MARGIN = 0.90
# Seconds a reservation may take before the message goes on its own process's pace.
RESERVE_TIMEOUT = 0.5

_RESERVE = text(
    """
    INSERT INTO sendbudget AS b (name, tokens, refilled_at)
    VALUES (:name, 0, EXTRACT(EPOCH FROM clock_timestamp()))
    ON CONFLICT (name) DO UPDATE SET
        tokens = LEAST(
            1.0,
            b.tokens + GREATEST(0, EXTRACT(EPOCH FROM clock_timestamp()) - b.refilled_at)
                * CAST(:rate AS double precision)
        ) - 1,
        refilled_at = GREATEST(b.refilled_at, EXTRACT(EPOCH FROM clock_timestamp()))
    RETURNING tokens
    """
)


class SharedBudget:
    """Slots for all instances together, just under `per_second`; `take` waits for
    this one's."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], per_second: float) -> None:
        self._sessions = sessions
        self._rate = per_second * SHARED_MARGIN
        self._failing = False

    async def take(self) -> None:
        try:
            # A slow database must not hold every answer back: past this, pace alone.
            async with asyncio.timeout(RESERVE_TIMEOUT), self._sessions() as session:
                tokens = (
                    await session.execute(_RESERVE, {"name": BUDGET, "rate": self._rate})
                ).scalar_one()
                await session.commit()
        except Exception as exc:
            # The database away: each instance keeps its own pace meanwhile, rather than
            # holding every answer back.
            if not self._failing:
                log.warning("the shared send budget is unavailable: %s", type(exc).__name__)
            self._failing = True
            return
        self._failing = False
        if tokens < 0:
            await asyncio.sleep(-float(tokens) / self._rate)
