"""What every handler needs: the programme's resources, the user's account and language,
and sending that survives Telegram's bad moments."""

from __future__ import annotations

import datetime as dt
import functools
import html
import logging
from collections.abc import Callable, Coroutine
from contextvars import ContextVar
from typing import Any, TypeVar

from telegram import InlineKeyboardMarkup, Message, Update, User
from telegram.error import BadRequest, NetworkError

from bot.domain.drafts import Draft, Step, left_too_long
from bot.domain.errors import RegistrationNotFound
from bot.domain.lifecycle import Status
from bot.i18n import Texts, html_to_text, language_for
from bot.resources import Resources
from bot.services.accounts import Visitor, note_visit, recognise_in_one_read
from bot.services.registrations import get_registration, report_outcome
from bot.services.views import Account, RegistrationView
from bot.storage.conversations import DraftsOfOneUpdate, DraftStore
from bot.telegram.context import BotContext
from bot.telegram.sending import best_effort

log = logging.getLogger(__name__)
T = TypeVar("T")


class Context(BotContext):
    """PTB's context (one per update), plus what the update looks up once: the account
    of its user, and drafts."""

    account: Account | None
    account_known: bool = False
    seen_drafts: DraftStore | None = None


def drafts_of(context: Context) -> DraftStore:
    """The drafts store for this update: each draft read from the database once."""
    if context.seen_drafts is None:
        context.seen_drafts = DraftsOfOneUpdate(resources(context).drafts)
    return context.seen_drafts


def resources(context: Context) -> Resources:
    return context.bot_data.resources


async def account_of(update: Update, context: Context) -> Account | None:
    """The linked salesperson behind the update, or None; noted as seen, once per update."""
    if context.account_known:
        return context.account
    user = update.effective_user
    account = None
    if user is not None:
        visitor = visitor_of(user)
        shared = resources(context)
        found = await recognise_in_one_read(rows=shared.rows, visitor=visitor, now=shared.now())
        if found is not None:
            account = found.account
            if found.visit:
                shared.run_in_background(note(shared, user.id, found.visit), "noting a visit")
    context.account, context.account_known = account, True
    _read_for.set((update.update_id, account))
    return account


# The account an update has read, where its error handler finds it: PTB hands the error
# handler a context of its own, without what the update's handlers noted on theirs; the
# error handler runs in the update's own task, so it sees what this holds.
_read_for: ContextVar[tuple[int, Account | None] | None] = ContextVar("read_for", default=None)


def account_already_read(update: Update) -> Account | None:
    """The account this update read before it failed; None if it read none (or none is
    linked): asking the database again may be what fails."""
    read = _read_for.get()
    return read[1] if read is not None and read[0] == update.update_id else None


async def own_registration(
    update: Update, context: Context, account: Account, texts: Texts, reference: str
) -> RegistrationView | None:
    """The partner's registration behind a button; anyone else's is "not among yours"."""
    try:
        async with resources(context).sessions() as session:
            return await get_registration(session=session, account=account, reference=reference)
    except RegistrationNotFound:
        await answer_query(update, texts.plain("registration_not_found"), alert=True)
        return None


async def note(shared: Resources, telegram_user_id: int, visit: dict[str, object]) -> None:
    async with shared.sessions() as session:
        await note_visit(session=session, telegram_user_id=telegram_user_id, visit=visit)


def visitor_of(user: User) -> Visitor:
    """What the bot may know of a Telegram user, as the accounts service takes it."""
    return Visitor(
        telegram_user_id=user.id,
        language_code=user.language_code,
        display_name=user.full_name,
        username=user.username,
    )


def texts_for(update: Update, account: Account | None) -> Texts:
    user = update.effective_user
    return Texts(
        language_for(
            chosen=account.language if account else None,
            telegram_code=user.language_code if user else None,
        )
    )


def user_id_of(update: Update) -> int:
    user = update.effective_user
    assert user is not None, "handlers run for updates with a user"
    return user.id


async def current_draft(update: Update, context: Context) -> Draft | None:
    """The user's registration in progress; one left alone too long is dropped.

    A registered draft waiting for its confirmation to arrive is no conversation:
    only `deliver_pending_confirmation` deals with it.
    """
    shared = resources(context)
    user_id = user_id_of(update)
    draft = await drafts_of(context).load(user_id)
    if draft is not None and draft.step == Step.REGISTERED:
        return None
    if draft is not None and draft.is_stale(shared.now()):
        await drafts_of(context).drop(user_id)
        return None
    return draft


async def reply(
    update: Update, text: str, markup: InlineKeyboardMarkup | None = None
) -> Message | None:
    """Answer in the chat the update came from, as HTML."""
    chat = update.effective_chat
    if chat is None:
        return None
    return await chat.send_message(text, parse_mode="HTML", reply_markup=markup)


# Telegram refuses a message over 4,096 characters; a little under leaves room for
# entities counted differently.
MESSAGE_LENGTH = 4000


