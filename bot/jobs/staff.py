"""Staff's side of a won deal: asked to decide when a partner reports it won, and, once
one of them decided, the partner told and every staff copy of the question edited."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

from telegram import Bot
from telegram.error import TelegramError

from bot.domain.items import ItemKind
from bot.events import DealDecided, DealWon, ItemArrived, ItemDecided, ProofAdded
from bot.i18n import Markup, Texts, language_for
from bot.resources import Resources
from bot.services.items import (
    item_notices,
    item_view,
    keep_item_notice,
    open_item_of,
)
from bot.services.similar import similar_customers
from bot.services.staff import (
    Decision,
    Reader,
    StaffPerson,
    deal_by_reference,
    notices_of,
    people_to_tell,
    revoked_by,
    staff_people,
)
from bot.services.vies import vies_of
from bot.telegram.context import App
from bot.telegram.sending import best_effort
from handlers.files import send_file
from handlers.render import (
    decided_text,
    decision_told,
    item_buttons,
    item_decided_text,
    item_text,
    item_told,
    revoked_told,
    staff_vies_line,
)

log = logging.getLogger(__name__)


def attend_to_staff_items(application: App) -> None:
    """Wire the events staff act on to what follows from them."""
    shared = application.bot_data.resources

    async def won(event: DealWon) -> None:
        await ask_staff_to_decide(application.bot, shared, event.reference)

    async def decided(event: DealDecided) -> None:
        await make_decision_known(application.bot, shared, event)

    async def arrived(event: ItemArrived) -> None:
        await ask_staff_about(application.bot, shared, event.item_id)

    async def item_decided(event: ItemDecided) -> None:
        await make_item_decision_known(application.bot, shared, event)

    async def proof(event: ProofAdded) -> None:
        await show_staff_proof(application.bot, shared, event.reference)

    shared.events.listen(DealWon, won)
    shared.events.listen(DealDecided, decided)
    shared.events.listen(ItemArrived, arrived)
    shared.events.listen(ItemDecided, item_decided)
    shared.events.listen(ProofAdded, proof)


async def ask_staff_to_decide(bot: Bot, shared: Resources, reference: str) -> None:
    """Ask every staff member, in their language, to approve or reject a deal reported won."""
    async with shared.sessions() as session:
        deal = await deal_by_reference(session=session, reference=reference)
        item = await open_item_of(
            session=session, registration_id=deal.registration.id, kind=ItemKind.WON
        )
    if item is not None and item.id is not None:
        await ask_staff_about(bot, shared, item.id)


async def ask_staff_about(bot: Bot, shared: Resources, item_id: int) -> None:
    """Put an item before every staff member, in their language, with its buttons, the
    files sent with it, and the customers with similar names."""
    staff_ids = shared.settings.pai_admin_ids
    now = shared.now()
    async with shared.sessions() as session:
        item = await item_view(session=session, item_id=item_id)
        similar = await similar_customers(
            session=session,
            vat=item.registration.vat,
            name=item.registration.customer_name,
            today=shared.rules.today(now),
        )
        vat = item.registration.vat
        vies = (await vies_of(session=session, vats=[vat])).get(vat)
        people = await staff_people(session=session, ids=staff_ids)
    for staff_id, person in people.items():
        texts = staff_texts(person.telegram_language)
        body = "\n".join(
            part
            for part in (
                item_text(texts, shared.rules, item, now, similar),
                staff_vies_line(texts, vies),
            )
            if part
        )
        text = texts("staff_won", deal=Markup(body)) if item.kind == ItemKind.WON else body
        try:
            message = await bot.send_message(
                staff_id, text, parse_mode="HTML", reply_markup=item_buttons(texts, item)
            )
        except TelegramError as exc:  # a staff member who never opened the bot
            log.warning("could not tell a staff member about an item: %s", exc)
            continue
        async with shared.sessions() as session:
            await keep_item_notice(
                session=session,
                item_id=item.id,
                registration_id=item.registration.id,
                chat_id=staff_id,
                message_id=message.message_id,
            )
        for sent in item.files:
            await send_file(bot, staff_id, texts, item.registration.reference, sent)


async def show_staff_proof(bot: Bot, shared: Resources, reference: str) -> None:
    """Proof that came after the won deal reached staff: shown to each of them."""
    async with shared.sessions() as session:
        deal = await deal_by_reference(session=session, reference=reference)
        item = await open_item_of(
            session=session, registration_id=deal.registration.id, kind=ItemKind.WON
        )
        if item is None or item.id is None:
            return
        view = await item_view(session=session, item_id=item.id)
        people = await staff_people(session=session, ids=shared.settings.pai_admin_ids)
    proofs = [f for f in view.files if f.purpose == "proof"]
    if not proofs:
        return
    for staff_id, person in people.items():
        texts = staff_texts(person.telegram_language)
        await send_file(bot, staff_id, texts, reference, proofs[-1])


async def make_item_decision_known(bot: Bot, shared: Resources, event: ItemDecided) -> None:
    """Tell the partner the outcome (and a holder whose protection staff ended, never
    who contested); every staff copy now says who decided, buttons gone."""
    async with shared.sessions() as session:
        item = await item_view(session=session, item_id=event.item_id)
        reference = item.registration.reference
        readers = await people_to_tell(session=session, reference=reference)
        notices = await item_notices(session=session, item_id=event.item_id)
        people = await staff_people(session=session, ids={event.by, *(c for c, _ in notices)})
        revoked = await revoked_by(session=session, item=item)
    for reader in readers:
        texts = reader_texts(reader)
        await best_effort(
            "telling a partner a decision",
            bot.send_message(reader.telegram_user_id, item_told(texts, item), parse_mode="HTML"),
        )
    for holder, holder_readers in revoked:
        for reader in holder_readers:
            texts = reader_texts(reader)
            await best_effort(
                "telling a partner its protection ended",
                bot.send_message(
                    reader.telegram_user_id, revoked_told(texts, holder), parse_mode="HTML"
                ),
            )
    who = people[event.by].name or ""
    await mark_copies_decided(
        bot, notices, people, lambda texts: item_decided_text(texts, shared.rules, item, who=who)
    )


async def mark_copies_decided(
    bot: Bot,
    notices: Sequence[tuple[int, int]],
    people: Mapping[int, StaffPerson],
    decided: Callable[[Texts], str],
) -> None:
    """Every staff copy of a decision, edited in its reader's language to the outcome."""
    for chat_id, message_id in notices:
        texts = staff_texts(people[chat_id].telegram_language)
        await best_effort(
            "marking a staff message decided",
            bot.edit_message_text(
                decided(texts), chat_id=chat_id, message_id=message_id, parse_mode="HTML"
            ),
        )


def reader_texts(reader: Reader) -> Texts:
    return Texts(language_for(chosen=reader.language, telegram_code=reader.telegram_language))


async def make_decision_known(bot: Bot, shared: Resources, event: DealDecided) -> None:
    """Tell the partner the outcome; every staff copy now says who decided, buttons gone."""
    async with shared.sessions() as session:
        deal = await deal_by_reference(session=session, reference=event.reference)
        readers = await people_to_tell(session=session, reference=event.reference)
        notices = await notices_of(session=session, registration_id=deal.registration.id)
        people = await staff_people(session=session, ids={event.by, *(c for c, _ in notices)})
    decision = Decision(deal, event.approved, event.reason)
    for reader in readers:
        texts = reader_texts(reader)
        await best_effort(
            "telling a partner the decision",
            bot.send_message(
                reader.telegram_user_id, decision_told(texts, decision), parse_mode="HTML"
            ),
        )
    who = people[event.by].name or ""
    await mark_copies_decided(
        bot, notices, people, lambda texts: decided_text(texts, decision, who=who)
    )


def staff_texts(telegram_language: str | None) -> Texts:
    """Staff read their Telegram language, in chat and in what the bot starts alike."""
    return Texts(language_for(chosen=None, telegram_code=telegram_language))
