"""Every move of a registration is kept, with who made it and when."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.ext.asyncio import AsyncSession

from bot.lifecycle import Status
from bot.services.views import Account
from models import StatusChange

SYSTEM = "system"


def actor_of(account: Account) -> str:
    return f"telegram:{account.telegram_user_id}"


def record_change(
    session: AsyncSession,
    *,
    registration_id: int,
    from_status: str | None,
    to: Status,
    by: str,
    at: dt.datetime,
    note: str | None = None,
) -> None:
    session.add(
        StatusChange(
            registration_id=registration_id,
            from_status=from_status,
            to_status=to.value,
            changed_by=by,
            changed_at=at,
            note=note,
        )
    )