def in_messages(lines: list[str], limit: int = MESSAGE_LENGTH) -> list[str]:
    """Lines grouped into as few messages as fit, never cut inside a line (nor a tag in it).

    A single line longer than a message is sent as plain text in pieces.
    """
    messages: list[str] = []
    current: list[str] = []
    size = 0
    for line in (piece for whole in lines for piece in _fitting(whole, limit)):
        if current and size + len(line) + 1 > limit:
            messages.append("\n".join(current))
            current, size = [], 0
        current.append(line)
        size += len(line) + 1
    if current:
        messages.append("\n".join(current))
    return messages


def _fitting(line: str, limit: int) -> list[str]:
    """The line, or its text without formatting in pieces that fit once escaped."""
    if len(line) <= limit:
        return [line]
    plain = html_to_text(line)
    step = limit // 6  # escaping turns one character into six at most ("&quot;")
    return [html.escape(plain[start : start + step]) for start in range(0, len(plain), step)]


async def reply_in_parts(update: Update, lines: list[str]) -> None:
    """Answer with a long text in as many messages as it needs."""
    for text in in_messages(lines):
        await reply(update, text)


async def answer_query(update: Update, text: str | None = None, *, alert: bool = False) -> None:
    """Stop the pressed button's spinner, with a pop-up text when there is one."""
    query = update.callback_query
    if query is not None:
        await best_effort("answering a button", query.answer(text, show_alert=alert))


async def remove_buttons(update: Update) -> None:
    """Take the buttons off the message just pressed, so they cannot be pressed twice."""
    query = update.callback_query
    if query is not None and query.message is not None:
        await best_effort("removing buttons", query.edit_message_reply_markup(reply_markup=None))


async def replace_pressed(
    update: Update,
    text: str,
    markup: InlineKeyboardMarkup | None = None,
) -> None:
    """Turn the message whose button was pressed into `text`: the press's one message.

    The user is looking at that message, so changing it needs no new message (nor a
    buzz). "Not modified" means it already reads so; a message Telegram will not edit
    gets `text` as a new message. A failure reaches the caller once the rate limiter has
    sent it again where that is safe (bot/telegram/ratelimit.py: the one rule for what
    may be sent again); the error handler then apologises and the next message asks
    again.
    """

    async def edit_or_send() -> None:
        query = update.callback_query
        if query is None or query.message is None:
            await reply(update, text, markup)
            return
        try:
            await query.edit_message_text(text, parse_mode="HTML", reply_markup=markup)
        except BadRequest as exc:
            if "not modified" in str(exc).lower():
                return
            log.info("could not edit a message (%s): sending it anew", exc)
            await reply(update, text, markup)

    await edit_or_send()


async def show_in_place(update: Update, text: str, markup: InlineKeyboardMarkup | None) -> None:
    """Replace the message behind the pressed button, as far as Telegram lets us now.

    An unchanged view is not an error; a message too old to edit gets a fresh one; a
    network error leaves the old view, which the next press brings up to date.
    """
    try:
        await replace_pressed(update, text, markup)
    except BadRequest:
        raise  # the fresh message was refused: a bug in the view, not a bad moment
    except NetworkError as exc:
        log.info("editing a message skipped: %s", type(exc).__name__)


async def report(
    context: Context, account: Account, reference: str, outcome: Status, note: str | None = None
) -> RegistrationView:
    """The partner's report of a deal's outcome, from /status or a follow-up."""
    shared = resources(context)
    async with shared.sessions() as session:
        return await report_outcome(
            session=session,
            rules=shared.rules,
            account=account,
            reference=reference,
            outcome=outcome,
            now=shared.now(),
            note=note,
        )


Linked = Callable[[Update, Context, Account, Texts], Coroutine[Any, Any, T]]
Handler = Callable[[Update, Context], Coroutine[Any, Any, T]]


def linked_only(default: T) -> Callable[[Linked[T]], Handler[T]]:
    """Run the callback only for a linked salesperson; tell anyone else how to join.

    `default` is what the callback returns for an unlinked user.
    """

    def decorate(callback: Linked[T]) -> Handler[T]:
        @functools.wraps(callback)
        async def wrapper(update: Update, context: Context) -> T:
            account = await account_of(update, context)
            if account is None:
                await answer_not_linked(update)
                return default
            return await callback(update, context, account, texts_for(update, account))

        return wrapper

    return decorate


async def answer_not_linked(update: Update) -> None:
    texts = texts_for(update, None)
    await answer_query(update, texts.plain("stale_button") if update.callback_query else None)
    if update.callback_query is None:
        await reply(update, texts("not_linked"))


def prompt_forgotten(prompt: dict[str, str], now: dt.datetime) -> bool:
    """Whether a one-question prompt (a reason, proof) was left too long to still be
    answered: text typed hours later is not its answer."""
    asked_at = prompt.get("asked_at")
    return asked_at is None or left_too_long(dt.datetime.fromisoformat(asked_at), now)
