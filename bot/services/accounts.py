"""Partners, their invites and the Telegram accounts linked to them."""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bot.domain.errors import InviteInvalid, NotLinked, UnknownPartner
from bot.domain.parsing import strip_control
from bot.services.views import Account, PartnerView, SalespersonView
from bot.storage.database import dialect_insert, in_chunks
from bot.storage.rows import RowReads
from models import (
    LANGUAGE_CODE_LENGTH,
    NAME_LENGTH,
    USERNAME_LENGTH,
    BotState,
    Invite,
    Partner,
    Salesperson,
)

INVITE_LIFETIME = dt.timedelta(days=7)
BOT_USERNAME_KEY = "bot_username"
WEBHOOK_SECRET_KEY = "webhook_secret"
# "Last seen" is for staff deciding who has left: to the quarter hour is plenty, and it
# spares a write on every message.
LAST_SEEN_PRECISION = dt.timedelta(minutes=15)


@dataclass(frozen=True)
class InviteLink:
    token: str
    partner_code: str
    company: str
    expires_at: dt.datetime

    def url(self, bot_username: str) -> str:
        return f"https://t.me/{bot_username}?start={self.token}"


@dataclass(frozen=True)
class Visitor:
    """Who Telegram says is writing: what we keep about a salesperson, fresh each time."""

    telegram_user_id: int
    language_code: str | None = None
    display_name: str | None = None
    username: str | None = None


@dataclass(frozen=True)
class InvitePreview:
    """What opening an invite would do, before it is used."""

    partner: PartnerView
    # The partner the account works for now; None for someone new.
    current: PartnerView | None

    @property
    def moves(self) -> bool:
        return self.current is not None and self.current.code != self.partner.code


async def create_invite(
    *, session: AsyncSession, partner_code: str, now: dt.datetime
) -> InviteLink:
    partner = await partner_by_code(session=session, code=partner_code)
    assert partner.id is not None
    # 24 random bytes: 32 URL-safe characters, within the 64 a deep link allows.
    invite = Invite(
        token=secrets.token_urlsafe(24),
        partner_id=partner.id,
        created_at=now,
        expires_at=now + INVITE_LIFETIME,
    )
    session.add(invite)
    await session.commit()
    return InviteLink(invite.token, partner.code, partner.company, invite.expires_at)


async def partner_by_code(*, session: AsyncSession, code: str) -> Partner:
    statement = select(Partner).where(col(Partner.code) == code.strip().upper())
    partner = (await session.execute(statement)).scalar_one_or_none()
    if partner is None:
        raise UnknownPartner(code=code)
    return partner


async def preview_invite(
    *, session: AsyncSession, token: str, telegram_user_id: int, now: dt.datetime
) -> InvitePreview:
    """The partner an unused, unexpired invite is for, and the one the account has now."""
    row = (
        await session.execute(
            select(Partner)
            .join(Invite, col(Invite.partner_id) == col(Partner.id))
            .where(
                col(Invite.token) == token,
                col(Invite.used_at).is_(None),
                col(Invite.expires_at) > now,
            )
        )
    ).scalar_one_or_none()
    if row is None:
        raise InviteInvalid()
    account = await find_account(session=session, telegram_user_id=telegram_user_id)
    current = None
    if account is not None:
        current = PartnerView(account.partner_code, account.company, account.level)
    return InvitePreview(partner=PartnerView.of(row), current=current)


async def redeem_invite(
    *, session: AsyncSession, token: str, visitor: Visitor, now: dt.datetime
) -> Account:
    """Link the Telegram account to the invite's partner; each invite works once."""
    # One conditional UPDATE claims the invite, so two people racing for it
    # cannot both succeed.
    claimed = await session.execute(
        update(Invite)
        .where(
            col(Invite.token) == token,
            col(Invite.used_at).is_(None),
            col(Invite.expires_at) > now,
        )
        .values(used_at=now)
        .returning(col(Invite.id), col(Invite.partner_id))
    )
    row = claimed.first()
    if row is None:
        await session.rollback()
        raise InviteInvalid()
    invite_id, partner_id = row
    salesperson = await _salesperson_by_telegram_id(
        session=session, telegram_user_id=visitor.telegram_user_id
    )
    if salesperson is None:
        salesperson = Salesperson(telegram_user_id=visitor.telegram_user_id, partner_id=partner_id)
        session.add(salesperson)
    # A salesperson who moved to another partner (or came back after being
    # unlinked) follows the newer invite; their old partner keeps its registrations.
    salesperson.partner_id = partner_id
    salesperson.linked_at = now
    salesperson.unlinked_at = None
    kept = {name: getattr(salesperson, name) for name in _VISITED}
    for name, value in _visit(kept, visitor, now).items():
        setattr(salesperson, name, value)
    await session.flush()
    await session.execute(
        update(Invite)
        .where(col(Invite.id) == invite_id)
        .values(used_by_salesperson_id=salesperson.id)
    )
    partner = await session.get(Partner, partner_id)
    assert partner is not None
    account = Account.of(salesperson, partner)
    await session.commit()
    return account


