"""A partner's registrations: the list, one in detail, its outcome; the staff export."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bot.domain.errors import TransitionNotAllowed
from bot.domain.lifecycle import OPEN, Status
from bot.domain.rules import Rules
from bot.services.conflicts import own_registration, put_won_deal_before_staff
from bot.services.eligibility import release_lapsed_protection
from bot.services.history import actor_of, change_status, histories_of, record_note
from bot.services.loyalty import partner_standing
from bot.services.views import Account, RegistrationView, StatusPage, Totals
from models import Partner, Registration

PAGE_SIZE = 8


async def list_registrations(
    *,
    session: AsyncSession,
    rules: Rules,
    account: Account,
    now: dt.datetime,
    offset: int = 0,
    limit: int = PAGE_SIZE,
) -> StatusPage:
    """The partner's registrations, newest first, with totals over all of them."""
    # Registrations whose protection ended show as expired, out of the expected total.
    if await release_lapsed_protection(
        session=session, today=rules.today(now), at=now, partner_id=account.partner_id
    ):
        await session.commit()
    mine = col(Registration.partner_id) == account.partner_id
    statement = (
        select(Registration)
        .where(mine)
        .order_by(col(Registration.created_at).desc(), col(Registration.id).desc())
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
        standing=await partner_standing(
            session=session, rules=rules, partner_id=account.partner_id, now=now
        ),
    )


async def search_registrations(
    *,
    session: AsyncSession,
    rules: Rules,
    account: Account,
    now: dt.datetime,
    status: str | None = None,
    text: str | None = None,
    limit: int = 100,
) -> tuple[int, list[RegistrationView]]:
    """The partner's registrations with this status and whose customer's name or VAT
    number holds `text` (any case), newest first: how many, and the first `limit`.
    Protections that lapsed show as expired, as in /status."""
    if await release_lapsed_protection(
        session=session, today=rules.today(now), at=now, partner_id=account.partner_id
    ):
        await session.commit()
    wanted = [col(Registration.partner_id) == account.partner_id]
    if status:
        wanted.append(col(Registration.status) == status)
    if text and text.strip():
        # What was typed, literally: % and _ are letters here, not wildcards.
        typed = text.strip().lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        needle = f"%{typed}%"
        wanted.append(
            func.lower(col(Registration.customer_name)).like(needle, escape="\\")
            | func.lower(col(Registration.vat)).like(needle, escape="\\")
        )
    count = (
        await session.execute(select(func.count()).select_from(Registration).where(*wanted))
    ).scalar_one()
    rows = (
        await session.execute(
            select(Registration)
            .where(*wanted)
            .order_by(col(Registration.created_at).desc(), col(Registration.id).desc())
            .limit(limit)
        )
    ).scalars()
    return int(count), [RegistrationView.of(r) for r in rows]


async def get_registration(
    *, session: AsyncSession, account: Account, reference: str
) -> RegistrationView:
    return RegistrationView.of(
        await own_registration(session=session, account=account, reference=reference)
    )


async def report_outcome(
    *,
    session: AsyncSession,
    rules: Rules,
    account: Account,
    reference: str,
    outcome: Status,
    now: dt.datetime,
    note: str | None = None,
) -> RegistrationView:
    """The partner reports a deal won or lost (with why, if given) while it is protected.

    A deal won is `DealWon`: staff hear of it (bot/jobs/staff.py)."""
    # Protection ended before the partner reported: the registration expired.
    if await release_lapsed_protection(
        session=session, today=rules.today(now), at=now, partner_id=account.partner_id
    ):
        await session.commit()
    registration = await own_registration(session=session, account=account, reference=reference)
    assert registration.id is not None
    try:
        await change_status(
            session,
            registration_id=registration.id,
            target=outcome,
            by=actor_of(account),
            at=now,
            note=note,
        )
    except Exception:
        await session.rollback()
        raise
    if outcome == Status.WON and not rules.conflicts.require_proof:
        # Staff are to approve or reject it; with proof required, once the proof comes.
        await put_won_deal_before_staff(session, rules=rules, registration=registration, now=now)
    await session.commit()
    await session.refresh(registration)
    return RegistrationView.of(registration)


async def report_still_open(
    *, session: AsyncSession, rules: Rules, account: Account, reference: str, now: dt.datetime
) -> RegistrationView:
    """The partner says the deal is still open: kept in its history, nothing moves.

    Refused like an outcome once the registration is no longer open (its protection
    may have ended since midnight, before the tick expired it).
    """
    if await release_lapsed_protection(
        session=session, today=rules.today(now), at=now, partner_id=account.partner_id
    ):
        await session.commit()
    registration = await own_registration(session=session, account=account, reference=reference)
    assert registration.id is not None
    if registration.status != Status.QUALIFIED.value:
        raise TransitionNotAllowed(current=registration.status, target=Status.QUALIFIED.value)
    await record_note(
        session, registration_id=registration.id, by=actor_of(account), at=now, note="still open"
    )
    await session.commit()
    return RegistrationView.of(registration)


async def export_registrations(*, session: AsyncSession) -> AsyncIterator[dict[str, object]]:
    """Every registration with its frozen quote, status and history (a list of
    HistoryEntry, for the caller to write), oldest first."""
    history = await histories_of(session=session)
    statement = (
        select(Registration, col(Partner.code), col(Partner.company))
        .join(Partner, col(Partner.id) == col(Registration.partner_id))
        .order_by(col(Registration.created_at), col(Registration.id))
        .execution_options(yield_per=1000)
    )
    stream = await session.stream(statement)
    async for registration, code, company in stream:
        yield {
            "reference": registration.reference,
            "partner_code": code,
            "partner_company": company,
            "vat": registration.vat,
            "customer_name": registration.customer_name,
            "status": registration.status,
            "registered_on": registration.registered_on,
            "protected_until": registration.protected_until,
            "deal_value": registration.deal_value,
            "product": registration.product,
            "expected_close": registration.expected_close,
            "incentive_amount": registration.incentive_amount,
            "currency": registration.currency,
            "incentive_version": registration.incentive_version,
            "level": registration.level,
            "loyalty_min_registrations": registration.loyalty_min_registrations,
            "loyalty_multiplier": registration.loyalty_multiplier,
            "loyalty_count": registration.loyalty_count,
            "updated_at": registration.updated_at,
            "history": history.get(registration.id or 0, []),
        }
