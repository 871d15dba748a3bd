"""Staff's side of a won deal: asked to decide when a partner reports it won, and, once
one of them decided, the partner told and every staff copy of the question edited."""

from __future__ import annotations

import logging

from telegram import Bot
from telegram.error import TelegramError

from bot.events import DealDecided, DealWon
from bot.i18n import Texts, language_for
from bot.resources import Resources
from bot.services.staff import (
    Decision,
    deal_by_reference,
    keep_notice,
    notices_of,
    people_to_tell,
    staff_people,
)
from bot.telegram.context import App
from bot.telegram.sending import best_effort
from handlers.render import deal_text_markup, decided_text, decision_buttons, decision_told

log = logging.getLogger(__name__)


def attend_to_staff_items(application: App) -> None:
    """Wire the events staff act on to what follows from them."""
    shared = application.bot_data.resources

    async def won(event: DealWon) -> None:
        await ask_staff_to_decide(application.bot, shared, event.reference)

    async def decided(event: DealDecided) -> None:
        await make_decision_known(application.bot, shared, event)

    shared.events.listen(DealWon, won)
    shared.events.listen(DealDecided, decided)


async def ask_staff_to_decide(bot: Bot, shared: Resources, reference: str) -> None:
    """Ask every staff member, in their language, to approve or reject a deal reported won."""
    staff_ids = shared.settings.pai_admin_ids
    async with shared.sessions() as session:
        deal = await deal_by_reference(session=session, reference=reference)
        people = await staff_people(session=session, ids=staff_ids)
    for staff_id, person in people.items():
        texts = staff_texts(person.telegram_language)
        try:
            message = await bot.send_message(
                staff_id,
                texts("staff_won", deal=deal_text_markup(texts, deal)),
                parse_mode="HTML",
                reply_markup=decision_buttons(texts, reference),
            )
        except TelegramError as exc:  # a staff member who never opened the bot
            log.warning("could not tell a staff member about a won deal: %s", exc)
            continue
        async with shared.sessions() as session:
            await keep_notice(
                session=session,
                registration_id=deal.registration.id,
                chat_id=staff_id,
                message_id=message.message_id,
            )


async def make_decision_known(bot: Bot, shared: Resources, event: DealDecided) -> None:
    """Tell the partner the outcome; every staff copy now says who decided, buttons gone."""
    async with shared.sessions() as session:
        deal = await deal_by_reference(session=session, reference=event.reference)
        readers = await people_to_tell(session=session, reference=event.reference)
        notices = await notices_of(session=session, registration_id=deal.registration.id)
        people = await staff_people(session=session, ids={event.by, *(c for c, _ in notices)})
    decision = Decision(deal, event.approved, event.reason)
    for reader in readers:
        texts = Texts(language_for(chosen=reader.language, telegram_code=reader.telegram_language))
        await best_effort(
            "telling a partner the decision",
            bot.send_message(
                reader.telegram_user_id, decision_told(texts, decision), parse_mode="HTML"
            ),
        )
    who = people[event.by].name or ""
    for chat_id, message_id in notices:
        texts = staff_texts(people[chat_id].telegram_language)
        await best_effort(
            "marking a staff message decided",
            bot.edit_message_text(
                decided_text(texts, decision, who=who),
                chat_id=chat_id,
                message_id=message_id,
                parse_mode="HTML",
            ),
        )


def staff_texts(telegram_language: str | None) -> Texts:
    """Staff read their Telegram language, in chat and in what the bot starts alike."""
    return Texts(language_for(chosen=None, telegram_code=telegram_language))
