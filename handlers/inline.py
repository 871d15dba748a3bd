"""`@<bot> <VAT>` from any chat (PRODUCT.md §6): a linked salesperson sees the verdict
and quote as a personal, uncached result; choosing it posts a neutral line (the VAT
number, new or not, the quote; never another partner's name). Anyone else gets one
result that opens the bot. A query that is no VAT number gets an empty answer."""

from __future__ import annotations

import logging

from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InlineQueryResultArticle,
    InputTextMessageContent,
    Update,
)

from bot.domain.errors import (
    AlreadyRegistered,
    CustomerNotNew,
    CustomerProtected,
    InvalidVat,
    Refusal,
)
from bot.domain.parsing import normalise_vat
from bot.i18n import Texts
from bot.services.eligibility import check_eligibility
from bot.services.views import Account
from bot.telegram.sending import best_effort
from handlers.common import Context, account_of, resources, texts_for

log = logging.getLogger(__name__)

# Longer than any VAT number however it is written (`IT 007.431.101.57`): the rest is
# not worth parsing (Telegram allows 256 characters).
LONGEST_QUERY = 40


async def answer_inline(update: Update, context: Context) -> None:
    query = update.inline_query
    if query is None:
        return
    account = await account_of(update, context)
    texts = texts_for(update, account)
    if account is None:
        results = [open_the_bot(texts, context.bot.username)]
    else:
        results = await check_results(context, account, texts, query.query)
    # Personal and never cached: the verdict changes with every registration.
    await best_effort(
        "answering an inline query", query.answer(results, cache_time=0, is_personal=True)
    )


async def check_results(
    context: Context, account: Account, texts: Texts, typed: str
) -> list[InlineQueryResultArticle]:
    """The verdict on the typed VAT number as one result, or none for anything else."""
    shared = resources(context)
    if not typed.strip() or len(typed) > LONGEST_QUERY:
        return []
    try:
        vat = normalise_vat(typed, default_country=shared.rules.country)
    except InvalidVat:
        return []
    try:
        async with shared.sessions() as session:
            verdict = await check_eligibility(
                session=session, rules=shared.rules, account=account, vat=vat, now=shared.now()
            )
    except Refusal as refusal:
        title, description, line = refused(texts, vat, refusal)
    else:
        amount = texts.money(verdict.quote.amount, verdict.quote.currency)
        title = texts.plain("inline_new_title", vat=vat, amount=amount)
        description = texts.plain(
            "inline_new_description", until=texts.date(verdict.protected_until)
        )
        line = texts.plain("inline_new_line", vat=vat, amount=amount)
    return [
        InlineQueryResultArticle(
            id=f"check-{vat}",
            title=title,
            description=description,
            input_message_content=InputTextMessageContent(line),
        )
    ]


def refused(texts: Texts, vat: str, refusal: Refusal) -> tuple[str, str, str]:
    """Title and description for the salesperson, and the neutral line the chat sees."""
    if isinstance(refusal, CustomerNotNew):
        title = texts.plain("inline_not_new_title", vat=vat)
        description = texts.plain(
            "inline_not_new_description", last=texts.date(refusal.last_purchase)
        )
    elif isinstance(refusal, CustomerProtected):
        title = texts.plain("inline_protected_title", vat=vat)
        description = texts.plain("inline_protected_description", until=texts.date(refusal.until))
    elif isinstance(refusal, AlreadyRegistered):
        title = texts.plain("inline_yours_title", vat=vat, reference=refusal.reference)
        description = texts.plain("inline_yours_description", until=texts.date(refusal.until))
    else:  # no incentive in force
        title = texts.plain("inline_no_incentive_title", vat=vat)
        description = ""
    return title, description, texts.plain("inline_not_available_line", vat=vat)


def open_the_bot(texts: Texts, username: str) -> InlineQueryResultArticle:
    """For someone not linked: one result whose button opens the bot."""
    link = f"https://t.me/{username}"
    return InlineQueryResultArticle(
        id="open",
        title=texts.plain("inline_open_title"),
        description=texts.plain("inline_open_description"),
        input_message_content=InputTextMessageContent(texts.plain("inline_open_line", link=link)),
        reply_markup=InlineKeyboardMarkup(
            [[InlineKeyboardButton(texts.plain("inline_open_button"), url=link)]]
        ),
    )
