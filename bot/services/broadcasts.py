"""Broadcasts: who gets one, a delivery row each before the first send, and the report.

Every recipient's row is written before anything is sent, and marked `sending`
the moment its message is handed to Telegram: a crash or a restart resumes the
rows never handed over, and never sends one twice.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Select, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bot.domain.lifecycle import Status
from bot.domain.outbox import AFTER_SEND, BroadcastStatus, DeliveryStatus, Outcome, Result
from bot.events import BroadcastReady, emit
from bot.services.accounts import mark_unreachable
from bot.services.outbox import UNSYNCHRONISED, advance
from bot.storage.database import in_chunks
from models import Broadcast, BroadcastDelivery, Partner, Registration, Salesperson

# Sends a delivery gets before it is given up as failed.
MAX_ATTEMPTS = 5
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
    audience: Audience
    created_at: dt.datetime
    status: BroadcastStatus
    total: int
    delivered: int
    blocked: int
    failed: int
    waiting: int  # pending or retry
    unconfirmed: int  # handed to Telegram, no answer: never sent again


@dataclass(frozen=True)
class Recipient:
    """One delivery to send: `id` is the delivery's."""

    id: int
    telegram_user_id: int
    salesperson_id: int
    attempts: int


@dataclass(frozen=True)
class Failure:
    partner_code: str
    company: str
    telegram_user_id: int
    name: str | None
    status: DeliveryStatus
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
            col(Registration.status) == Status.QUALIFIED
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
    """Store the broadcast and one pending delivery per recipient; return (id, recipients).

    Nothing is sent before `release_broadcast` (or a restart: the leader resumes it)."""
    broadcast = Broadcast(
        created_by=staff_id,
        created_at=now,
        text_html=text_html,
        audience=audience.code,
        status=BroadcastStatus.SENDING,
    )
    session.add(broadcast)
    await session.flush()
    assert broadcast.id is not None
    people = (await session.execute(_recipients_of(audience, today))).scalars().all()
    session.add_all(
        BroadcastDelivery(
            broadcast_id=broadcast.id, salesperson_id=person, status=DeliveryStatus.PENDING
        )
        for person in people
    )
    await session.commit()
    return broadcast.id, len(people)


async def release_broadcast(
    *, session: AsyncSession, broadcast_id: int, progress: tuple[int, int] | None
) -> None:
    """Let the broadcast go out, with the message (chat, message id) that shows staff its
    progress, when that one arrived: the sender edits it as it goes."""
    if progress is not None:
        chat_id, message_id = progress
        await session.execute(
            update(Broadcast)
            .where(col(Broadcast.id) == broadcast_id)
            .values(progress_chat_id=chat_id, progress_message_id=message_id)
        )
    emit(session, BroadcastReady(broadcast_id))
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
            (col(BroadcastDelivery.status) == DeliveryStatus.PENDING)
            | (
                (col(BroadcastDelivery.status) == DeliveryStatus.RETRY)
                & (col(BroadcastDelivery.next_attempt_at) <= now)
            ),
        )
        .order_by(col(BroadcastDelivery.id))
        .limit(limit)
    )
    return [Recipient(cast(int, d), int(t), cast(int, p), int(a)) for d, t, p, a in rows.all()]


async def advance_deliveries(
    *,
    session: AsyncSession,
    done: Sequence[Result],
    take: Sequence[int],
    give_back: Sequence[int] = (),
    now: dt.datetime,
) -> set[int]:
    """In one transaction: record how the sends in `done` went, make `give_back` (handed
    over, never sent: a stop came first) pending again, and hand over those of `take`
    nobody holds. Returns the ones handed over: each goes to Telegram once at most."""
    waiting = col(BroadcastDelivery.status).in_((DeliveryStatus.PENDING, DeliveryStatus.RETRY))
    if take:
        await session.execute(  # tried as often as allowed: never again
            update(BroadcastDelivery)
            .where(
                col(BroadcastDelivery.id).in_(list(take)),
                waiting,
                col(BroadcastDelivery.attempts) >= MAX_ATTEMPTS,
            )
            .values(status=DeliveryStatus.FAILED, error="no more attempts"),
            execution_options=UNSYNCHRONISED,
        )
    attempts = col(BroadcastDelivery.attempts)
    return await advance(
        session,
        table=BroadcastDelivery,
        sending=DeliveryStatus.SENDING,
        done=done,
        record=_record_deliveries,
        give_back=give_back,
        given_back={"status": DeliveryStatus.PENDING, "attempts": attempts - 1},
        take=take,
        free=(waiting, attempts < MAX_ATTEMPTS),
        handed_over={"status": DeliveryStatus.SENDING, "attempts": attempts + 1},
        now=now,
    )


