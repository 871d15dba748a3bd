"""Staff items (PRODUCT.md §5): each won deal, dispute and request for more time staff
are to decide, with its deadline; opened once, closed once."""

from __future__ import annotations

import datetime as dt
import statistics
from dataclasses import dataclass

from sqlalchemy import Select, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bot.domain.actors import Actor
from bot.domain.errors import AlreadyDecided, RegistrationNotFound
from bot.domain.items import ItemKind, ItemOutcome
from bot.domain.rules import Rules
from bot.services.history import actors
from bot.services.views import RegistrationView
from bot.storage.database import dialect_insert
from models import (
    Attachment,
    Customer,
    Dispute,
    Partner,
    Registration,
    Salesperson,
    StaffDigest,
    StaffItem,
    StaffNotice,
)


async def open_item(
    session: AsyncSession,
    *,
    rules: Rules,
    registration_id: int,
    kind: ItemKind,
    now: dt.datetime,
    note: str | None = None,
) -> StaffItem:
    """Put an item before staff, due `approval_hours` from now. The caller commits."""
    item = StaffItem(
        registration_id=registration_id,
        kind=kind.value,
        arrived_at=now,
        due_at=now + rules.conflicts.approval,
        note=note,
    )
    session.add(item)
    await session.flush()
    return item


async def close_item(
    session: AsyncSession,
    *,
    item_id: int,
    outcome: ItemOutcome,
    by: str,
    now: dt.datetime,
    reason: str | None = None,
) -> None:
    """Close the item once: a second decision, a moment later, gets AlreadyDecided."""
    closed = await session.execute(
        update(StaffItem)
        .where(col(StaffItem.id) == item_id, col(StaffItem.decided_at).is_(None))
        .values(decided_at=now, decided_by=by, outcome=outcome.value, reason=reason)
        .returning(col(StaffItem.id))
    )
    if closed.first() is None:
        raise await decided_already(session, item_id)


async def close_open_items(
    session: AsyncSession, *, registration_id: int, by: str, now: dt.datetime, note: str
) -> None:
    """Nothing is left to decide on a registration that moved on (revoked)."""
    await session.execute(
        update(StaffItem)
        .where(
            col(StaffItem.registration_id) == registration_id, col(StaffItem.decided_at).is_(None)
        )
        .values(decided_at=now, decided_by=by, outcome=ItemOutcome.CLOSED.value, reason=note)
    )


async def decided_already(session: AsyncSession, item_id: int) -> AlreadyDecided:
    item = await session.get(StaffItem, item_id)
    if item is None or item.outcome is None:
        raise RegistrationNotFound()
    code = item.decided_by or ""
    by = (await actors(session=session, recorded=[code]))[code]
    return AlreadyDecided(status=item.outcome, by=by, reason=item.reason)


@dataclass(frozen=True)
class FileView:
    kind: str  # photo, document
    file_id: str
    file_name: str | None
    purpose: str  # evidence, proof


@dataclass(frozen=True)
class OtherSide:
    """What stood against a contested refusal: a protection, or a purchase."""

    vendor_name: str | None
    # The protection contested: its partner, reference, dates.
    holder_code: str | None = None
    holder_company: str | None = None
    holder_reference: str | None = None
    holder_registered_on: dt.date | None = None
    holder_until: dt.date | None = None
    holder_updated_at: dt.datetime | None = None
    holder_status: str | None = None
    # Or the purchase that made the customer not new.
    last_purchase: dt.date | None = None


@dataclass(frozen=True)
class ItemView:
    """An item as staff see it: the registration, its partner and salesperson, the
    files sent, the other side of a dispute, and how it was decided if it was."""

    id: int
    kind: ItemKind
    registration: RegistrationView
    partner_code: str
    company: str
    salesperson: str | None
    arrived_at: dt.datetime
    due_at: dt.datetime
    note: str | None
    files: tuple[FileView, ...]
    dispute_reason: str | None = None
    other_side: OtherSide | None = None
    outcome: ItemOutcome | None = None
    decided_by: Actor | None = None
    reason: str | None = None


