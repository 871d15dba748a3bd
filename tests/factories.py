"""Small builders for test data, through the same services staff use."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from stdnum import luhn

from bot.domain.lifecycle import Status
from bot.domain.rules import Rules
from bot.services.accounts import Visitor, create_invite, redeem_invite
from bot.services.eligibility import Opportunity, register_opportunity
from bot.services.imports import import_partners, import_purchases
from bot.services.registrations import report_outcome
from bot.services.views import Account, RegistrationView

# A moment the service tests treat as now: a Saturday in Rome.
NOW = dt.datetime(2026, 11, 28, 10, 0, tzinfo=dt.UTC)

# Valid Italian VAT numbers (check digit correct), for customers in tests.
VATS = [
    "IT12345670587",
    "IT00743110157",
    "IT01114601006",
    "IT00488410010",
    "IT00905811006",
    "IT03625410232",
    "IT06655971007",
]


def italian_vat(serial: int) -> str:
    """A valid Partita IVA for any serial below ten million (office code 001)."""
    body = f"{serial + 1:07d}001"
    return f"IT{body}{luhn.calc_check_digit(body)}"


def write_csv(path: Path, text: str, *, encoding: str = "utf-8") -> Path:
    path.write_text(text, encoding=encoding)
    return path


async def add_partners(
    sessions: async_sessionmaker[AsyncSession], rules: Rules, tmp_path: Path, rows: str
) -> None:
    path = write_csv(tmp_path / "partners.csv", "code,company,level\n" + rows)
    async with sessions() as session:
        report = await import_partners(session=session, rules=rules, path=path, now=NOW)
    assert not report.rejected, report.rejected


async def add_purchases(
    sessions: async_sessionmaker[AsyncSession], rules: Rules, tmp_path: Path, rows: str
) -> None:
    path = write_csv(tmp_path / "purchases.csv", "vat,customer_name,purchase_date\n" + rows)
    async with sessions() as session:
        report = await import_purchases(
            session=session, rules=rules, path=path, today=rules.today(NOW), allow_future=True
        )
    assert not report.rejected, report.rejected


async def link_salesperson(
    sessions: async_sessionmaker[AsyncSession],
    partner_code: str,
    telegram_user_id: int,
    *,
    now: dt.datetime = NOW,
) -> Account:
    async with sessions() as session:
        invite = await create_invite(session=session, partner_code=partner_code, now=now)
    async with sessions() as session:
        return await redeem_invite(
            session=session,
            token=invite.token,
            visitor=Visitor(telegram_user_id=telegram_user_id),
            now=now,
        )


def opportunity(vat: str, name: str | None = "Rossi S.r.l.") -> Opportunity:
    return Opportunity(
        vat=vat,
        customer_name=name,
        deal_value=Decimal("12500.00"),
        product="Accounting suite, 10 seats",
        expected_close=dt.date(2027, 1, 31),
    )


async def register(
    sessions: async_sessionmaker[AsyncSession],
    rules: Rules,
    account: Account,
    vat: str,
    *,
    now: dt.datetime = NOW,
    name: str | None = "Rossi S.r.l.",
) -> RegistrationView:
    async with sessions() as session:
        return await register_opportunity(
            session=session,
            rules=rules,
            account=account,
            opportunity=opportunity(vat, name),
            now=now,
        )


async def report(
    sessions: async_sessionmaker[AsyncSession],
    rules: Rules,
    account: Account,
    registration: RegistrationView,
    outcome: Status,
    *,
    now: dt.datetime = NOW,
) -> RegistrationView:
    """The partner reports a registration's outcome, as /status does."""
    async with sessions() as session:
        return await report_outcome(
            session=session,
            rules=rules,
            account=account,
            reference=registration.reference,
            outcome=outcome,
            now=now,
        )
