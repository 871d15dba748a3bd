"""Once a day, at the first moment the bot may write, a digest of overdue staff items to
each staff member and each id in PAI_ESCALATION_IDS (PRODUCT.md §5)."""

from __future__ import annotations

import logging

from telegram import Bot
from telegram.error import TelegramError

from bot.jobs.staff import staff_texts
from bot.resources import Resources
from bot.services.items import claim_digests, mark_digest, overdue_items
from bot.services.staff import staff_people
from handlers.render import digest_text

log = logging.getLogger(__name__)


async def send_overdue_digest(bot: Bot, shared: Resources) -> int:
    """Send today's digest to whoever has not had it; none when nothing is overdue.
    The caller checks quiet hours. Returns how many digests went out."""
    now = shared.now()
    async with shared.sessions() as session:
        items = await overdue_items(session=session, now=now)
    if not items:
        return 0
    settings = shared.settings
    day = shared.rules.today(now)
    async with shared.sessions() as session:
        chats = await claim_digests(
            session=session,
            day=day,
            chat_ids=sorted(settings.pai_admin_ids | settings.pai_escalation_ids),
        )
        people = await staff_people(session=session, ids=chats)
    sent = 0
    for chat in chats:
        texts = staff_texts(people[chat].telegram_language)
        try:
            await bot.send_message(chat, digest_text(texts, items, now), parse_mode="HTML")
            ok = True
        except TelegramError as exc:  # claimed all the same: never a second one today
            log.warning("the overdue digest did not reach someone: %s", type(exc).__name__)
            ok = False
        async with shared.sessions() as session:
            await mark_digest(session=session, day=day, chat_id=chat, sent=ok, now=shared.now())
        sent += ok
    return sent
