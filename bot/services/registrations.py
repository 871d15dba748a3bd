"""A partner's registrations: the list, one in detail, its outcome; the staff export."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bot.errors import RegistrationNotFound
from bot.lifecycle import OPEN, RELEASING, Status, check_transition
from bot.rules import Rules
from bot.services.eligibility import release_lapsed_protection
from bot.services.history import actor_of, record_change
from bot.services.views import Account, RegistrationView, StatusPage, Totals, reference_of
from models import Partner, Registration, utcnow

PAGE_SIZE = 8


async def list_registrations(
    *,
    session: AsyncSession,
    rules: Rules,
    account: Account,
    offset: int = 0,
    limit: int = PAGE_SIZE,
    now: dt.datetime | None = None,
) -> StatusPage:
    """The partner's registrations, newest first, with totals over all of them."""
    # Registrations whose protection ended show as expired, out of the expected total.
    await release_lapsed_protection(
        session=session, today=rules.today(now), partner_id=account.partner_id
    )
    await session.commit()
    mine = col(Registration.partner_id) == account.partner_id
    statement = (
        select(Registration)
        .where(mine)
        .order_by(col(Registration.id).desc())
        .offset(max(offset, 0))
        .limit(limit)
    )
    registrations = (await session.execute(statement)).scalars().all()
    sums = (
        await session.execute(
            select(
                col(Registration.status), func.count(), func.sum(col(Registration.incentive_amount))
            )
            .where(mine)
            .group_by(Registration.status)
        )
    ).all()
    by_status = {status: amount or Decimal(0) for status, _count, amount in sums}
    return StatusPage(
        registrations=[RegistrationView.of(r) for r in registrations],
        totals=Totals(
            expected=sum((by_status.get(s.value, Decimal(0)) for s in OPEN), Decimal(0)),
            approved=by_status.get(Status.APPROVED.value, Decimal(0)),
            paid=by_status.get(Status.PAID.value, Decimal(0)),
        ),
        total_count=sum(count for _status, count, _amount in sums),
        offset=max(offset, 0),
    )


async def get_registration(
    *, session: AsyncSession, account: Account, registration_id: int
) -> RegistrationView:
    return RegistrationView.of(
        await _own_registration(session=session, account=account, registration_id=registration_id)
    )


async def _own_registration(
    *, session: AsyncSession, account: Account, registration_id: int
) -> Registration:
    registration = await session.get(Registration, registration_id)
    # Another partner's registration is "not found": its existence is not ours to reveal.
    if registration is None or registration.partner_id != account.partner_id:
        raise RegistrationNotFound()
    return registration


async def report_outcome(
    *,
    session: AsyncSession,
    rules: Rules,
    account: Account,
    registration_id: int,
    outcome: Status,
    now: dt.datetime | None = None,
) -> RegistrationView:
    """The partner reports a deal won or lost while its protection lasts."""
    moment = now or utcnow()
    # Protection ended before the partner reported: the registration expired.
    await release_lapsed_protection(
        session=session, today=rules.today(moment), partner_id=account.partner_id
    )
    await session.commit()
    registration = await _own_registration(
        session=session, account=account, registration_id=registration_id
    )
    check_transition(registration.status, outcome)
    change_status(registration, outcome, by=actor_of(account), at=moment, session=session)
    await session.commit()
    return RegistrationView.of(registration)


def change_status(
    registration: Registration,
    target: Status,
    *,
    by: str,
    at: dt.datetime,
    session: AsyncSession,
    note: str | None = None,
) -> None:
    """Move the registration and keep the move, with who and when."""
    assert registration.id is not None
    record_change(
        session,
        registration_id=registration.id,
        from_status=registration.status,
        to=target,
        by=by,
        at=at,
        note=note,
    )
    registration.status = target.value
    registration.updated_at = at
    if target in RELEASING:
        registration.protection_key = None


EXPORT_COLUMNS = (
    "reference",
    "partner_code",
    "partner_company",
    "vat",
    "customer_name",
    "status",
    "registered_on",
    "protected_until",
    "deal_value",
    "product",
    "expected_close",
    "incentive_amount",
    "currency",
    "incentive_version",
    "level",
    "loyalty_min_registrations",
    "loyalty_multiplier",
    "loyalty_count",
    "updated_at",
)


async def export_registrations(*, session: AsyncSession) -> AsyncIterator[dict[str, str]]:
    """Every registration with its frozen quote and status, oldest first, as text."""
    statement = (
        select(Registration, col(Partner.code), col(Partner.company))
        .join(Partner, col(Partner.id) == col(Registration.partner_id))
        .order_by(col(Registration.id))
        .execution_options(yield_per=1000)
    )
    stream = await session.stream(statement)
    async for registration, code, company in stream:
        assert registration.id is not None
        yield {
            "reference": reference_of(registration.id),
            "partner_code": code,
            "partner_company": company,
            "vat": registration.vat,
            "customer_name": registration.customer_name,
            "status": registration.status,
            "registered_on": registration.registered_on.isoformat(),
            "protected_until": registration.protected_until.isoformat(),
            "deal_value": f"{registration.deal_value:.2f}",
            "product": registration.product,
            "expected_close": registration.expected_close.isoformat(),
            "incentive_amount": f"{registration.incentive_amount:.2f}",
            "currency": registration.currency,
            "incentive_version": registration.incentive_version.isoformat(),
            "level": registration.level,
            "loyalty_min_registrations": _text(registration.loyalty_min_registrations),
            "loyalty_multiplier": _text(registration.loyalty_multiplier),
            "loyalty_count": str(registration.loyalty_count),
            "updated_at": registration.updated_at.isoformat(timespec="seconds"),
        }


def _text(value: object | None) -> str:
    return "" if value is None else str(value)