async def _record_deliveries(
    session: AsyncSession, done: Sequence[Result], now: dt.datetime
) -> None:
    """How each send went. A retry is due at once (the sender paces its own tries) unless
    it was the last attempt allowed; a blocked bot marks its person unreachable.

    One statement for the sends that went the same way, not one a send: a paid
    broadcast records a thousand a second, and building a statement costs more CPU than
    running it."""
    alike: dict[tuple[Outcome, str | None], list[int]] = defaultdict(list)
    for result in done:
        alike[(result.outcome, result.reason)].append(result.id)
    for (outcome, reason), ids in alike.items():
        values: dict[str, object] = {"status": AFTER_SEND[outcome].delivery, "error": reason}
        if outcome == Outcome.SENT:
            values["sent_at"] = now
        for chunk in in_chunks(ids):
            statement = update(BroadcastDelivery).where(col(BroadcastDelivery.id).in_(chunk))
            if outcome == Outcome.RETRY:
                await session.execute(
                    statement.where(col(BroadcastDelivery.attempts) >= MAX_ATTEMPTS).values(
                        status=DeliveryStatus.FAILED, error="no more attempts"
                    ),
                    execution_options=UNSYNCHRONISED,
                )
                statement = statement.where(col(BroadcastDelivery.attempts) < MAX_ATTEMPTS)
                values["next_attempt_at"] = now
            await session.execute(statement.values(**values), execution_options=UNSYNCHRONISED)
    await mark_unreachable(
        session=session,
        people=[r.salesperson_id for r in done if r.outcome == Outcome.BLOCKED],
        now=now,
    )


async def finish_broadcast(*, session: AsyncSession, broadcast_id: int, now: dt.datetime) -> bool:
    """Mark it done; False when it already was (only one sender reports it)."""
    done = await session.execute(
        update(Broadcast)
        .where(col(Broadcast.id) == broadcast_id, col(Broadcast.status) == BroadcastStatus.SENDING)
        .values(status=BroadcastStatus.DONE, finished_at=now)
        .returning(col(Broadcast.id))
    )
    await session.commit()
    return done.scalar_one_or_none() is not None


async def unfinished_broadcasts(*, session: AsyncSession) -> list[int]:
    rows = await session.execute(
        select(col(Broadcast.id))
        .where(col(Broadcast.status) == BroadcastStatus.SENDING)
        .order_by(col(Broadcast.id))
    )
    return [cast(int, i) for i in rows.scalars()]


@dataclass(frozen=True)
class BroadcastView:
    """A broadcast as its sender needs it: what to send, who asked, where progress shows."""

    id: int
    text_html: str
    audience: Audience
    created_by: int
    created_at: dt.datetime
    status: BroadcastStatus
    progress_chat_id: int | None
    progress_message_id: int | None


async def get_broadcast(*, session: AsyncSession, broadcast_id: int) -> BroadcastView:
    broadcast = await session.get(Broadcast, broadcast_id, populate_existing=True)
    assert broadcast is not None
    assert broadcast.id is not None
    return BroadcastView(
        id=broadcast.id,
        text_html=broadcast.text_html,
        audience=Audience(broadcast.audience),
        created_by=broadcast.created_by,
        created_at=broadcast.created_at,
        status=BroadcastStatus(broadcast.status),
        progress_chat_id=broadcast.progress_chat_id,
        progress_message_id=broadcast.progress_message_id,
    )


async def report_of(*, session: AsyncSession, broadcast_id: int) -> Report:
    broadcast = await get_broadcast(session=session, broadcast_id=broadcast_id)
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
        delivered=int(counts.get(DeliveryStatus.DELIVERED, 0)),
        blocked=int(counts.get(DeliveryStatus.BLOCKED, 0)),
        failed=int(counts.get(DeliveryStatus.FAILED, 0)),
        waiting=int(counts.get(DeliveryStatus.PENDING, 0))
        + int(counts.get(DeliveryStatus.RETRY, 0)),
        unconfirmed=int(counts.get(DeliveryStatus.SENDING, 0)),
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
            col(BroadcastDelivery.status).in_(
                (DeliveryStatus.BLOCKED, DeliveryStatus.FAILED, DeliveryStatus.SENDING)
            ),
        )
        .order_by(col(Partner.code))
    )
    return [
        Failure(str(c), str(n), int(t), d, DeliveryStatus(s), e) for c, n, t, d, s, e in rows.all()
    ]