def _item_rows() -> Select[StaffItem, Registration, str, str]:
    return (
        select(StaffItem, Registration, col(Partner.code), col(Partner.company))
        .join(Registration, col(Registration.id) == col(StaffItem.registration_id))
        .join(Partner, col(Partner.id) == col(Registration.partner_id))
    )


async def item_view(*, session: AsyncSession, item_id: int) -> ItemView:
    row = (await session.execute(_item_rows().where(col(StaffItem.id) == item_id))).first()
    if row is None:
        raise RegistrationNotFound()
    return (await _views(session, [tuple(row)]))[0]


async def open_items(
    *, session: AsyncSession, kinds: tuple[ItemKind, ...] = tuple(ItemKind)
) -> list[ItemView]:
    """Items waiting for staff, the most overdue first (due first: all share one delay)."""
    rows = (
        await session.execute(
            _item_rows()
            .where(
                col(StaffItem.decided_at).is_(None),
                col(StaffItem.kind).in_([k.value for k in kinds]),
            )
            .order_by(col(StaffItem.due_at), col(StaffItem.id))
        )
    ).all()
    return await _views(session, [tuple(row) for row in rows])


async def open_item_of(
    *, session: AsyncSession, registration_id: int, kind: ItemKind
) -> StaffItem | None:
    return (
        (
            await session.execute(
                select(StaffItem).where(
                    col(StaffItem.registration_id) == registration_id,
                    col(StaffItem.kind) == kind.value,
                    col(StaffItem.decided_at).is_(None),
                )
            )
        )
        .scalars()
        .first()
    )


async def items_of(*, session: AsyncSession, registration_ids: list[int]) -> list[ItemView]:
    """Every item about these registrations, decided or not, oldest first (for /find)."""
    if not registration_ids:
        return []
    rows = (
        await session.execute(
            _item_rows()
            .where(col(StaffItem.registration_id).in_(registration_ids))
            .order_by(col(StaffItem.id))
        )
    ).all()
    return await _views(session, [tuple(row) for row in rows])


async def _views(session: AsyncSession, rows: list[tuple[object, ...]]) -> list[ItemView]:
    views = []
    for item, registration, code, company in rows:
        assert isinstance(item, StaffItem)
        assert isinstance(registration, Registration)
        assert item.id is not None
        assert registration.id is not None
        views.append(await _view(session, item, registration, str(code), str(company)))
    return views


async def _view(
    session: AsyncSession, item: StaffItem, registration: Registration, code: str, company: str
) -> ItemView:
    assert item.id is not None
    assert registration.id is not None
    seller = None
    if registration.salesperson_id is not None:
        seller = (
            await session.execute(
                select(col(Salesperson.display_name)).where(
                    col(Salesperson.id) == registration.salesperson_id
                )
            )
        ).scalar_one_or_none()
    files = tuple(
        FileView(a.kind, a.file_id, a.file_name, a.purpose)
        for a in (
            await session.execute(
                select(Attachment)
                .where(col(Attachment.registration_id) == registration.id)
                .order_by(col(Attachment.id))
            )
        ).scalars()
    )
    reason = other = None
    if item.kind == ItemKind.DISPUTE:
        reason, other = await _dispute_sides(session, registration)
    decided_by = None
    if item.decided_by is not None:
        decided_by = (await actors(session=session, recorded=[item.decided_by]))[item.decided_by]
    return ItemView(
        id=item.id,
        kind=ItemKind(item.kind),
        registration=RegistrationView.of(registration),
        partner_code=code,
        company=company,
        salesperson=seller,
        arrived_at=item.arrived_at,
        due_at=item.due_at,
        note=item.note,
        files=files,
        dispute_reason=reason,
        other_side=other,
        outcome=ItemOutcome(item.outcome) if item.outcome else None,
        decided_by=decided_by,
        reason=item.reason,
    )