async def _salesperson_by_telegram_id(
    *, session: AsyncSession, telegram_user_id: int
) -> Salesperson | None:
    statement = select(Salesperson).where(col(Salesperson.telegram_user_id) == telegram_user_id)
    return (await session.execute(statement)).scalar_one_or_none()


# Who is writing, read on every update: built once, one row of plain columns (no
# ORM objects to load and track for a read that changes nothing).
_SALESPEOPLE: Table = Salesperson.__table__  # type: ignore[attr-defined]
_PARTNERS: Table = Partner.__table__  # type: ignore[attr-defined]
_RECOGNISE = (
    select(
        _SALESPEOPLE.c.id.label("salesperson_id"),
        _SALESPEOPLE.c.telegram_user_id,
        _SALESPEOPLE.c.language,
        _SALESPEOPLE.c.telegram_language,
        _SALESPEOPLE.c.reminders_enabled,
        _SALESPEOPLE.c.display_name,
        _SALESPEOPLE.c.username,
        _SALESPEOPLE.c.last_seen_at,
        _SALESPEOPLE.c.unreachable_at,
        _PARTNERS.c.id.label("partner_id"),
        _PARTNERS.c.code.label("partner_code"),
        _PARTNERS.c.company,
        _PARTNERS.c.level,
    )
    .join_from(_SALESPEOPLE, _PARTNERS, _PARTNERS.c.id == _SALESPEOPLE.c.partner_id)
    .where(
        _SALESPEOPLE.c.telegram_user_id == bindparam("user"),
        _SALESPEOPLE.c.unlinked_at.is_(None),
    )
)


async def _account_row(session: AsyncSession, telegram_user_id: int) -> Any:
    """The row of `_RECOGNISE` (an account's columns, named as `Account`'s fields), or None."""
    return (await session.execute(_RECOGNISE, {"user": telegram_user_id})).first()


async def find_account(*, session: AsyncSession, telegram_user_id: int) -> Account | None:
    """The linked salesperson behind a Telegram account; None for strangers and the unlinked."""
    row = await _account_row(session, telegram_user_id)
    return None if row is None else Account.from_columns(row._mapping)


async def _linked(
    session: AsyncSession, telegram_user_id: int
) -> tuple[Salesperson, Partner] | None:
    """The same as `_RECOGNISE`, as objects to change."""
    statement = (
        select(Salesperson, Partner)
        .join(Partner, col(Partner.id) == col(Salesperson.partner_id))
        .where(
            col(Salesperson.telegram_user_id) == telegram_user_id,
            col(Salesperson.unlinked_at).is_(None),
        )
    )
    row = (await session.execute(statement)).first()
    return None if row is None else (row[0], row[1])


@dataclass(frozen=True)
class Recognised:
    """A visitor's account, and what Telegram reported that we have not kept yet."""

    account: Account
    # Columns of the salesperson to update; empty when nothing changed.
    visit: dict[str, object]


async def recognise(
    *, session: AsyncSession, visitor: Visitor, now: dt.datetime
) -> Recognised | None:
    """The visitor's account (None for strangers), and the visit to note: one read, no write.

    Noting the visit (language, name, "last seen") is left to `note_visit`, which the
    bot runs beside the answer: bookkeeping never makes a user wait for a lock.
    """
    row = await _account_row(session, visitor.telegram_user_id)
    return _recognised(None if row is None else row._mapping, visitor, now)


async def recognise_in_one_read(
    *, rows: RowReads, visitor: Visitor, now: dt.datetime
) -> Recognised | None:
    """`recognise`, in one round trip to the database (bot/storage/rows.py): the read
    every update makes."""
    row = await rows.first(_RECOGNISE, {"user": visitor.telegram_user_id})
    return _recognised(row, visitor, now)


def _recognised(
    row: Mapping[str, Any] | None, visitor: Visitor, now: dt.datetime
) -> Recognised | None:
    if row is None:
        return None
    visit = _visit(row, visitor, now)
    account = Account.from_columns(row)
    language = visit.get("telegram_language")
    if isinstance(language, str):  # answer in the language just reported
        account = dataclasses.replace(account, telegram_language=language)
    return Recognised(account=account, visit=visit)


async def note_visit(
    *, session: AsyncSession, telegram_user_id: int, visit: dict[str, object]
) -> None:
    await session.execute(
        update(Salesperson)
        .where(col(Salesperson.telegram_user_id) == telegram_user_id)
        .values(**visit)
    )
    await session.commit()


