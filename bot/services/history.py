"""Every status change of a registration: one function, the lifecycle's guard, the record kept."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bot.domain.errors import RegistrationNotFound, TransitionNotAllowed
from bot.domain.lifecycle import RELEASING, Status, check_transition
from bot.services.views import Account
from models import Registration, StatusChange

SYSTEM = "system"


def actor_of(account: Account) -> str:
    return f"telegram:{account.telegram_user_id}"


async def change_status(
    session: AsyncSession,
    *,
    registration_id: int,
    target: Status,
    by: str,
    at: dt.datetime,
    note: str | None = None,
) -> str:
    """Move a registration to `target` if its lifecycle allows it; return the status it left.

    The only way a status changes. The UPDATE names the status it read, so of two
    people (or two bot instances) moving the same registration at once exactly one
    succeeds; the other gets TransitionNotAllowed with the status it found. The
    caller commits.
    """
    current = await _status_of(session, registration_id)
    check_transition(current, target)
    values: dict[str, object] = {"status": target.value, "updated_at": at}
    if target in RELEASING:
        values["protection_key"] = None  # the customer is free for every partner again
    moved = await session.execute(
        update(Registration)
        .where(col(Registration.id) == registration_id, col(Registration.status) == current)
        .values(**values)
        .returning(col(Registration.id))
    )
    if moved.first() is None:
        raise TransitionNotAllowed(
            current=await _status_of(session, registration_id), target=target.value
        )
    session.add(
        StatusChange(
            registration_id=registration_id,
            from_status=current,
            to_status=target.value,
            changed_by=by,
            changed_at=at,
            note=note,
        )
    )
    return current


async def record_creation(
    session: AsyncSession, *, registration_id: int, by: str, at: dt.datetime
) -> None:
    """Keep the first entry of a registration's history: it was born qualified."""
    session.add(
        StatusChange(
            registration_id=registration_id,
            from_status=None,
            to_status=Status.QUALIFIED.value,
            changed_by=by,
            changed_at=at,
        )
    )


async def record_note(
    session: AsyncSession, *, registration_id: int, by: str, at: dt.datetime, note: str
) -> None:
    """Keep something said about a registration that moved nowhere ("still open")."""
    status = await _status_of(session, registration_id)
    session.add(
        StatusChange(
            registration_id=registration_id,
            from_status=status,
            to_status=status,
            changed_by=by,
            changed_at=at,
            note=note,
        )
    )


async def _status_of(session: AsyncSession, registration_id: int) -> str:
    status = (
        await session.execute(
            select(col(Registration.status)).where(col(Registration.id) == registration_id)
        )
    ).scalar_one_or_none()
    if status is None:
        raise RegistrationNotFound()
    return str(status)
