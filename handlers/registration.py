"""/new and /check: the verdict at once, then the deal's details, a summary, Confirm."""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import (
    CallbackQueryHandler,
    CommandHandler,
    ConversationHandler,
    MessageHandler,
    filters,
)
from telegram.warnings import PTBUserWarning

from bot.errors import DomainError, InvalidInput
from bot.i18n import Texts
from bot.parsing import check_close_date, clean_text, normalise_vat, parse_amount, parse_date
from bot.services.eligibility import Opportunity, check_eligibility, register_opportunity
from bot.services.views import Account, Verdict
from handlers.common import (
    Context,
    account_of,
    deps,
    linked_only,
    pressed,
    remove_buttons,
    reply,
    texts_for,
)
from handlers.render import (
    MAX_COMPANY,
    MAX_PRODUCT,
    render_invalid,
    render_refusal,
    render_verdict,
)

VAT, COMPANY, VALUE, PRODUCT, CLOSE, CONFIRM = range(6)
NEXT_QUESTION = {COMPANY: VALUE, VALUE: PRODUCT, PRODUCT: CLOSE, CLOSE: CONFIRM}
END = ConversationHandler.END
CLOSE_IN_DAYS = (30, 60, 90)
DRAFT_KEY = "draft"
# A registration left half-way for this long is dropped; its buttons then answer "ended".
CONVERSATION_TIMEOUT = dt.timedelta(hours=2)


@dataclass
class Draft:
    """Everything typed so far in one /new conversation."""

    state: int = VAT
    verdict: Verdict | None = None
    customer_name: str | None = None
    deal_value: Decimal | None = None
    product: str | None = None
    expected_close: dt.date | None = None


def draft_of(context: Context) -> Draft:
    user_data = cast(dict[str, Any], context.user_data)
    if not isinstance(user_data.get(DRAFT_KEY), Draft):
        user_data[DRAFT_KEY] = Draft()
    return cast(Draft, user_data[DRAFT_KEY])


def forget_draft(context: Context) -> None:
    cast(dict[str, Any], context.user_data).pop(DRAFT_KEY, None)


# --- questions ---------------------------------------------------------------


def question(texts: Texts, context: Context, state: int) -> tuple[str, InlineKeyboardMarkup | None]:
    """The text and buttons that ask for what `state` waits for."""
    if state == VAT:
        return texts("ask_vat"), None
    if state == COMPANY:
        return texts("ask_company"), None
    if state == VALUE:
        return texts("ask_value"), None
    if state == PRODUCT:
        return texts("ask_product"), None
    if state == CLOSE:
        buttons = [
            InlineKeyboardButton(
                texts.plain("close_in_days", days=days), callback_data=f"new:close:{days}"
            )
            for days in CLOSE_IN_DAYS
        ]
        # The example is a real date ahead, so that typing it as shown works.
        example = deps(context).rules.today() + dt.timedelta(days=CLOSE_IN_DAYS[0])
        return texts("ask_close", example=f"{example:%d/%m/%Y}"), InlineKeyboardMarkup([buttons])
    return summary(texts, context), InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(texts.plain("button_confirm"), callback_data="new:confirm"),
                InlineKeyboardButton(texts.plain("button_cancel"), callback_data="new:cancel"),
            ]
        ]
    )


def summary(texts: Texts, context: Context) -> str:
    draft = draft_of(context)
    verdict = draft.verdict
    assert verdict is not None
    assert draft.deal_value is not None
    assert draft.expected_close
    return texts(
        "summary",
        customer=verdict.known_name or draft.customer_name or "",
        vat=verdict.vat,
        value=texts.money(draft.deal_value, verdict.quote.currency),
        product=draft.product or "",
        close=texts.date(draft.expected_close),
        amount=texts.money(verdict.quote.amount, verdict.quote.currency),
        until=texts.date(verdict.protected_until),
    )


async def ask(update: Update, context: Context, texts: Texts, state: int, preface: str = "") -> int:
    """Ask for `state`, after `preface` (an error or a note) when there is one."""
    draft_of(context).state = state
    text, markup = question(texts, context, state)
    await reply(update, f"{preface}\n\n{text}" if preface else text, reply_markup=markup)
    return state


# --- /check ------------------------------------------------------------------


