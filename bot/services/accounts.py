"""Partners, their invites and the Telegram accounts linked to them."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bot.errors import InviteInvalid, NotLinked, UnknownPartner
from bot.services.views import Account
from models import BotState, Invite, Partner, Salesperson, utcnow

INVITE_LIFETIME = dt.timedelta(days=7)
BOT_USERNAME_KEY = "bot_username"


@dataclass(frozen=True)
class InviteLink:
    token: str
    partner_code: str
    company: str
    expires_at: dt.datetime

    def url(self, bot_username: str) -> str:
        return f"https://t.me/{bot_username}?start={self.token}"


async def create_invite(
    *, session: AsyncSession, partner_code: str, now: dt.datetime | None = None
) -> InviteLink:
    partner = await partner_by_code(session=session, code=partner_code)
    assert partner.id is not None
    moment = now or utcnow()
    # 24 random bytes: 32 URL-safe characters, within the 64 a deep link allows.
    invite = Invite(
        token=secrets.token_urlsafe(24),
        partner_id=partner.id,
        created_at=moment,
        expires_at=moment + INVITE_LIFETIME,
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


async def redeem_invite(
    *,
    session: AsyncSession,
    token: str,
    telegram_user_id: int,
    now: dt.datetime | None = None,
) -> Account:
    """Link the Telegram account to the invite's partner; each invite works once."""
    moment = now or utcnow()
    # One conditional UPDATE claims the invite, so two people racing for it
    # cannot both succeed.
    claimed = await session.execute(
        update(Invite)
        .where(
            col(Invite.token) == token,
            col(Invite.used_at).is_(None),
            col(Invite.expires_at) > moment,
        )
        .values(used_at=moment)
        .returning(col(Invite.id), col(Invite.partner_id))
    )
    row = claimed.first()
    if row is None:
        await session.rollback()
        raise InviteInvalid()
    invite_id, partner_id = row
    salesperson = await _salesperson_by_telegram_id(
        session=session, telegram_user_id=telegram_user_id
    )
    if salesperson is None:
        salesperson = Salesperson(telegram_user_id=telegram_user_id, partner_id=partner_id)
        session.add(salesperson)
    else:
        # A salesperson who moved to another partner follows the newer invite.
        salesperson.partner_id = partner_id
        salesperson.linked_at = moment
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


async def find_account(*, session: AsyncSession, telegram_user_id: int) -> Account | None:
    statement = (
        select(Salesperson, Partner)
        .join(Partner, col(Partner.id) == col(Salesperson.partner_id))
        .where(col(Salesperson.telegram_user_id) == telegram_user_id)
    )
    row = (await session.execute(statement)).first()
    return None if row is None else Account.of(row[0], row[1])


async def update_preferences(
    *,
    session: AsyncSession,
    telegram_user_id: int,
    language: str | None = None,
    reminders_enabled: bool | None = None,
) -> Account:
    salesperson = await _salesperson_by_telegram_id(
        session=session, telegram_user_id=telegram_user_id
    )
    if salesperson is None:
        raise NotLinked()
    if language is not None:
        salesperson.language = language
    if reminders_enabled is not None:
        salesperson.reminders_enabled = reminders_enabled
    partner = await session.get(Partner, salesperson.partner_id)
    assert partner is not None
    account = Account.of(salesperson, partner)
    await session.commit()
    return account


async def remember_bot_username(*, session: AsyncSession, username: str) -> None:
    state = await session.get(BotState, BOT_USERNAME_KEY)
    if state is None:
        session.add(BotState(key=BOT_USERNAME_KEY, value=username))
    else:
        state.value = username
    await session.commit()


async def remembered_bot_username(*, session: AsyncSession) -> str | None:
    state = await session.get(BotState, BOT_USERNAME_KEY)
    return None if state is None else state.value
