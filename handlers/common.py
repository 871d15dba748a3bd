"""What every handler needs: the programme's resources, the user's account and language."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from telegram import CallbackQuery, Message, Update
from telegram.error import BadRequest
from telegram.ext import Application, ContextTypes

from bot.config import Settings
from bot.i18n import Texts, language_for
from bot.rules import Rules
from bot.services.accounts import find_account
from bot.services.views import Account

log = logging.getLogger(__name__)
Context = ContextTypes.DEFAULT_TYPE
App = Application[Any, Any, Any, Any, Any, Any]
DEPS_KEY = "pai"
T = TypeVar("T")


@dataclass
class Deps:
    """Long-lived resources, made in post_init: a session factory, never a session."""

    sessions: async_sessionmaker[AsyncSession]
    rules: Rules
    settings: Settings


def deps(context: Context) -> Deps:
    return cast(Deps, context.bot_data[DEPS_KEY])


async def account_of(update: Update, context: Context) -> Account | None:
    user = update.effective_user
    if user is None:
        return None
    async with deps(context).sessions() as session:
        return await find_account(session=session, telegram_user_id=user.id)


def texts_for(update: Update, account: Account | None) -> Texts:
    user = update.effective_user
    return Texts(
        language_for(
            chosen=account.language if account else None,
            telegram_code=user.language_code if user else None,
        )
    )


async def reply(update: Update, text: str, **kwargs: Any) -> Message | None:
    """Answer in the chat the update came from, as HTML."""
    chat = update.effective_chat
    if chat is None:
        return None
    return await chat.send_message(text, parse_mode="HTML", **kwargs)


def pressed(update: Update) -> tuple[CallbackQuery, list[str]]:
    """The button press behind a callback update, and its data split at colons."""
    query = update.callback_query
    if query is None or query.data is None:
        raise ValueError("not a button press with data")
    return query, query.data.split(":")


async def remove_buttons(update: Update) -> None:
    """Take the buttons off the message just pressed, so they cannot be pressed twice.

    Best effort: a message too old to edit, or already bare, keeps what it has.
    """
    query = update.callback_query
    if query is None or query.message is None:
        return
    try:
        await query.edit_message_reply_markup(reply_markup=None)
    except BadRequest as exc:
        log.debug("could not remove buttons: %s", exc)


Linked = Callable[[Update, Context, Account, Texts], Coroutine[Any, Any, T]]
Handler = Callable[[Update, Context], Coroutine[Any, Any, T]]


def linked_only(default: T) -> Callable[[Linked[T]], Handler[T]]:
    """Run the callback only for a linked salesperson; tell anyone else how to join.

    `default` is what the callback returns for an unlinked user (e.g. END for a
    conversation entry point).
    """

    def decorate(callback: Linked[T]) -> Handler[T]:
        @functools.wraps(callback)
        async def wrapper(update: Update, context: Context) -> T:
            account = await account_of(update, context)
            if account is None:
                texts = texts_for(update, None)
                if update.callback_query:
                    await update.callback_query.answer()
                await reply(update, texts("not_linked"))
                return default
            return await callback(update, context, account, texts_for(update, account))

        return wrapper

    return decorate
