"""Is the customer new, who protects it, and what would a registration earn."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Date, Select, String, bindparam, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bot.errors import (
    AlreadyRegistered,
    CustomerNotNew,
    CustomerProtected,
    InvalidInput,
)
from bot.lifecycle import Status
from bot.rules import (
    Rules,
    is_new_customer,
    loyalty_window,
    protection_until,
    quote_incentive,
)
from bot.services.history import SYSTEM, actor_of, record_change
from bot.services.views import Account, RegistrationView, Verdict, reference_of
from models import Customer, Purchase, Registration, utcnow


@dataclass(frozen=True)
class Holder:
    """The registration protecting a customer right now."""

    registration_id: int
    partner_id: int
    until: dt.date


async def assess_customer(
    *, session: AsyncSession, rules: Rules, vat: str, partner_id: int, level: str, today: dt.date
) -> Verdict:
    """Return what registering `vat` today would earn, or raise why it cannot be registered."""
    standing = await customer_standing(
        session=session, rules=rules, vat=vat, partner_id=partner_id, today=today
    )
    holder = standing.holder
    if holder is not None:
        if holder.partner_id == partner_id:
            raise AlreadyRegistered(
                reference=reference_of(holder.registration_id), until=holder.until
            )
        raise CustomerProtected(until=holder.until)
    if not is_new_customer(rules, last_purchase=standing.last_purchase, on=today):
        assert standing.last_purchase is not None
        raise CustomerNotNew(last_purchase=standing.last_purchase)
    return Verdict(
        vat=vat,
        known_name=standing.name,
        quote=quote_incentive(
            rules, on=today, level=level, earlier_registrations=standing.loyalty_count
        ),
        registered_on=today,
        protected_until=protection_until(rules, today),
        last_purchase=standing.last_purchase,
    )


@dataclass(frozen=True)
class Standing:
    holder: Holder | None
    last_purchase: dt.date | None
    name: str | None
    loyalty_count: int


def _standing_statement() -> Select[*tuple[Any, ...]]:
    """Built once: constructing this select costs more than running it."""
    vat, today = bindparam("vat", type_=String), bindparam("today", type_=Date)
    holding = select(Registration).where(
        col(Registration.protection_key) == vat, col(Registration.protected_until) >= today
    )
    return select(
        holding.with_only_columns(col(Registration.id)).scalar_subquery(),
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
            # A deal staff rejected does not make a partner more loyal.
            col(Registration.status) != Status.REJECTED.value,
        )
        .scalar_subquery(),
    )


_STANDING = _standing_statement()


async def customer_standing(
    *, session: AsyncSession, rules: Rules, vat: str, partner_id: int | None, today: dt.date
) -> Standing:
    """Everything the verdict needs, in one round trip: each part is an index lookup.

    `partner_id` None (staff asking) counts no loyalty.

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
    holder_id, holder_partner, holder_until, last_purchase, name, loyalty_count = row
    return Standing(
        holder=None if holder_id is None else Holder(holder_id, holder_partner, holder_until),
        last_purchase=_as_date(last_purchase),
        name=name,
        loyalty_count=int(loyalty_count),
    )


def _as_date(value: dt.date | str | None) -> dt.date | None:
    """SQLite hands back max() of a date column as text; PostgreSQL as a date."""
    if value is None or isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(value)


async def check_eligibility(
    *,
    session: AsyncSession,
    rules: Rules,
    account: Account,
    vat: str,
    now: dt.datetime | None = None,
) -> Verdict:
    """The verdict and quote for a partner, without registering anything."""
    return await assess_for(
        session=session, rules=rules, account=account, vat=vat, today=rules.today(now)
    )


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
    now: dt.datetime | None = None,
) -> RegistrationView:
    """Register the deal if the customer still qualifies; the quote is frozen on it.

    Two partners confirming the same customer at once: the unique protection_key
    lets exactly one insert commit; the other is told the customer is protected.
    """
    moment = now or utcnow()
    today = rules.today(moment)
    try:
        return await _insert_registration(
            session=session,
            rules=rules,
            account=account,
            opportunity=opportunity,
            moment=moment,
            today=today,
        )
    except IntegrityError:
        await session.rollback()
        # Someone else committed first: this raises the verdict they caused.
        await assess_for(
            session=session, rules=rules, account=account, vat=opportunity.vat, today=today
        )
        raise


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
    await release_lapsed_protection(session=session, today=today, vat=opportunity.vat)
    verdict = await assess_for(
        session=session, rules=rules, account=account, vat=opportunity.vat, today=today
    )
    customer_name = verdict.known_name or opportunity.customer_name
    if not customer_name:
        raise InvalidInput("company_missing")
    if verdict.known_name is None:
        session.add(Customer(vat=opportunity.vat, name=customer_name))
    quote = verdict.quote
    registration = Registration(
        partner_id=account.partner_id,
        salesperson_id=account.salesperson_id,
        vat=opportunity.vat,
        customer_name=customer_name,
        registered_on=today,
        created_at=moment,
        updated_at=moment,
        protected_until=verdict.protected_until,
        protection_key=opportunity.vat,
        status=Status.QUALIFIED.value,
        deal_value=opportunity.deal_value,
        product=opportunity.product,
        expected_close=opportunity.expected_close,
        incentive_amount=quote.amount,
        currency=quote.currency,
        incentive_version=quote.version,
        level=quote.level,
        loyalty_min_registrations=quote.loyalty_min_registrations,
        loyalty_multiplier=quote.loyalty_multiplier,
        loyalty_count=quote.earlier_registrations,
    )
    session.add(registration)
    await session.flush()
    assert registration.id is not None
    record_change(
        session,
        registration_id=registration.id,
        from_status=None,
        to=Status.QUALIFIED,
        by=actor_of(account),
        at=moment,
    )
    await session.commit()
    return RegistrationView.of(registration)


async def release_lapsed_protection(
    *, session: AsyncSession, today: dt.date, vat: str | None = None, partner_id: int | None = None
) -> None:
    """End protections past their date, for one customer or one partner's registrations.

    Open registrations become `expired` (kept as done by `system`); won or later
    ones keep their status and just let the customer go. Expiry is applied
    lazily, by whoever next needs the truth: a registration attempt, a status view.
    """
    moment = utcnow()
    lapsed = [
        col(Registration.protection_key).is_not(None),
        col(Registration.protected_until) < today,
    ]
    if vat is not None:
        lapsed.append(col(Registration.protection_key) == vat)
    if partner_id is not None:
        lapsed.append(col(Registration.partner_id) == partner_id)
    expiring = (
        (
            await session.execute(
                update(Registration)
                .where(*lapsed, col(Registration.status) == Status.QUALIFIED.value)
                .values(status=Status.EXPIRED.value, protection_key=None, updated_at=moment)
                .returning(col(Registration.id))
            )
        )
        .scalars()
        .all()
    )
    for registration_id in expiring:
        assert registration_id is not None
        record_change(
            session,
            registration_id=registration_id,
            from_status=Status.QUALIFIED.value,
            to=Status.EXPIRED,
            by=SYSTEM,
            at=moment,
            note="protection ended without an outcome",
        )
    await session.execute(update(Registration).where(*lapsed).values(protection_key=None))