@linked_only(default=None)
async def check_customer(update: Update, context: Context, account: Account, texts: Texts) -> None:
    """Give the verdict and quote for /check VAT, registering nothing."""
    typed = " ".join(context.args or [])
    if not typed:
        await reply(update, texts("check_usage"))
        return
    try:
        await answer_verdict(update, context, account, texts, typed)
    except InvalidInput as error:
        await reply(update, f"{render_invalid(texts, error)}\n\n{texts('check_usage')}")


async def answer_verdict(
    update: Update, context: Context, account: Account, texts: Texts, typed: str
) -> Verdict | None:
    """Reply with the verdict on `typed`; return it when the customer qualifies."""
    resources = deps(context)
    vat = normalise_vat(typed, default_country=resources.rules.country)
    try:
        async with resources.sessions() as session:
            verdict = await check_eligibility(
                session=session, rules=resources.rules, account=account, vat=vat
            )
    except InvalidInput:
        raise  # not a verdict: the caller asks again
    except DomainError as refusal:
        await reply(update, render_refusal(texts, resources.rules, vat, refusal))
        return None
    await reply(update, render_verdict(texts, resources.rules, verdict))
    return verdict


# --- /new ----------------------------------------------------------------------


@linked_only(default=END)
async def start_registration(
    update: Update, context: Context, account: Account, texts: Texts
) -> int:
    """Begin a registration; `/new VAT` skips the first question."""
    forget_draft(context)
    if context.args:
        return await take_vat(update, context, account, texts, " ".join(context.args))
    return await ask(update, context, texts, VAT)


@linked_only(default=END)
async def receive_vat(update: Update, context: Context, account: Account, texts: Texts) -> int:
    """Check the typed VAT number and answer at once."""
    return await take_vat(update, context, account, texts, typed_text(update))


async def take_vat(
    update: Update, context: Context, account: Account, texts: Texts, typed: str
) -> int:
    try:
        verdict = await answer_verdict(update, context, account, texts, typed)
    except InvalidInput as error:
        return await ask(update, context, texts, VAT, render_invalid(texts, error))
    if verdict is None:
        forget_draft(context)
        return END
    draft_of(context).verdict = verdict
    return await ask(update, context, texts, VALUE if verdict.known_name else COMPANY)


async def take_answer(
    update: Update, context: Context, state: int, keep: Callable[[Texts, str], None]
) -> int:
    """Keep the typed answer to `state` and ask the next question, or the same one again."""
    texts = await current_texts(update, context)
    try:
        keep(texts, typed_text(update))
    except InvalidInput as error:
        return await ask(update, context, texts, state, render_invalid(texts, error))
    return await ask(update, context, texts, NEXT_QUESTION[state])


async def receive_company(update: Update, context: Context) -> int:
    """Keep the customer's company name."""

    def keep(texts: Texts, typed: str) -> None:
        draft_of(context).customer_name = clean_text(typed, max_length=MAX_COMPANY)

    return await take_answer(update, context, COMPANY, keep)


async def receive_value(update: Update, context: Context) -> int:
    """Keep the estimated deal value, read in the user's locale."""

    def keep(texts: Texts, typed: str) -> None:
        draft_of(context).deal_value = parse_amount(typed, locale=texts.locale)

    return await take_answer(update, context, VALUE, keep)


async def receive_product(update: Update, context: Context) -> int:
    """Keep what is being sold."""

    def keep(texts: Texts, typed: str) -> None:
        draft_of(context).product = clean_text(typed, max_length=MAX_PRODUCT)

    return await take_answer(update, context, PRODUCT, keep)


async def receive_close_date(update: Update, context: Context) -> int:
    """Keep the expected close date, typed in any of the accepted forms."""
    today = deps(context).rules.today()

    def keep(texts: Texts, typed: str) -> None:
        close = parse_date(typed, locale=texts.locale)
        draft_of(context).expected_close = check_close_date(close, today=today)

    return await take_answer(update, context, CLOSE, keep)


async def pick_close_date(update: Update, context: Context) -> int:
    """Keep the close date from a 30/60/90 days button."""
    query, (_, _, days) = pressed(update)
    await query.answer()
    await remove_buttons(update)
    texts = await current_texts(update, context)
    draft_of(context).expected_close = deps(context).rules.today() + dt.timedelta(days=int(days))
    return await ask(update, context, texts, CONFIRM)


