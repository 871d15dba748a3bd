"""Is the customer new, who protects it, and what would a registration earn."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Date, Select, String, bindparam, func, not_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bot.domain.errors import (
    AlreadyRegistered,
    CustomerNotNew,
    CustomerProtected,
    InvalidInput,
    NoIncentiveInForce,
    TransitionNotAllowed,
)
from bot.domain.lifecycle import Status
from bot.domain.names import name_block
from bot.domain.references import new_reference
from bot.domain.rules import (
    Quote,
    Rules,
    first_new_day,
    is_new_customer,
    loyalty_window,
    protection_until,
    quote_incentive,
)
from bot.services.accounts import partner_by_code
from bot.services.history import SYSTEM, actor_of, change_status, record_creation
from bot.services.loyalty import COUNTS_FOR_LOYALTY
from bot.services.views import Account, PartnerView, RegistrationView, Verdict, quote_columns
from bot.storage.database import date_of
from models import Customer, Partner, Purchase, Registration

# Attempts at a fresh random reference before giving up (a clash is ~1 in 10^8).
REFERENCE_ATTEMPTS = 5


@dataclass(frozen=True)
class Holder:
    """The registration protecting a customer right now."""

    reference: str
    partner_id: int
    until: dt.date


@dataclass(frozen=True)
class Standing:
    holder: Holder | None
    last_purchase: dt.date | None
    # The vendor's name for the customer: None when its history has no purchase.
    vendor_name: str | None
    loyalty_count: int


async def assess_customer(
    *, session: AsyncSession, rules: Rules, vat: str, partner_id: int, level: str, today: dt.date
) -> Verdict:
    """Return what registering `vat` today would earn, or raise why it cannot be registered.

    The one verdict: the chat and the command line both come here.
    """
    standing = await customer_standing(
        session=session, rules=rules, vat=vat, partner_id=partner_id, today=today
    )
    holder = standing.holder
    if holder is not None:
        if holder.partner_id == partner_id:
            raise AlreadyRegistered(reference=holder.reference, until=holder.until)
        raise CustomerProtected(until=holder.until)
    if not is_new_customer(rules, last_purchase=standing.last_purchase, on=today):
        assert standing.last_purchase is not None
        raise CustomerNotNew(last_purchase=standing.last_purchase)
    return Verdict(
        vat=vat,
        known_name=standing.vendor_name,
        quote=quote_incentive(
            rules, on=today, level=level, earlier_registrations=standing.loyalty_count
        ),
        registered_on=today,
        protected_until=protection_until(rules, today),
        last_purchase=standing.last_purchase,
    )


def HOLDS(today: Any) -> Any:
    """A registration with the protection key holds its customer until its date, and
    past it while staff have a request for more time before them."""
    return or_(
        col(Registration.protected_until) >= today, col(Registration.awaiting_extension).is_(True)
    )


def _standing_statement() -> Select[Any]:
    """Built once: constructing this select costs more than running it."""
    vat, today = bindparam("vat", type_=String), bindparam("today", type_=Date)
    holding = select(Registration).where(col(Registration.protection_key) == vat, HOLDS(today))
    return select(
        holding.with_only_columns(col(Registration.reference)).scalar_subquery(),
        holding.with_only_columns(col(Registration.partner_id)).scalar_subquery(),
        holding.with_only_columns(col(Registration.protected_until)).scalar_subquery(),
        select(func.max(Purchase.purchase_date)).where(col(Purchase.vat) == vat).scalar_subquery(),
        select(col(Customer.name)).where(col(Customer.vat) == vat).scalar_subquery(),
        select(func.count())
        .select_from(Registration)
        .where(
            col(Registration.partner_id) == bindparam("partner_id"),
            col(Registration.registered_on).between(
                bindparam("first", type_=Date), bindparam("last", type_=Date)
            ),
            COUNTS_FOR_LOYALTY,
        )
        .scalar_subquery(),
    )


_STANDING = _standing_statement()


async def customer_standing(
    *, session: AsyncSession, rules: Rules, vat: str, partner_id: int | None, today: dt.date
) -> Standing:
    """Everything the verdict needs, in one round trip: each part is an index lookup.

    `partner_id` None (staff asking) counts no loyalty. The loyalty count is every
    registration of the partner dated in the window, today's included: the one
    being made is not stored yet, so they are exactly the ones made before it.

    The verdict is the bot's hottest path; one statement instead of four keeps
    it close to the cost of the bare last-purchase query (see bench/).
    """
    first, last = loyalty_window(rules, today)
    connection = await session.connection()
    row = (
        await connection.execute(
            _STANDING,
            {"vat": vat, "today": today, "partner_id": partner_id, "first": first, "last": last},
        )
    ).one()
    holder_reference, holder_partner, holder_until, last_purchase, name, loyalty_count = row
    last_purchase = date_of(last_purchase)
    return Standing(
        holder=None
        if holder_reference is None
        else Holder(holder_reference, holder_partner, holder_until),
        last_purchase=last_purchase,
        # Databases made before typed names stopped going to the customer table still
        # hold some: a name with no purchase behind it was typed by a partner.
        vendor_name=name if last_purchase is not None else None,
        loyalty_count=int(loyalty_count),
    )


async def check_eligibility(
    *, session: AsyncSession, rules: Rules, account: Account, vat: str, now: dt.datetime
) -> Verdict:
    """The verdict and quote for a salesperson's partner, without registering anything."""
    return await assess_for(
        session=session, rules=rules, account=account, vat=vat, today=rules.today(now)
    )