async def _dispute_sides(
    session: AsyncSession, registration: Registration
) -> tuple[str | None, OtherSide | None]:
    dispute = await session.get(Dispute, registration.id)
    vendor_name = (
        await session.execute(
            select(col(Customer.name)).where(col(Customer.vat) == registration.vat)
        )
    ).scalar_one_or_none()
    if dispute is None:
        return None, OtherSide(vendor_name)
    if dispute.against_registration_id is None:
        return dispute.reason, OtherSide(vendor_name, last_purchase=dispute.last_purchase)
    row = (
        await session.execute(
            select(Registration, col(Partner.code), col(Partner.company))
            .join(Partner, col(Partner.id) == col(Registration.partner_id))
            .where(col(Registration.id) == dispute.against_registration_id)
        )
    ).one()
    holder, code, company = row
    return dispute.reason, OtherSide(
        vendor_name,
        holder_code=code,
        holder_company=company,
        holder_reference=holder.reference,
        holder_registered_on=holder.registered_on,
        holder_until=holder.protected_until,
        holder_updated_at=holder.updated_at,
        holder_status=holder.status,
    )


async def keep_item_notice(
    *, session: AsyncSession, item_id: int, registration_id: int, chat_id: int, message_id: int
) -> None:
    session.add(
        StaffNotice(
            registration_id=registration_id,
            item_id=item_id,
            chat_id=chat_id,
            message_id=message_id,
        )
    )
    await session.commit()


async def item_notices(*, session: AsyncSession, item_id: int) -> list[tuple[int, int]]:
    rows = await session.execute(
        select(col(StaffNotice.chat_id), col(StaffNotice.message_id)).where(
            col(StaffNotice.item_id) == item_id
        )
    )
    return [(int(chat), int(message)) for chat, message in rows.all()]


async def overdue_items(*, session: AsyncSession, now: dt.datetime) -> list[ItemView]:
    """Items past their deadline and still waiting, the latest first."""
    rows = (
        await session.execute(
            _item_rows()
            .where(col(StaffItem.decided_at).is_(None), col(StaffItem.due_at) < now)
            .order_by(col(StaffItem.due_at), col(StaffItem.id))
        )
    ).all()
    return await _views(session, [tuple(row) for row in rows])


async def claim_digests(*, session: AsyncSession, day: dt.date, chat_ids: list[int]) -> list[int]:
    """Who gets today's digest now: each person once a day, whatever ticks or instances
    run (the row is written before the send, under its primary key)."""
    if not chat_ids:
        return []
    claimed = await session.execute(
        dialect_insert(session, StaffDigest)
        .values([{"day": day, "chat_id": chat, "status": "sending"} for chat in chat_ids])
        .on_conflict_do_nothing(index_elements=["day", "chat_id"])
        .returning(col(StaffDigest.chat_id))
    )
    chats = sorted(int(chat) for chat in claimed.scalars())
    await session.commit()
    return chats


async def mark_digest(
    *, session: AsyncSession, day: dt.date, chat_id: int, sent: bool, now: dt.datetime
) -> None:
    await session.execute(
        update(StaffDigest)
        .where(col(StaffDigest.day) == day, col(StaffDigest.chat_id) == chat_id)
        .values(status="sent" if sent else "failed", sent_at=now if sent else None)
    )
    await session.commit()


async def decision_times(
    *, session: AsyncSession, now: dt.datetime, days: int = 90
) -> tuple[dt.timedelta | None, int]:
    """The median time from arrival to decision over the last `days`, and how many items
    are overdue now."""
    since = now - dt.timedelta(days=days)
    decided = await session.execute(
        select(col(StaffItem.arrived_at), col(StaffItem.decided_at)).where(
            col(StaffItem.decided_at) >= since, col(StaffItem.outcome) != ItemOutcome.CLOSED.value
        )
    )
    spans = [(end - start).total_seconds() for start, end in decided.all() if end is not None]
    overdue = (
        await session.execute(
            select(func.count())
            .select_from(StaffItem)
            .where(col(StaffItem.decided_at).is_(None), col(StaffItem.due_at) < now)
        )
    ).scalar_one()
    median = dt.timedelta(seconds=statistics.median(spans)) if spans else None
    return median, int(overdue)
