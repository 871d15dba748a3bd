"""/privacy (PRODUCT.md §8): what the bot holds about you, why, how long, who sees it,
your rights and whom to write to; Send me my data; Erase me, asked once more."""

from __future__ import annotations

import json

from telegram import InputFile, Update

from bot.i18n import Markup, Texts
from bot.services.privacy import erase, export_of, holdings_of
from handlers.callbacks import EraseMe, PrivacyButton, SendMyData, keyboard
from handlers.common import (
    Context,
    account_of,
    answer_query,
    reply,
    resources,
    show_in_place,
    texts_for,
    user_id_of,
)


async def show_privacy(update: Update, context: Context) -> None:
    """Anyone may ask: a stranger hears that nothing is kept, and whom to write to."""
    shared = resources(context)
    account = await account_of(update, context)
    texts = texts_for(update, account)
    privacy = shared.rules.privacy
    async with shared.sessions() as session:
        held = await holdings_of(session=session, telegram_user_id=user_id_of(update))
    rules = {"controller": privacy.controller, "contact": privacy.contact}
    if held is None:
        await reply(update, texts("privacy_nothing", **rules))
        return
    kinds = texts(
        "privacy_held",
        partner=held.partner,
        since=texts.date(held.linked_at.astimezone(shared.rules.timezone).date()),
        registrations=held.registrations,
        reminders=held.reminders,
        deliveries=held.deliveries,
    )
    body = texts("privacy_text", held=Markup(kinds), days=privacy.retention_days, **rules)
    await reply(
        update,
        body,
        keyboard(
            [(texts.plain("button_send_my_data"), SendMyData())],
            [(texts.plain("button_erase_me"), EraseMe())],
        ),
    )


async def press_privacy_button(update: Update, context: Context, button: PrivacyButton) -> None:
    shared = resources(context)
    account = await account_of(update, context)
    texts = texts_for(update, account)
    user = user_id_of(update)
    if isinstance(button, SendMyData):
        await answer_query(update)
        await send_my_data(update, context, texts)
        return
    if button.cancel:
        await answer_query(update, texts.plain("privacy_kept"))
        await show_in_place(update, texts("privacy_kept"), None)
        return
    if not button.confirmed:
        await answer_query(update)
        await reply(
            update,
            texts("privacy_erase_confirm"),
            keyboard(
                [(texts.plain("button_erase_yes"), EraseMe(confirmed=True))],
                [(texts.plain("button_cancel"), EraseMe(cancel=True))],
            ),
        )
        return
    async with shared.sessions() as session:
        erased = await erase(session=session, telegram_user_id=user, now=shared.now())
    await answer_query(update)
    # Said in the language they read, one last time; afterwards they are a stranger.
    key = "privacy_erased" if erased else "privacy_nothing_to_erase"
    await show_in_place(update, texts(key, contact=shared.rules.privacy.contact), None)
    await shared.drafts.drop(user)


async def send_my_data(update: Update, context: Context, texts: Texts) -> None:
    shared = resources(context)
    async with shared.sessions() as session:
        data = await export_of(session=session, telegram_user_id=user_id_of(update))
    chat = update.effective_chat
    if data is None or chat is None:
        await reply(
            update,
            texts(
                "privacy_nothing",
                controller=shared.rules.privacy.controller,
                contact=shared.rules.privacy.contact,
            ),
        )
        return
    document = json.dumps(data, ensure_ascii=False, indent=2).encode()
    summary = texts(
        "privacy_data_summary",
        partner=data["partner"] or "-",
        registrations=len(data["registrations"]),
        reminders=len(data["reminders"]),
    )
    await chat.send_document(
        InputFile(document, filename="my-data.json"), caption=summary, parse_mode="HTML"
    )
