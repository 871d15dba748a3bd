"""What programme staff do: decide on won deals, look a customer up."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bot.domain.actors import Actor
from bot.domain.errors import AlreadyDecided, RegistrationNotFound, TransitionNotAllowed
from bot.domain.items import ItemKind, ItemOutcome, outcome_of
from bot.domain.lifecycle import Status
from bot.domain.rules import Rules
from bot.events import DealDecided, emit
from bot.services.accounts import Visitor, visit_values
from bot.services.eligibility import StaffVerdict, staff_verdict
from bot.services.history import HistoryEntry, actors, change_status, histories_of, staff_actor
from bot.services.items import ItemView, close_item, items_of, open_item_of
from bot.services.vies import ViesAnswer, vies_of
from bot.services.views import RegistrationView
from bot.storage.database import dialect_insert
from models import (
    Partner,
    Registration,
    Salesperson,
    StaffItem,
    StaffMember,
    StaffNotice,
    StatusChange,
)


@dataclass(frozen=True)
class StaffPerson:
    """A staff member as Telegram last showed them (None: never seen by the bot)."""

    telegram_user_id: int
    name: str | None
    telegram_language: str | None


async def note_staff_visit(*, session: AsyncSession, visitor: Visitor, now: dt.datetime) -> None:
    """Keep what Telegram shows of a staff member: one statement, whoever comes first."""
    fresh = visit_values(visitor)
    await session.execute(
        dialect_insert(session, StaffMember)
        .values(telegram_user_id=visitor.telegram_user_id, last_seen_at=now, **fresh)
        .on_conflict_do_update(
            index_elements=["telegram_user_id"], set_={"last_seen_at": now, **fresh}
        )
    )
    await session.commit()


async def staff_people(*, session: AsyncSession, ids: Iterable[int]) -> dict[int, StaffPerson]:
    """Each of these staff members as last seen; one never seen has no name nor language."""
    wanted = sorted(set(ids))
    found = {
        row.telegram_user_id: StaffPerson(
            row.telegram_user_id, row.display_name, row.telegram_language
        )
        for row in (
            await session.execute(
                select(StaffMember).where(col(StaffMember.telegram_user_id).in_(wanted))
            )
        ).scalars()
    }
    return {i: found.get(i, StaffPerson(i, None, None)) for i in wanted}


@dataclass(frozen=True)
class StaffDeal:
    """A registration as staff see it: with its partner named."""

    registration: RegistrationView
    partner_code: str
    company: str


@dataclass(frozen=True)
class Decision:
    deal: StaffDeal
    approved: bool
    reason: str | None


@dataclass(frozen=True)
class Reader:
    """Someone of the partner's to tell: Telegram id, chosen language, Telegram's."""

    telegram_user_id: int
    language: str | None
    telegram_language: str | None


@dataclass(frozen=True)
class CustomerFile:
    """`/find`: the customer's standing, every registration for it and their history."""

    verdict: StaffVerdict
    deals: list[tuple[StaffDeal, list[HistoryEntry]]]
    # Won deals, disputes and requests for more time about these registrations, with
    # their files and the other side of each dispute.
    items: list[ItemView]
    # What VIES said of the number (PRODUCT.md §6), if it was ever asked.
    vies: ViesAnswer | None = None


async def deal_by_reference(*, session: AsyncSession, reference: str) -> StaffDeal:
    row = (
        await session.execute(
            select(Registration, col(Partner.code), col(Partner.company))
            .join(Partner, col(Partner.id) == col(Registration.partner_id))
            .where(col(Registration.reference) == reference)
        )
    ).first()
    if row is None:
        raise RegistrationNotFound()
    return StaffDeal(RegistrationView.of(row[0]), row[1], row[2])


async def deal_history(
    *, session: AsyncSession, reference: str
) -> tuple[StaffDeal, list[HistoryEntry]]:
    """`pai-bot history REF`: the registration with its partner, and every move and note
    about it (contest, more time, proof, decisions), oldest first, with who made them."""
    deal = await deal_by_reference(session=session, reference=reference.strip().upper())
    histories = await histories_of(session=session, ids=[deal.registration.id])
    return deal, histories[deal.registration.id]


async def pending_decisions(
    *, session: AsyncSession, limit: int = 20
) -> tuple[int, list[StaffDeal]]:
    """Won deals waiting for staff, oldest first: how many, and the first `limit`."""
    waiting = col(Registration.status) == Status.WON.value
    rows = (
        await session.execute(
            select(Registration, col(Partner.code), col(Partner.company))
            .join(Partner, col(Partner.id) == col(Registration.partner_id))
            .where(waiting)
            .order_by(col(Registration.updated_at), col(Registration.id))
        )
    ).all()
    deals = [StaffDeal(RegistrationView.of(r), code, company) for r, code, company in rows]
    return len(deals), deals[:limit]


