"""What the bot keeps about a salesperson, handed over or forgotten on request, and the
retention the tick applies (PRODUCT.md §8).

Erasure is one transaction: the person is unlinked; their name, @username, languages
and Telegram id leave the salesperson row, which keeps an opaque tombstone (a negative
number no Telegram account has) so the partner's registrations still say they were
made by "a former salesperson"; the history's "telegram:ID" becomes "former:ROW"; their
conversations, reminders and broadcast deliveries are deleted. The partner keeps its
registrations and their quotes. The same Telegram account is a stranger afterwards and
can be invited again as someone new.

On SQLite, deleted and overwritten bytes are zeroed as they are freed (`secure_delete`,
bot/storage/database.py) and the write-ahead log is emptied after an erasure, so the
person's name cannot be read back from the file either.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bot.domain.lifecycle import Status
from bot.domain.rules import Rules
from bot.services.history import FORMER, histories_of, salesperson_actor
from models import (
    AccessLog,
    Broadcast,
    BroadcastDelivery,
    ConversationState,
    Partner,
    Registration,
    Reminder,
    Salesperson,
    StatusChange,
    ViesCheck,
)

# Registrations that are over: their typed customer names go after `retention_days`.
ENDED = (
    Status.LOST,
    Status.EXPIRED,
    Status.REJECTED,
    Status.PAID,
    Status.REFUSED,
    Status.REVOKED,
)
DELIVERIES_KEPT = dt.timedelta(days=180)
ACCESS_KEPT = dt.timedelta(days=365)
# VIES's answers serve 30 days; a sole trader's name and address are personal data, so
# the rows go a while after (a later /check asks VIES again).
VIES_KEPT = dt.timedelta(days=90)
CLI = "cli"


@dataclass(frozen=True)
class Holdings:
    """What the bot holds about one person: kinds and counts, not the data itself."""

    partner: str
    linked_at: dt.datetime
    has_name: bool
    has_username: bool
    language: str | None
    reminders_enabled: bool
    registrations: int
    reminders: int
    deliveries: int
    conversations: int


async def _person(session: AsyncSession, telegram_user_id: int) -> Salesperson | None:
    return (
        await session.execute(
            select(Salesperson).where(col(Salesperson.telegram_user_id) == telegram_user_id)
        )
    ).scalar_one_or_none()


async def _count(session: AsyncSession, statement: Any) -> int:
    return int((await session.execute(statement)).scalar_one())


async def holdings_of(*, session: AsyncSession, telegram_user_id: int) -> Holdings | None:
    """The kinds and counts of what is kept about this Telegram account; None: nothing."""
    person = await _person(session, telegram_user_id)
    if person is None or person.id is None:
        return None
    partner = await session.get(Partner, person.partner_id)
    made = select(func.count()).select_from(Registration)
    return Holdings(
        partner=partner.company if partner else "",
        linked_at=person.linked_at,
        has_name=bool(person.display_name),
        has_username=bool(person.username),
        language=person.language or person.telegram_language,
        reminders_enabled=person.reminders_enabled,
        registrations=await _count(
            session, made.where(col(Registration.salesperson_id) == person.id)
        ),
        reminders=await _count(
            session,
            select(func.count())
            .select_from(Reminder)
            .where(col(Reminder.salesperson_id) == person.id),
        ),
        deliveries=await _count(
            session,
            select(func.count())
            .select_from(BroadcastDelivery)
            .where(col(BroadcastDelivery.salesperson_id) == person.id),
        ),
        conversations=await _count(
            session,
            select(func.count())
            .select_from(ConversationState)
            .where(col(ConversationState.telegram_user_id) == telegram_user_id),
        ),
    )


async def export_of(*, session: AsyncSession, telegram_user_id: int) -> dict[str, Any] | None:
    """Everything about the person, as JSON-ready values: their row, their partner's
    name, the registrations they made with their history, their settings, their
    reminders. None when the bot holds nothing about this account."""
    person = await _person(session, telegram_user_id)
    if person is None or person.id is None:
        return None
    partner = await session.get(Partner, person.partner_id)
    registrations = list(
        (
            await session.execute(
                select(Registration)
                .where(col(Registration.salesperson_id) == person.id)
                .order_by(col(Registration.id))
            )
        ).scalars()
    )
    histories = await histories_of(session=session, ids=[r.id for r in registrations])
    reminders = list(
        (
            await session.execute(
                select(Reminder)
                .where(col(Reminder.salesperson_id) == person.id)
                .order_by(col(Reminder.id))
            )
        ).scalars()
    )
    return {
        "person": {
            "telegram_id": person.telegram_user_id,
            "name": person.display_name,
            "username": person.username,
            "telegram_language": person.telegram_language,
            "linked_at": _moment(person.linked_at),
            "last_seen_at": _moment(person.last_seen_at),
            "unlinked_at": _moment(person.unlinked_at),
            "unreachable_at": _moment(person.unreachable_at),
        },
        "partner": partner.company if partner else None,
        "settings": {"language": person.language, "reminders": person.reminders_enabled},
        "registrations": [
            {
                "reference": r.reference,
                "vat": r.vat,
                "customer_name": r.customer_name,
                "status": r.status,
                "registered_on": r.registered_on.isoformat(),
                "protected_until": r.protected_until.isoformat(),
                "deal_value": str(r.deal_value),
                "product": r.product,
                "expected_close": r.expected_close.isoformat(),
                "incentive": {"amount": str(r.incentive_amount), "currency": r.currency},
                "history": [
                    {
                        "at": _moment(entry.at),
                        "from": entry.from_status,
                        "to": entry.to_status,
                        "by": entry.by.kind.value,
                        "note": entry.note,
                    }
                    for entry in histories.get(r.id or 0, [])
                ],
            }
            for r in registrations
        ],
        "reminders": [
            {"kind": m.kind, "due_on": m.due_on.isoformat(), "status": m.status} for m in reminders
        ],
    }


def _moment(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(dt.UTC).isoformat()


async def erase(*, session: AsyncSession, telegram_user_id: int, now: dt.datetime) -> bool:
    """Forget the person behind this Telegram account, in one transaction; False when
    there is nobody to forget (never linked, or erased already)."""
    person = await _person(session, telegram_user_id)
    if person is None or person.id is None:
        return False
    tombstone = -(secrets.randbelow(2**62) + 1)  # no Telegram id is negative
    await session.execute(
        update(Salesperson)
        .where(col(Salesperson.id) == person.id)
        .values(
            telegram_user_id=tombstone,
            display_name=None,
            username=None,
            language=None,
            telegram_language=None,
            reminders_enabled=False,
            last_seen_at=None,
            unreachable_at=None,
            unlinked_at=person.unlinked_at or now,
        )
    )
    await session.execute(
        update(StatusChange)
        .where(col(StatusChange.changed_by) == salesperson_actor(telegram_user_id))
        .values(changed_by=f"{FORMER}{person.id}")
    )
    await session.execute(
        delete(ConversationState).where(col(ConversationState.telegram_user_id) == telegram_user_id)
    )
    await session.execute(delete(Reminder).where(col(Reminder.salesperson_id) == person.id))
    await session.execute(
        delete(BroadcastDelivery).where(col(BroadcastDelivery.salesperson_id) == person.id)
    )
    await session.commit()
    await _empty_the_log(session)
    return True


async def _empty_the_log(session: AsyncSession) -> None:
    """SQLite keeps recent pages in its write-ahead log: written back and emptied, the
    old versions of the person's row are gone from the disk too."""
    if session.get_bind().dialect.name == "sqlite":
        await session.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))


