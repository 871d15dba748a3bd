"""Where partners stand for loyalty: the count, the multiplier, and what keeps or raises it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bot.domain.lifecycle import NOT_COUNTED
from bot.domain.rules import LoyaltyStanding, Rules, loyalty_standing, loyalty_window
from bot.storage.database import in_chunks
from models import Registration

# Registrations that count towards loyalty: all but those staff rejected or refused and
# disputes still waiting. The quote, /status and /stats share it.
COUNTS_FOR_LOYALTY = col(Registration.status).not_in([s.value for s in NOT_COUNTED])


async def loyalty_standings(
    *, session: AsyncSession, rules: Rules, today: dt.date, partner_ids: Sequence[int]
) -> dict[int, LoyaltyStanding]:
    """Each partner's loyalty standing, from one query per thousand partners."""
    dates: dict[int, list[dt.date]] = {partner: [] for partner in partner_ids}
    first, last = loyalty_window(rules, today)
    for chunk in in_chunks(partner_ids):
        result = await session.execute(
            select(col(Registration.partner_id), col(Registration.registered_on)).where(
                col(Registration.partner_id).in_(chunk),
                col(Registration.registered_on).between(first, last),
                COUNTS_FOR_LOYALTY,
            )
        )
        for partner, day in result.all():
            dates[partner].append(day)
    return {partner: loyalty_standing(rules, today, days) for partner, days in dates.items()}


async def partner_standing(
    *, session: AsyncSession, rules: Rules, partner_id: int, now: dt.datetime
) -> LoyaltyStanding:
    """One partner's loyalty standing today, for /status."""
    standings = await loyalty_standings(
        session=session, rules=rules, today=rules.today(now), partner_ids=[partner_id]
    )
    return standings[partner_id]
