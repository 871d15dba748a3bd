"""Is the customer new, who protects it, and what would a registration earn."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import func, select, update
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
from bot.services.views import Account, RegistrationView, Verdict, reference_of
from models import Customer, Purchase, Registration, StatusChange, utcnow

SYSTEM = "system"


@dataclass(frozen=True)
class Holder:
    """The registration protecting a customer right now."""

    registration_id: int
    partner_id: int
    until: dt.date


async def last_purchase_of(*, session: AsyncSession, vat: str) -> dt.date | None:
    statement = select(func.max(Purchase.purchase_date)).where(col(Purchase.vat) == vat)
    result: dt.date | None = (await session.execute(statement)).scalar_one()
    return result


async def protection_holder(*, session: AsyncSession, vat: str, today: dt.date) -> Holder | None:
    statement = select(
        Registration.id, Registration.partner_id, Registration.protected_until
    ).where(
        col(Registration.protection_key) == vat,
        col(Registration.protected_until) >= today,
    )
    row = (await session.execute(statement)).first()
    return None if row is None else Holder(row[0], row[1], row[2])


async def count_loyalty_registrations(
    *, session: AsyncSession, rules: Rules, partner_id: int, on: dt.date
) -> int:
    first, last = loyalty_window(rules, on)
    statement = select(func.count()).where(
        col(Registration.partner_id) == partner_id,
        col(Registration.registered_on).between(first, last),
        # A deal staff rejected does not make a partner more loyal.
        col(Registration.status) != Status.REJECTED.value,
    )
    return int((await session.execute(statement)).scalar_one())


async def customer_name_of(*, session: AsyncSession, vat: str) -> str | None:
    customer = await session.get(Customer, vat)
    return None if customer is None else customer.name


async def assess_customer(
    *, session: AsyncSession, rules: Rules, vat: str, partner_id: int, level: str, today: dt.date
) -> Verdict:
    """Return what registering `vat` today would earn, or raise why it cannot be registered."""
    holder = await protection_holder(session=session, vat=vat, today=today)
    if holder is not None:
        if holder.partner_id == partner_id:
            raise AlreadyRegistered(
                reference=reference_of(holder.registration_id), until=holder.until
            )
        raise CustomerProtected(until=holder.until)
    last_purchase = await last_purchase_of(session=session, vat=vat)
    if not is_new_customer(rules, last_purchase=last_purchase, on=today):
        assert last_purchase is not None
        raise CustomerNotNew(last_purchase=last_purchase)
    earlier = await count_loyalty_registrations(
        session=session, rules=rules, partner_id=partner_id, on=today
    )
    return Verdict(
        vat=vat,
        known_name=await customer_name_of(session=session, vat=vat),
        quote=quote_incentive(rules, on=today, level=level, earlier_registrations=earlier),
        registered_on=today,
        protected_until=protection_until(rules, today),
        last_purchase=last_purchase,
    )


async def check_eligibility(
    *,
    session: AsyncSession,
    rules: Rules,
    account: Account,
    vat: str,
    now: dt.datetime | None = None,
) -> Verdict:
    """The verdict and quote for a partner, without registering anything."""
    return await assess_customer(
        session=session,
        rules=rules,
        vat=vat,
        partner_id=account.partner_id,
        level=account.level,
        today=rules.today(now),
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
        await assess_customer(
            session=session,
            rules=rules,
            vat=opportunity.vat,
            partner_id=account.partner_id,
            level=account.level,
            today=today,
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
    await release_lapsed_protection(session=session, vat=opportunity.vat, today=today)
    verdict = await assess_customer(
        session=session,
        rules=rules,
        vat=opportunity.vat,
        partner_id=account.partner_id,
        level=account.level,
        today=today,
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
    session.add(
        StatusChange(
            registration_id=registration.id,
            from_status=None,
            to_status=Status.QUALIFIED.value,
            changed_by=actor_of(account),
            changed_at=moment,
        )
    )
    await session.commit()
    return RegistrationView.of(registration)


async def release_lapsed_protection(*, session: AsyncSession, vat: str, today: dt.date) -> None:
    """Free a customer whose protection ended: open registrations expire, others just let go."""
    lapsed = (
        col(Registration.protection_key) == vat,
        col(Registration.protected_until) < today,
    )
    expiring = (
        (
            await session.execute(
                update(Registration)
                .where(*lapsed, col(Registration.status) == Status.QUALIFIED.value)
                .values(status=Status.EXPIRED.value, protection_key=None, updated_at=utcnow())
                .returning(col(Registration.id))
            )
        )
        .scalars()
        .all()
    )
    for registration_id in expiring:
        session.add(
            StatusChange(
                registration_id=registration_id,
                from_status=Status.QUALIFIED.value,
                to_status=Status.EXPIRED.value,
                changed_by=SYSTEM,
                note="protection ended without an outcome",
            )
        )
    await session.execute(update(Registration).where(*lapsed).values(protection_key=None))


def actor_of(account: Account) -> str:
    return f"telegram:{account.telegram_user_id}"