# --- retention --------------------------------------------------------------------------


@dataclass
class Retained:
    names_cleared: int = 0
    deliveries_deleted: int = 0
    access_deleted: int = 0
    vies_deleted: int = 0


async def apply_retention(*, session: AsyncSession, rules: Rules, now: dt.datetime) -> Retained:
    """The tick's retention: typed customer names of registrations over for longer than
    `retention_days`; broadcast deliveries after 180 days; the access log after a year;
    VIES's answers 90 days after they were given."""
    done = Retained()
    ended = [s.value for s in ENDED]
    cleared = await session.execute(
        update(Registration)
        .where(
            col(Registration.status).in_(ended),
            col(Registration.updated_at) < now - rules.privacy.retention,
            col(Registration.customer_name) != "",
        )
        .values(customer_name="", name_block=None)
    )
    done.names_cleared = _changed(cleared)
    old = select(col(Broadcast.id)).where(col(Broadcast.created_at) < now - DELIVERIES_KEPT)
    deleted = await session.execute(
        delete(BroadcastDelivery).where(col(BroadcastDelivery.broadcast_id).in_(old))
    )
    done.deliveries_deleted = _changed(deleted)
    gone = await session.execute(delete(AccessLog).where(col(AccessLog.at) < now - ACCESS_KEPT))
    done.access_deleted = _changed(gone)
    stale = await session.execute(
        delete(ViesCheck).where(
            col(ViesCheck.answered_at) < now - VIES_KEPT, col(ViesCheck.retry_at).is_(None)
        )
    )
    done.vies_deleted = _changed(stale)
    await session.commit()
    return done


def _changed(result: Any) -> int:
    """Rows an UPDATE or DELETE touched (a CursorResult's rowcount)."""
    return int(cast(CursorResult[Any], result).rowcount or 0)


# --- the access log -------------------------------------------------------------------


def staff_who(telegram_user_id: int) -> str:
    return f"staff:{telegram_user_id}"


async def record_access(*, session: AsyncSession, who: str, what: str, now: dt.datetime) -> None:
    """Note a staff look-up of partners' data (committed here)."""
    session.add(AccessLog(at=now, who=who[:40], what=what[:200]))
    await session.commit()


@dataclass(frozen=True)
class Access:
    at: dt.datetime
    who: str
    what: str


async def access_log(*, session: AsyncSession, since: dt.datetime | None) -> list[Access]:
    statement = select(AccessLog).order_by(col(AccessLog.at), col(AccessLog.id))
    if since is not None:
        statement = statement.where(col(AccessLog.at) >= since)
    return [
        Access(row.at, row.who, row.what) for row in (await session.execute(statement)).scalars()
    ]
