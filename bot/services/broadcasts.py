"""Broadcasts: who gets one, a delivery row each before the first send, and the report.

Every recipient's row is written before anything is sent, and marked `sending`
the moment its message is handed to Telegram: a crash or a restart resumes the
rows never handed over, and never sends one twice.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Select, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bot.domain.lifecycle import Status
from models import Broadcast, BroadcastDelivery, Partner, Registration, Salesperson

PENDING, SENDING, DELIVERED = "pending", "sending", "delivered"
BLOCKED, RETRY, FAILED = "blocked", "retry", "failed"
# Audiences staff pick from: everyone, one level, the inactive, those with open deals.
ALL, OPEN = "all", "open"


@dataclass(frozen=True)
class Audience:
    """Who a broadcast goes to, as a short code: all, level:gold, inactive:30, open."""

    code: str

    @property
    def kind(self) -> str:
        return self.code.split(":", 1)[0]

    @property
    def value(self) -> str:
        return self.code.split(":", 1)[1] if ":" in self.code else ""


@dataclass(frozen=True)
class Report:
    broadcast_id: int
    audience: str
    created_at: dt.datetime
    status: str
    total: int
    delivered: int
    blocked: int
    failed: int
    waiting: int  # pending or retry
    unconfirmed: int  # handed to Telegram, no answer: never sent again


@dataclass(frozen=True)
class Recipient:
    delivery_id: int
    telegram_user_id: int
    salesperson_id: int
    attempts: int


@dataclass(frozen=True)
class Failure:
    partner_code: str
    company: str
    telegram_user_id: int
    name: str | None
    status: str
    error: str | None


def _recipients_of(audience: Audience, today: dt.date) -> Select[Any]:
    """The salespeople an audience means: linked, reachable, and the audience's partners."""
    statement = (
        select(col(Salesperson.id))
        .join(Partner, col(Partner.id) == col(Salesperson.partner_id))
        .where(col(Salesperson.unlinked_at).is_(None), col(Salesperson.unreachable_at).is_(None))
    )
    if audience.kind == "level":
        statement = statement.where(col(Partner.level) == audience.value)
    elif audience.kind == "inactive":
        since = today - dt.timedelta(days=int(audience.value))
        recent = select(col(Registration.partner_id)).where(col(Registration.registered_on) > since)
        statement = statement.where(col(Salesperson.partner_id).not_in(recent))
    elif audience.kind == OPEN:
        open_ones = select(col(Registration.partner_id)).where(
            col(Registration.status) == Status.QUALIFIED.value
        )
        statement = statement.where(col(Salesperson.partner_id).in_(open_ones))
    return statement.order_by(col(Salesperson.id))


async def count_audience(*, session: AsyncSession, audience: Audience, today: dt.date) -> int:
    statement = _recipients_of(audience, today)
    return len((await session.execute(statement)).all())


async def create_broadcast(
    *,
    session: AsyncSession,
    staff_id: int,
    text_html: str,
    audience: Audience,
    today: dt.date,
    now: dt.datetime,
) -> tuple[int, int]:
    """Store the broadcast and one pending delivery per recipient; return (id, recipients)."""
    broadcast = Broadcast(
        created_by=staff_id,
        created_at=now,
        text_html=text_html,
        audience=audience.code,
        status=SENDING,
    )
    session.add(broadcast)
    await session.flush()
    assert broadcast.id is not None
    people = (await session.execute(_recipients_of(audience, today))).scalars().all()
    session.add_all(
        BroadcastDelivery(broadcast_id=broadcast.id, salesperson_id=person, status=PENDING)
        for person in people
    )
    await session.commit()
    return broadcast.id, len(people)


async def set_progress_message(
    *, session: AsyncSession, broadcast_id: int, chat_id: int, message_id: int
) -> None:
    await session.execute(
        update(Broadcast)
        .where(col(Broadcast.id) == broadcast_id)
        .values(progress_chat_id=chat_id, progress_message_id=message_id)
    )
    await session.commit()


async def next_recipients(
    *, session: AsyncSession, broadcast_id: int, now: dt.datetime, limit: int
) -> list[Recipient]:
    """Deliveries to send now: pending ones, and retries whose wait is over."""
    rows = await session.execute(
        select(
            col(BroadcastDelivery.id),
            col(Salesperson.telegram_user_id),
            col(Salesperson.id),
            col(BroadcastDelivery.attempts),
        )
        .join(Salesperson, col(Salesperson.id) == col(BroadcastDelivery.salesperson_id))
        .where(
            col(BroadcastDelivery.broadcast_id) == broadcast_id,
            (col(BroadcastDelivery.status) == PENDING)
            | (
                (col(BroadcastDelivery.status) == RETRY)
                & (col(BroadcastDelivery.next_attempt_at) <= now)
            ),
        )
        .order_by(col(BroadcastDelivery.id))
        .limit(limit)
    )
    return [Recipient(cast(int, d), int(t), cast(int, p), int(a)) for d, t, p, a in rows.all()]


