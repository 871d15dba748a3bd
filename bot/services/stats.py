"""The programme's numbers, as the people who run it quote them."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bot.domain.lifecycle import OPEN, Status
from bot.domain.rules import Rules, months_before
from bot.services.items import decision_times
from bot.services.loyalty import COUNTS_FOR_LOYALTY
from bot.storage.database import date_of, dialect_insert
from models import Partner, Registration, VerdictTally

# Deals the partner won: reported won, and whatever staff made of them but a rejection.
WON = (Status.WON.value, Status.APPROVED.value, Status.PAID.value)
MONTHS_CHARTED = 12
TOP_PARTNERS = 5


@dataclass(frozen=True)
class Numbers:
    today: dt.date
    partners_by_level: dict[str, int]
    active_by_level: dict[str, int]  # registered in the loyalty window
    registrations_month: int
    registrations_quarter: int
    registrations_year: int
    verdicts_year: int
    qualified_year: int
    won_year: int
    expected: Decimal
    approved: Decimal
    paid: Decimal
    top_partners: list[tuple[str, str, int]]  # code, company, registrations in the window
    # (first day of the month, level) -> registrations; first day of the month -> won
    monthly: dict[tuple[dt.date, str], int]
    monthly_won: dict[dt.date, int]
    # Staff's pace (PRODUCT.md §5): median arrival-to-decision over 90 days; overdue now.
    decision_median: dt.timedelta | None = None
    overdue_now: int = 0

    @property
    def qualified_share(self) -> float | None:
        return self.qualified_year / self.verdicts_year if self.verdicts_year else None


async def count_verdict(*, session: AsyncSession, day: dt.date, outcome: str) -> None:
    """Add one verdict to the day's tally (one statement, safe under concurrency)."""
    insert = dialect_insert(session, VerdictTally)
    statement = insert.values(day=day, outcome=outcome, count=1).on_conflict_do_update(
        index_elements=["day", "outcome"], set_={"count": VerdictTally.count + 1}
    )
    await session.execute(statement)
    await session.commit()


async def programme_numbers(*, session: AsyncSession, rules: Rules, now: dt.datetime) -> Numbers:
    today = rules.today(now)
    month = today.replace(day=1)
    quarter = dt.date(today.year, 3 * ((today.month - 1) // 3) + 1, 1)
    year = dt.date(today.year, 1, 1)
    window = today - dt.timedelta(days=rules.loyalty_window_days)
    counted = COUNTS_FOR_LOYALTY

    level = col(Partner.level)
    partners: dict[str, int] = {
        str(name): int(number)
        for name, number in (await session.execute(select(level, func.count()).group_by(level)))
    }
    active: dict[str, int] = {
        str(name): int(number)
        for name, number in await session.execute(
            select(level, func.count(func.distinct(col(Partner.id))))
            .join(Registration, col(Registration.partner_id) == col(Partner.id))
            .where(col(Registration.registered_on) >= window)
            .group_by(level)
        )
    }

    async def registrations_since(day: dt.date) -> int:
        return int(
            (
                await session.execute(
                    select(func.count())
                    .select_from(Registration)
                    .where(col(Registration.registered_on) >= day, counted)
                )
            ).scalar_one()
        )

    outcome = col(VerdictTally.outcome)
    tallies: dict[str, int] = {
        str(kind): int(number or 0)
        for kind, number in (
            await session.execute(
                select(outcome, func.sum(col(VerdictTally.count)))
                .where(col(VerdictTally.day) >= year)
                .group_by(outcome)
            )
        ).all()
    }
    won_year = int(
        (
            await session.execute(
                select(func.count())
                .select_from(Registration)
                .where(col(Registration.status).in_(WON), col(Registration.registered_on) >= year)
            )
        ).scalar_one()
    )
    sums = dict(
        (
            await session.execute(
                select(
                    col(Registration.status), func.sum(col(Registration.incentive_amount))
                ).group_by(col(Registration.status))
            )
        ).all()
    )

    def total(*statuses: str) -> Decimal:
        return sum((Decimal(sums.get(s) or 0) for s in statuses), Decimal(0))

    top = (
        await session.execute(
            select(col(Partner.code), col(Partner.company), func.count())
            .join(Registration, col(Registration.partner_id) == col(Partner.id))
            .where(col(Registration.registered_on) >= window, counted)
            .group_by(col(Partner.code), col(Partner.company))
            .order_by(func.count().desc(), col(Partner.code))
            .limit(TOP_PARTNERS)
        )
    ).all()
    first_month = months_before(month, MONTHS_CHARTED - 1)
    monthly: dict[tuple[dt.date, str], int] = defaultdict(int)
    monthly_won: dict[dt.date, int] = defaultdict(int)
    rows = await session.execute(
        select(
            col(Registration.registered_on), col(Registration.level), col(Registration.status)
        ).where(col(Registration.registered_on) >= first_month, counted)
    )
    for day, registered_level, status in rows.all():
        registered = date_of(day)
        assert registered is not None  # registered_on is never empty
        start = registered.replace(day=1)
        monthly[(start, registered_level)] += 1
        if status in WON:
            monthly_won[start] += 1
    median, overdue = await decision_times(session=session, now=now)
    return Numbers(
        today=today,
        partners_by_level={name: int(partners.get(name, 0)) for name in rules.levels},
        active_by_level={name: int(active.get(name, 0)) for name in rules.levels},
        registrations_month=await registrations_since(month),
        registrations_quarter=await registrations_since(quarter),
        registrations_year=await registrations_since(year),
        verdicts_year=int(sum(tallies.values())),
        qualified_year=int(tallies.get("new", 0)),
        won_year=won_year,
        expected=total(*(s.value for s in OPEN)),
        approved=total(Status.APPROVED.value),
        paid=total(Status.PAID.value),
        top_partners=[(str(c), str(n), int(k)) for c, n, k in top],
        monthly=dict(monthly),
        monthly_won=dict(monthly_won),
        decision_median=median,
        overdue_now=overdue,
    )
