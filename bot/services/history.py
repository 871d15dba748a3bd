"""Every status change of a registration: one function, the lifecycle's guard, the record kept."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bot.domain.actors import Actor, ActorKind
from bot.domain.errors import RegistrationNotFound, TransitionNotAllowed
from bot.domain.lifecycle import RELEASING, Status, check_transition
from bot.services.views import Account
from bot.storage.database import in_chunks
from models import Registration, Salesperson, StaffMember, StatusChange

SYSTEM = "system"
# How `changed_by` names people: a salesperson's and a staff member's Telegram id.
_SALESPERSON, _STAFF = "telegram:", "staff:"
PAID_BY = "staff:payouts"


# An erased salesperson (bot/services/privacy.py): their salesperson row's number only.
FORMER = "former:"


def actor_of(account: Account) -> str:
    return salesperson_actor(account.telegram_user_id)


def salesperson_actor(telegram_user_id: int) -> str:
    return f"{_SALESPERSON}{telegram_user_id}"


def staff_actor(telegram_user_id: int) -> str:
    return f"{_STAFF}{telegram_user_id}"


@dataclass(frozen=True)
class HistoryEntry:
    from_status: str | None
    to_status: str
    by: Actor
    at: dt.datetime
    note: str | None


async def histories_of(
    *, session: AsyncSession, ids: Sequence[int | None] | None = None
) -> dict[int, list[HistoryEntry]]:
    """Each registration's moves (these registrations', or all), oldest first, with who
    made them named."""
    everything = select(StatusChange).order_by(col(StatusChange.id))
    changes: list[StatusChange] = []
    if ids is None:
        changes += (await session.execute(everything)).scalars()
    for chunk in in_chunks(sorted({i for i in ids or () if i is not None})):
        changes += (
            await session.execute(everything.where(col(StatusChange.registration_id).in_(chunk)))
        ).scalars()
    people = await actors(session=session, recorded={c.changed_by for c in changes})
    found: dict[int, list[HistoryEntry]] = {i: [] for i in ids or () if i is not None}
    for c in changes:
        found.setdefault(c.registration_id, []).append(
            HistoryEntry(c.from_status, c.to_status, people[c.changed_by], c.changed_at, c.note)
        )
    return found


async def actors(*, session: AsyncSession, recorded: Iterable[str]) -> dict[str, Actor]:
    """Who each `changed_by` is, named where the bot knows the person's name."""
    codes = set(recorded)
    people = _ids(codes, _SALESPERSON)
    staff = _ids(codes, _STAFF)
    names: dict[str, str | None] = {}
    for chunk in in_chunks(sorted(people)):
        rows = await session.execute(
            select(col(Salesperson.telegram_user_id), col(Salesperson.display_name)).where(
                col(Salesperson.telegram_user_id).in_(chunk)
            )
        )
        names.update({f"{_SALESPERSON}{i}": name for i, name in rows.all()})
    for chunk in in_chunks(sorted(staff)):
        rows = await session.execute(
            select(col(StaffMember.telegram_user_id), col(StaffMember.display_name)).where(
                col(StaffMember.telegram_user_id).in_(chunk)
            )
        )
        names.update({f"{_STAFF}{i}": name for i, name in rows.all()})
    return {code: _actor(code, names.get(code)) for code in codes}


def _ids(codes: set[str], prefix: str) -> set[int]:
    return {
        int(code.removeprefix(prefix))
        for code in codes
        if code.startswith(prefix) and code.removeprefix(prefix).isdigit()
    }


def _actor(code: str, name: str | None) -> Actor:
    if code == PAID_BY:
        return Actor(ActorKind.PAYOUTS)
    if code.startswith(_STAFF):
        return Actor(ActorKind.STAFF, name)
    if code.startswith(_SALESPERSON):
        return Actor(ActorKind.SALESPERSON, name)
    if code.startswith(FORMER):
        return Actor(ActorKind.FORMER)
    return Actor(ActorKind.SYSTEM)


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
    session: AsyncSession,
    *,
    registration_id: int,
    by: str,
    at: dt.datetime,
    status: Status = Status.QUALIFIED,
    note: str | None = None,
) -> None:
    """Keep the first entry of a registration's history: born qualified, or disputed."""
    session.add(
        StatusChange(
            registration_id=registration_id,
            from_status=None,
            to_status=status.value,
            changed_by=by,
            changed_at=at,
            note=note,
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