async def decide(
    *,
    session: AsyncSession,
    reference: str,
    approve: bool,
    staff_id: int,
    now: dt.datetime,
    reason: str | None = None,
) -> Decision:
    """Approve or reject a won deal; the first decision counts (later: AlreadyDecided)."""
    deal = await deal_by_reference(session=session, reference=reference)
    target = Status.APPROVED if approve else Status.REJECTED
    try:
        await change_status(
            session,
            registration_id=deal.registration.id,
            target=target,
            by=staff_actor(staff_id),
            at=now,
            note=reason,
        )
    except TransitionNotAllowed as refused:
        await session.rollback()
        raise await _decided_already(session, deal.registration.id, refused.current) from None
    item = await open_item_of(
        session=session, registration_id=deal.registration.id, kind=ItemKind.WON
    )
    if item is not None and item.id is not None:
        await close_item(
            session,
            item_id=item.id,
            outcome=outcome_of(ItemKind.WON, yes=approve),
            by=staff_actor(staff_id),
            now=now,
            reason=reason,
        )
    emit(session, DealDecided(reference, approve, reason, staff_id))
    await session.commit()
    decided = await deal_by_reference(session=session, reference=reference)
    return Decision(decided, approve, reason)


@dataclass(frozen=True)
class DecisionItem:
    """A won deal as a staff member's copy shows it: still waiting (`earlier` None), or
    decided already, how and by whom."""

    deal: StaffDeal
    earlier: Decision | None = None
    by: Actor | None = None


async def decision_item(*, session: AsyncSession, reference: str) -> DecisionItem:
    """Where a decision item stands: a press on an old copy is answered before anything
    is asked."""
    deal = await deal_by_reference(session=session, reference=reference)
    status = deal.registration.status
    if status == Status.WON:
        return DecisionItem(deal)
    earlier = await _decided_already(session, deal.registration.id, status)
    approved = status in (Status.APPROVED, Status.PAID)
    return DecisionItem(deal, Decision(deal, approved, earlier.reason), earlier.by)


async def _decided_already(
    session: AsyncSession, registration_id: int, status: str
) -> AlreadyDecided:
    """The decision that moved the deal on, as the last entry of its history says it."""
    last = (
        await session.execute(
            select(col(StatusChange.changed_by), col(StatusChange.note))
            .where(col(StatusChange.registration_id) == registration_id)
            .order_by(col(StatusChange.id).desc())
            .limit(1)
        )
    ).first()
    code, note = (str(last[0]), last[1]) if last is not None else ("", None)
    by = (await actors(session=session, recorded=[code]))[code]
    return AlreadyDecided(status=status, by=by, reason=note)


async def people_to_tell(*, session: AsyncSession, reference: str) -> list[Reader]:
    """Who hears of a decision: the salesperson who registered it, else, if they left,
    the partner's other salespeople."""
    registration = (
        await session.execute(select(Registration).where(col(Registration.reference) == reference))
    ).scalar_one()
    linked = (
        (
            await session.execute(
                select(Salesperson).where(
                    col(Salesperson.partner_id) == registration.partner_id,
                    col(Salesperson.unlinked_at).is_(None),
                )
            )
        )
        .scalars()
        .all()
    )
    chosen = [p for p in linked if p.id == registration.salesperson_id] or list(linked)
    return [Reader(p.telegram_user_id, p.language, p.telegram_language) for p in chosen]


async def keep_notice(
    *, session: AsyncSession, registration_id: int, chat_id: int, message_id: int
) -> None:
    session.add(
        StaffNotice(registration_id=registration_id, chat_id=chat_id, message_id=message_id)
    )
    await session.commit()


async def notices_of(*, session: AsyncSession, registration_id: int) -> list[tuple[int, int]]:
    """The staff copies that asked about the won deal (not those of other items)."""
    rows = await session.execute(
        select(col(StaffNotice.chat_id), col(StaffNotice.message_id))
        .outerjoin(StaffItem, col(StaffItem.id) == col(StaffNotice.item_id))
        .where(
            col(StaffNotice.registration_id) == registration_id,
            or_(col(StaffNotice.item_id).is_(None), col(StaffItem.kind) == ItemKind.WON.value),
        )
    )
    return [(int(chat), int(message)) for chat, message in rows.all()]


async def revoked_by(
    *, session: AsyncSession, item: ItemView
) -> list[tuple[RegistrationView, list[Reader]]]:
    """The registration a granted dispute revoked, and whom of its partner to tell."""
    other = item.other_side
    if (
        item.kind != ItemKind.DISPUTE
        or item.outcome != ItemOutcome.GRANTED
        or other is None
        or other.holder_reference is None
    ):
        return []
    holder = await deal_by_reference(session=session, reference=other.holder_reference)
    if holder.registration.status != Status.REVOKED:
        return []
    readers = await people_to_tell(session=session, reference=other.holder_reference)
    return [(holder.registration, readers)]


async def find_customer(
    *, session: AsyncSession, rules: Rules, vat: str, now: dt.datetime
) -> CustomerFile:
    """The customer's standing (the holder named) and every registration with its history."""
    verdict = await staff_verdict(session=session, rules=rules, vat=vat, now=now)
    rows = (
        await session.execute(
            select(Registration, col(Partner.code), col(Partner.company))
            .join(Partner, col(Partner.id) == col(Registration.partner_id))
            .where(col(Registration.vat) == vat)
            .order_by(col(Registration.created_at).desc())
        )
    ).all()
    histories = await histories_of(session=session, ids=[r.id for r, _, _ in rows])
    deals = []
    for registration, code, company in rows:
        view = RegistrationView.of(registration)
        deals.append((StaffDeal(view, code, company), histories[view.id]))
    items = await items_of(session=session, registration_ids=[d.registration.id for d, _ in deals])
    vies = (await vies_of(session=session, vats=[vat])).get(vat)
    return CustomerFile(verdict, deals, items, vies)