async def hand_over(*, session: AsyncSession, delivery_id: int) -> bool:
    """Mark a delivery as handed to Telegram, if nobody did; True when this call did."""
    marked = await session.execute(
        update(BroadcastDelivery)
        .where(
            col(BroadcastDelivery.id) == delivery_id,
            col(BroadcastDelivery.status).in_((PENDING, RETRY)),
        )
        .values(status=SENDING, attempts=col(BroadcastDelivery.attempts) + 1)
        .returning(col(BroadcastDelivery.id))
    )
    claimed = marked.first() is not None
    await session.commit()
    return claimed


async def hand_back(*, session: AsyncSession, delivery_id: int) -> None:
    """A delivery handed over but never sent (a stop came before its turn): pending again."""
    await session.execute(
        update(BroadcastDelivery)
        .where(col(BroadcastDelivery.id) == delivery_id, col(BroadcastDelivery.status) == SENDING)
        .values(status=PENDING, attempts=col(BroadcastDelivery.attempts) - 1)
    )
    await session.commit()


async def record_delivery(
    *,
    session: AsyncSession,
    delivery_id: int,
    status: str,
    now: dt.datetime,
    error: str | None = None,
    retry_at: dt.datetime | None = None,
    salesperson_id: int | None = None,
    commit: bool = True,
) -> None:
    """How one send went. Blocked: its person is unreachable for reminders and broadcasts."""
    values: dict[str, object] = {"status": status, "error": error}
    if status == DELIVERED:
        values["sent_at"] = now
    if status == RETRY:
        values["next_attempt_at"] = retry_at
    await session.execute(
        update(BroadcastDelivery).where(col(BroadcastDelivery.id) == delivery_id).values(**values)
    )
    if status == BLOCKED and salesperson_id is not None:
        await session.execute(
            update(Salesperson)
            .where(col(Salesperson.id) == salesperson_id)
            .values(unreachable_at=now)
        )
    if commit:
        await session.commit()


async def finish_broadcast(*, session: AsyncSession, broadcast_id: int, now: dt.datetime) -> bool:
    """Mark it done; False when it already was (only one sender reports it)."""
    done = await session.execute(
        update(Broadcast)
        .where(col(Broadcast.id) == broadcast_id, col(Broadcast.status) == SENDING)
        .values(status="done", finished_at=now)
        .returning(col(Broadcast.id))
    )
    await session.commit()
    return done.scalar_one_or_none() is not None


async def unfinished_broadcasts(*, session: AsyncSession) -> list[int]:
    rows = await session.execute(
        select(col(Broadcast.id))
        .where(col(Broadcast.status) == SENDING)
        .order_by(col(Broadcast.id))
    )
    return [cast(int, i) for i in rows.scalars()]


async def broadcast_text(*, session: AsyncSession, broadcast_id: int) -> Broadcast:
    broadcast = await session.get(Broadcast, broadcast_id)
    assert broadcast is not None
    return broadcast


async def report_of(*, session: AsyncSession, broadcast_id: int) -> Report:
    broadcast = await broadcast_text(session=session, broadcast_id=broadcast_id)
    counts = dict(
        (
            await session.execute(
                select(col(BroadcastDelivery.status), func.count())
                .where(col(BroadcastDelivery.broadcast_id) == broadcast_id)
                .group_by(col(BroadcastDelivery.status))
            )
        ).all()
    )
    return Report(
        broadcast_id=broadcast_id,
        audience=broadcast.audience,
        created_at=broadcast.created_at,
        status=broadcast.status,
        total=int(sum(counts.values())),
        delivered=int(counts.get(DELIVERED, 0)),
        blocked=int(counts.get(BLOCKED, 0)),
        failed=int(counts.get(FAILED, 0)),
        waiting=int(counts.get(PENDING, 0)) + int(counts.get(RETRY, 0)),
        unconfirmed=int(counts.get(SENDING, 0)),
    )


async def recent_reports(*, session: AsyncSession, limit: int = 10) -> list[Report]:
    ids = (
        await session.execute(
            select(col(Broadcast.id)).order_by(col(Broadcast.id).desc()).limit(limit)
        )
    ).scalars()
    return [await report_of(session=session, broadcast_id=cast(int, i)) for i in ids]


async def failures_of(*, session: AsyncSession, broadcast_id: int) -> list[Failure]:
    """The recipients it did not reach (or may not have), for the CSV staff download."""
    rows = await session.execute(
        select(
            col(Partner.code),
            col(Partner.company),
            col(Salesperson.telegram_user_id),
            col(Salesperson.display_name),
            col(BroadcastDelivery.status),
            col(BroadcastDelivery.error),
        )
        .join(Salesperson, col(Salesperson.id) == col(BroadcastDelivery.salesperson_id))
        .join(Partner, col(Partner.id) == col(Salesperson.partner_id))
        .where(
            col(BroadcastDelivery.broadcast_id) == broadcast_id,
            # Handed over without an answer: maybe delivered, never sent again; listed so
            # that staff can check with the person.
            col(BroadcastDelivery.status).in_((BLOCKED, FAILED, SENDING)),
        )
        .order_by(col(Partner.code))
    )
    return [Failure(str(c), str(n), int(t), d, str(s), e) for c, n, t, d, s, e in rows.all()]