@linked_only(default=END)
async def confirm_registration(
    update: Update, context: Context, account: Account, texts: Texts
) -> int:
    """Register the deal; the customer may have been taken since the verdict."""
    query, _ = pressed(update)
    draft = draft_of(context)
    if draft.verdict is None or draft.deal_value is None or draft.product is None:
        # Registered already, though the answer did not reach the user: /status has it.
        await query.answer(texts.plain("stale_button"))
        await remove_buttons(update)
        return END
    assert draft.expected_close is not None
    await query.answer()
    opportunity = Opportunity(
        vat=draft.verdict.vat,
        customer_name=draft.customer_name,
        deal_value=draft.deal_value,
        product=draft.product,
        expected_close=draft.expected_close,
    )
    resources = deps(context)
    # Should this fail unexpectedly, the draft and the Confirm button stay, so the
    # salesperson can press again; a verdict or a success ends both.
    try:
        async with resources.sessions() as session:
            registration = await register_opportunity(
                session=session, rules=resources.rules, account=account, opportunity=opportunity
            )
    except InvalidInput:
        raise  # not a verdict: the draft lacks what the service needs, a bug
    except DomainError as refusal:
        await finish(update, context)
        await reply(update, render_refusal(texts, resources.rules, opportunity.vat, refusal))
        return END
    await finish(update, context)
    await reply(
        update,
        texts(
            "registered",
            reference=registration.reference,
            customer=registration.customer_name,
            until=texts.date(registration.protected_until),
            amount=texts.money(registration.incentive_amount, registration.currency),
        ),
    )
    return END


async def finish(update: Update, context: Context) -> None:
    """End the conversation's traces: the draft, and the buttons just pressed."""
    forget_draft(context)
    await remove_buttons(update)


async def cancel_registration(update: Update, context: Context) -> int:
    """Leave the registration, by /cancel or the Cancel button."""
    if update.callback_query:
        await update.callback_query.answer()
        await remove_buttons(update)
    forget_draft(context)
    texts = await current_texts(update, context)
    await reply(update, texts("cancelled"))
    return END


async def repeat_question(update: Update, context: Context) -> int:
    """Answer anything unexpected mid-conversation by asking the same question again."""
    texts = await current_texts(update, context)
    state = draft_of(context).state
    if update.callback_query:
        await update.callback_query.answer(texts.plain("stale_button"))
        return state
    message = update.effective_message
    if message is not None and message.text and message.text.startswith("/"):
        preface = texts("in_conversation")
    elif state == CONFIRM:
        preface = texts("use_buttons")
    else:
        preface = texts("use_text")
    return await ask(update, context, texts, state, preface)


# --- helpers -------------------------------------------------------------------


def typed_text(update: Update) -> str:
    message = update.effective_message
    return (message.text or "") if message else ""


async def current_texts(update: Update, context: Context) -> Texts:
    return texts_for(update, await account_of(update, context))


def registration_conversation() -> ConversationHandler[Any]:
    text = filters.TEXT & ~filters.COMMAND
    with warnings.catch_warnings():
        # The buttons belong to the user's one conversation, not to a message, so
        # per_message=False is meant; PTB warns about that combination regardless.
        warnings.filterwarnings("ignore", category=PTBUserWarning, message=".*per_message.*")
        return ConversationHandler(
            entry_points=[CommandHandler("new", start_registration, filters.ChatType.PRIVATE)],
            states={
                VAT: [MessageHandler(text, receive_vat)],
                COMPANY: [MessageHandler(text, receive_company)],
                VALUE: [MessageHandler(text, receive_value)],
                PRODUCT: [MessageHandler(text, receive_product)],
                CLOSE: [
                    MessageHandler(text, receive_close_date),
                    CallbackQueryHandler(pick_close_date, pattern=r"^new:close:\d+$"),
                ],
                CONFIRM: [
                    CallbackQueryHandler(confirm_registration, pattern="^new:confirm$"),
                    CallbackQueryHandler(cancel_registration, pattern="^new:cancel$"),
                ],
            },
            fallbacks=[
                CommandHandler("cancel", cancel_registration),
                # Anything else — another command, a sticker, a photo, an old button —
                # gets the current question again, with what was typed kept.
                MessageHandler(filters.ALL, repeat_question),
                CallbackQueryHandler(repeat_question, pattern="^new:"),
            ],
            conversation_timeout=CONVERSATION_TIMEOUT,
            name="registration",
            allow_reentry=False,
        )
