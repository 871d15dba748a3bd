"""Leases: work one instance may do at a time, held for a while and renewed by its holder."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, or_, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bot.storage.database import dialect_insert
from models import Lease


async def hold_lease(
    *,
    session: AsyncSession,
    name: str,
    holder: str,
    now: dt.datetime,
    ttl: dt.timedelta,
    replacing: str | None = None,
) -> bool:
    """Take the lease, or renew it when `holder` has it: True when it is theirs until
    `now + ttl`. One statement each way, so two instances can never both take it.

    `replacing` names a holder known to be dead: its lease is taken before it ends.
    """
    until = now + ttl
    free = [col(Lease.holder) == holder, col(Lease.expires_at) < now]
    if replacing is not None:
        free.append(col(Lease.holder) == replacing)
    renewed = await session.execute(
        update(Lease)
        .where(col(Lease.name) == name, or_(*free))
        .values(holder=holder, expires_at=until)
        .returning(col(Lease.name))
    )
    held = renewed.scalar_one_or_none() is not None
    if not held:
        created = await session.execute(
            dialect_insert(session, Lease)
            .values(name=name, holder=holder, expires_at=until)
            .on_conflict_do_nothing(index_elements=["name"])
            .returning(col(Lease.name))
        )
        held = created.scalar_one_or_none() is not None
    await session.commit()
    return held


async def give_up_lease(*, session: AsyncSession, name: str, holder: str) -> None:
    """Hand the lease back at a clean stop, so another instance takes it at once."""
    await session.execute(delete(Lease).where(col(Lease.name) == name, col(Lease.holder) == holder))
    await session.commit()


async def lease_holder(*, session: AsyncSession, name: str, now: dt.datetime) -> str | None:
    lease = await session.get(Lease, name)
    if lease is None or lease.expires_at < now:
        return None
    return lease.holder