async def check_for_partner(
    *, session: AsyncSession, rules: Rules, partner_code: str, vat: str, now: dt.datetime
) -> tuple[PartnerView, Verdict]:
    """The verdict and quote a partner would get, asked by staff with the partner's code."""
    partner = await partner_by_code(session=session, code=partner_code)
    assert partner.id is not None
    verdict = await assess_customer(
        session=session,
        rules=rules,
        vat=vat,
        partner_id=partner.id,
        level=partner.level,
        today=rules.today(now),
    )
    return PartnerView.of(partner), verdict


async def assess_for(
    *, session: AsyncSession, rules: Rules, account: Account, vat: str, today: dt.date
) -> Verdict:
    return await assess_customer(
        session=session,
        rules=rules,
        vat=vat,
        partner_id=account.partner_id,
        level=account.level,
        today=today,
    )


@dataclass(frozen=True)
class HolderView:
    """Who protects a customer, as staff may see it."""

    partner_code: str
    company: str
    reference: str
    until: dt.date
    typed_name: str


@dataclass(frozen=True)
class StaffVerdict:
    """A customer's standing for staff: unlike partners, they see the holder and typed names."""

    vat: str
    vendor_name: str | None
    last_purchase: dt.date | None
    is_new: bool
    new_from: dt.date | None
    protected_until_if_registered: dt.date
    holder: HolderView | None
    quotes: tuple[Quote, ...]  # one per level for a first registration; () if none in force


async def staff_verdict(
    *, session: AsyncSession, rules: Rules, vat: str, now: dt.datetime
) -> StaffVerdict:
    today = rules.today(now)
    standing = await customer_standing(
        session=session, rules=rules, vat=vat, partner_id=None, today=today
    )
    holder = None
    if standing.holder is not None:
        row = (
            await session.execute(
                select(col(Partner.code), col(Partner.company), col(Registration.customer_name))
                .join(Partner, col(Partner.id) == col(Registration.partner_id))
                .where(col(Registration.reference) == standing.holder.reference)
            )
        ).one()
        holder = HolderView(
            partner_code=row[0],
            company=row[1],
            reference=standing.holder.reference,
            until=standing.holder.until,
            typed_name=row[2],
        )
    last = standing.last_purchase
    is_new = is_new_customer(rules, last_purchase=last, on=today)
    try:
        quotes = tuple(
            quote_incentive(rules, on=today, level=level, earlier_registrations=0)
            for level in rules.levels
        )
    except NoIncentiveInForce:
        quotes = ()
    return StaffVerdict(
        vat=vat,
        vendor_name=standing.vendor_name,
        last_purchase=last,
        is_new=is_new,
        new_from=None if is_new or last is None else first_new_day(rules, last),
        protected_until_if_registered=protection_until(rules, today),
        holder=holder,
        quotes=quotes,
    )


@dataclass(frozen=True)
class Opportunity:
    """What the salesperson told us about the deal."""

    vat: str
    customer_name: str | None
    deal_value: Decimal
    product: str
    expected_close: dt.date


