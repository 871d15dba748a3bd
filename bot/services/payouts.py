"""Paying partners: the approved, unpaid incentives out; the paid ones back in."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bot.domain.errors import TransitionNotAllowed
from bot.domain.lifecycle import Status
from bot.domain.references import is_reference
from bot.domain.rules import Rules
from bot.services.history import PAID_BY, change_status
from bot.sheets import BadLine, read_table
from models import Partner, Registration, StatusChange


async def approved_unpaid(*, session: AsyncSession, rules: Rules) -> list[dict[str, object]]:
    """Every approved incentive not paid yet, partner by partner."""
    approved_at = (
        select(col(StatusChange.registration_id), col(StatusChange.changed_at))
        .where(col(StatusChange.to_status) == Status.APPROVED.value)
        .subquery()
    )
    rows = await session.execute(
        select(Registration, col(Partner.code), col(Partner.company), approved_at.c.changed_at)
        .join(Partner, col(Partner.id) == col(Registration.partner_id))
        .outerjoin(approved_at, approved_at.c.registration_id == col(Registration.id))
        .where(col(Registration.status) == Status.APPROVED.value)
        .order_by(col(Partner.code), col(Registration.created_at))
    )
    return [
        {
            "partner_code": code,
            "partner_company": company,
            "reference": registration.reference,
            "customer_name": registration.customer_name,
            "vat": registration.vat,
            "approved_on": approved.astimezone(rules.timezone).date() if approved else None,
            "incentive_amount": registration.incentive_amount,
            "currency": registration.currency,
        }
        for registration, code, company, approved in rows.all()
    ]


@dataclass
class PaidReport:
    paid: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    refused: list[tuple[int, str]] = field(default_factory=list)  # (line, reason)


async def mark_paid(
    *, session: AsyncSession, path: Path, now: dt.datetime, paid_on: dt.date
) -> PaidReport:
    """Mark the file's registrations paid; those paid already stay as they are."""
    listed: list[tuple[int, str]] = []
    refused: list[tuple[int, str]] = []
    for row in read_table(path, ("reference",)):
        if isinstance(row, BadLine):
            refused.append((row.line, row.reason))
        else:
            listed.append((row.line, row.cells["reference"]))
    report = await mark_references_paid(session=session, listed=listed, now=now, paid_on=paid_on)
    report.refused[:0] = refused
    return report


async def mark_references_paid(
    *,
    session: AsyncSession,
    listed: Sequence[tuple[int, str]],
    now: dt.datetime,
    paid_on: dt.date,
) -> PaidReport:
    """Mark paid the registrations listed as (line, reference): a file's rows, or the rows
    of the payouts file staff got in chat. Those paid already stay as they are, so marking
    twice changes nothing."""
    report = PaidReport()
    seen: set[str] = set()
    for line, typed in listed:
        reference = typed.strip().upper()
        if not is_reference(reference):
            report.refused.append((line, f"{typed!r} is not a reference"))
            continue
        if reference in seen:
            continue
        seen.add(reference)
        registration = (
            await session.execute(
                select(Registration).where(col(Registration.reference) == reference)
            )
        ).scalar_one_or_none()
        if registration is None or registration.id is None:
            report.refused.append((line, f"{reference} is not a registration"))
            continue
        if registration.status == Status.PAID.value:
            report.already.append(reference)
            continue
        try:
            await change_status(
                session,
                registration_id=registration.id,
                target=Status.PAID,
                by=PAID_BY,
                at=now,
                note=f"paid on {paid_on.isoformat()}",
            )
        except TransitionNotAllowed as refused:
            report.refused.append(
                (line, f"{reference} is {refused.current}, not approved: not paid")
            )
            continue
        report.paid.append(reference)
    await session.commit()
    return report