def visit_values(visitor: Visitor) -> dict[str, str | None]:
    """What Telegram reports about a person, as kept: cleaned and cut to the columns."""
    return {
        "telegram_language": strip_control(visitor.language_code or "")[:LANGUAGE_CODE_LENGTH]
        or None,
        "display_name": strip_control(visitor.display_name or "").strip()[:NAME_LENGTH] or None,
        "username": strip_control(visitor.username or "")[:USERNAME_LENGTH] or None,
    }


# What a visit may bring up to date about a salesperson.
_VISITED = ("telegram_language", "display_name", "username", "last_seen_at", "unreachable_at")


def _visit(salesperson: Mapping[str, Any], visitor: Visitor, now: dt.datetime) -> dict[str, object]:
    """What Telegram reports about the salesperson (a row of `_RECOGNISE`) that differs
    from what we keep."""
    fresh = visit_values(visitor)
    visit: dict[str, object] = {
        name: value
        for name, value in fresh.items()
        if value is not None and salesperson[name] != value
    }
    seen = salesperson["last_seen_at"]
    if seen is None or now - seen >= LAST_SEEN_PRECISION:
        visit["last_seen_at"] = now
    if salesperson["unreachable_at"] is not None:
        visit["unreachable_at"] = None  # they talk to the bot again: it may write first
    return visit


async def mark_unreachable(
    *, session: AsyncSession, people: Sequence[int], now: dt.datetime
) -> None:
    """These salespeople blocked the bot (403): it writes first to them no more until they
    talk to it again. The caller commits, with the sends that found it out."""
    for chunk in in_chunks(sorted(set(people))):
        await session.execute(
            update(Salesperson).where(col(Salesperson.id).in_(chunk)).values(unreachable_at=now)
        )


async def update_preferences(
    *,
    session: AsyncSession,
    telegram_user_id: int,
    language: str | None = None,
    reminders_enabled: bool | None = None,
) -> Account:
    row = await _linked(session, telegram_user_id)
    if row is None:
        raise NotLinked()
    salesperson, partner = row
    if language is not None:
        salesperson.language = language
    if reminders_enabled is not None:
        salesperson.reminders_enabled = reminders_enabled
    account = Account.of(salesperson, partner)
    await session.commit()
    return account


async def list_salespeople(
    *, session: AsyncSession, partner_code: str | None = None
) -> list[SalespersonView]:
    """Who is linked to which partner (all partners, or one), by partner then by name."""
    statement = (
        select(Salesperson, col(Partner.code))
        .join(Partner, col(Partner.id) == col(Salesperson.partner_id))
        .where(col(Salesperson.unlinked_at).is_(None))
        .order_by(col(Partner.code), col(Salesperson.display_name), col(Salesperson.id))
    )
    if partner_code is not None:
        partner = await partner_by_code(session=session, code=partner_code)
        statement = statement.where(col(Partner.id) == partner.id)
    rows = (await session.execute(statement)).all()
    return [SalespersonView.of(salesperson, code) for salesperson, code in rows]


async def unlink_salesperson(
    *, session: AsyncSession, telegram_user_id: int, now: dt.datetime
) -> SalespersonView:
    """Take a person's access away at once; the partner keeps every registration they made."""
    row = await _linked(session, telegram_user_id)
    if row is None:
        raise NotLinked()
    salesperson, partner = row
    salesperson.unlinked_at = now
    view = SalespersonView.of(salesperson, partner.code)
    await session.commit()
    return view


async def remember_bot_username(*, session: AsyncSession, username: str) -> None:
    """One statement: instances starting together must not both insert it."""
    await session.execute(
        dialect_insert(session, BotState)
        .values(key=BOT_USERNAME_KEY, value=username)
        .on_conflict_do_update(index_elements=["key"], set_={"value": username})
    )
    await session.commit()


async def remembered_or_new_webhook_secret(*, session: AsyncSession, candidate: str) -> str:
    """The webhook secret kept in the database; `candidate` becomes it when there is none.
    Two instances starting at once agree: the first one's is kept, the other reads it."""
    await session.execute(
        dialect_insert(session, BotState)
        .values(key=WEBHOOK_SECRET_KEY, value=candidate)
        .on_conflict_do_nothing(index_elements=["key"])
    )
    await session.commit()
    state = await session.get(BotState, WEBHOOK_SECRET_KEY, populate_existing=True)
    assert state is not None
    return state.value


async def remembered_bot_username(*, session: AsyncSession) -> str | None:
    state = await session.get(BotState, BOT_USERNAME_KEY)
    return None if state is None else state.value