async def register_opportunity(
    *,
    session: AsyncSession,
    rules: Rules,
    account: Account,
    opportunity: Opportunity,
    now: dt.datetime,
) -> RegistrationView:
    """Register the deal if the customer still qualifies; the quote of this moment is frozen on it.

    Two partners confirming the same customer at once: the unique protection_key
    lets exactly one insert commit; the other is told the customer is protected.
    """
    today = rules.today(now)
    for _attempt in range(REFERENCE_ATTEMPTS):
        try:
            return await _insert_registration(
                session=session,
                rules=rules,
                account=account,
                opportunity=opportunity,
                moment=now,
                today=today,
            )
        except IntegrityError:
            await session.rollback()
            # Someone else committed first: this raises the verdict they caused. If
            # the customer is still free, the clash was the random reference: retry.
            await assess_for(
                session=session, rules=rules, account=account, vat=opportunity.vat, today=today
            )
    raise RuntimeError("no free registration reference after several attempts")


async def _insert_registration(
    *,
    session: AsyncSession,
    rules: Rules,
    account: Account,
    opportunity: Opportunity,
    moment: dt.datetime,
    today: dt.date,
) -> RegistrationView:
    # The first statement writes, so SQLite takes its write lock before we read:
    # the checks below then see every registration committed before ours.
    await _release_lapsed_hold_on(session=session, vat=opportunity.vat, today=today, at=moment)
    verdict = await assess_for(
        session=session, rules=rules, account=account, vat=opportunity.vat, today=today
    )
    customer_name = verdict.known_name or opportunity.customer_name
    if not customer_name:
        raise InvalidInput("company_missing")
    registration = Registration(
        reference=new_reference(),
        partner_id=account.partner_id,
        salesperson_id=account.salesperson_id,
        vat=opportunity.vat,
        customer_name=customer_name,
        name_block=name_block(customer_name),
        registered_on=today,
        created_at=moment,
        updated_at=moment,
        protected_until=verdict.protected_until,
        protection_key=opportunity.vat,
        status=Status.QUALIFIED.value,
        deal_value=opportunity.deal_value,
        product=opportunity.product,
        expected_close=opportunity.expected_close,
        **quote_columns(verdict.quote),
    )
    session.add(registration)
    await session.flush()
    assert registration.id is not None
    await record_creation(session, registration_id=registration.id, by=actor_of(account), at=moment)
    await session.commit()
    return RegistrationView.of(registration)


async def _release_lapsed_hold_on(
    *, session: AsyncSession, vat: str, today: dt.date, at: dt.datetime
) -> None:
    """Free the customer from a registration whose protection ended; expire it if still open."""
    released = await session.execute(
        update(Registration)
        .where(col(Registration.protection_key) == vat, not_(HOLDS(today)))
        .values(protection_key=None)
        .returning(col(Registration.id), col(Registration.status))
    )
    for registration_id, status in released.all():
        assert registration_id is not None
        if status == Status.QUALIFIED.value:
            await _expire(session, registration_id, at)


async def release_lapsed_protection(
    *, session: AsyncSession, today: dt.date, at: dt.datetime, partner_id: int | None = None
) -> int:
    """End protections past their date (one partner's, or all); return how many it changed.

    Open registrations become `expired` (kept as done by `system`); won or later
    ones keep their status and just let the customer go. Reads first and writes
    only when something lapsed, so looking at /status never waits for a writer.
    """
    lapsed = select(col(Registration.id), col(Registration.status)).where(
        col(Registration.protection_key).is_not(None), not_(HOLDS(today))
    )
    if partner_id is not None:
        lapsed = lapsed.where(col(Registration.partner_id) == partner_id)
    rows = (await session.execute(lapsed)).all()
    changed = 0
    for registration_id, status in rows:
        assert registration_id is not None
        if status == Status.QUALIFIED.value:
            changed += await _expire(session, registration_id, at)
        else:
            await session.execute(
                update(Registration)
                .where(col(Registration.id) == registration_id)
                .values(protection_key=None)
            )
            changed += 1
    return changed


async def _expire(session: AsyncSession, registration_id: int, at: dt.datetime) -> bool:
    try:
        await change_status(
            session,
            registration_id=registration_id,
            target=Status.EXPIRED,
            by=SYSTEM,
            at=at,
            note="protection ended without an outcome",
        )
    except TransitionNotAllowed:
        return False  # its partner reported an outcome at this very moment: that one stands
    return True
