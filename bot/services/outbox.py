"""The rows of messages the bot starts itself (broadcast deliveries, reminders) move the
same way whatever their table: the sends just made are recorded, the rows handed over
but never sent are given back, the next ones are handed over, in one transaction."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import ColumnElement, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bot.domain.outbox import Result

# For the UPDATEs here, run in short sessions that hold none of the rows: the ORM need
# not look for objects to bring up to date (a third of a paid broadcast's CPU went on it).
UNSYNCHRONISED = {"synchronize_session": False}

# How a table records the sends just made (the caller's transaction commits it).
Record = Callable[[AsyncSession, Sequence[Result], dt.datetime], Awaitable[None]]


async def advance(
    session: AsyncSession,
    *,
    table: Any,
    sending: str,
    done: Sequence[Result],
    record: Record,
    give_back: Sequence[int],
    given_back: Mapping[str, Any],
    take: Sequence[int],
    free: Sequence[ColumnElement[bool]],
    handed_over: Mapping[str, Any],
    now: dt.datetime,
) -> set[int]:
    """Record `done`; set `given_back` on the rows of `give_back` still `sending`; set
    `handed_over` on the rows of `take` that are `free`, and return those. One commit."""
    await record(session, done, now)
    ids = col(table.id)
    if give_back:
        await session.execute(
            update(table)
            .where(ids.in_(list(give_back)), col(table.status) == sending)
            .values(**given_back),
            execution_options=UNSYNCHRONISED,
        )
    held: set[int] = set()
    if take:
        marked = await session.execute(
            update(table).where(ids.in_(list(take)), *free).values(**handed_over).returning(ids),
            execution_options=UNSYNCHRONISED,
        )
        held = {cast(int, i) for i in marked.scalars()}
    await session.commit()
    return held
