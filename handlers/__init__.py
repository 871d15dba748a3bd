"""Telegram handlers: parse the update, call one service, render the reply."""

from __future__ import annotations

import contextlib
import logging

from telegram import Update
from telegram.error import TelegramError
from telegram.ext import (
    CallbackQueryHandler,
    CommandHandler,
    MessageHandler,
    filters,
)

from handlers import partner
from handlers.common import App, Context, account_of, reply, texts_for
from handlers.registration import check_customer, registration_conversation

log = logging.getLogger(__name__)


def add_handlers(application: App) -> None:
    private = filters.ChatType.PRIVATE
    # Order matters: the /new conversation comes first so that, while it runs, it
    # sees every message and keeps its question; the catch-alls come last.
    application.add_handler(registration_conversation())
    application.add_handler(CommandHandler("start", partner.start, private))
    application.add_handler(CommandHandler("check", check_customer, private))
    application.add_handler(CommandHandler("status", partner.show_status, private))
    application.add_handler(CommandHandler("settings", partner.show_settings, private))
    application.add_handler(CommandHandler("help", partner.show_help, private))
    application.add_handler(CommandHandler("cancel", partner.nothing_to_cancel, private))
    application.add_handler(
        CallbackQueryHandler(partner.turn_status_page, pattern=r"^st:page:\d+$")
    )
    application.add_handler(
        CallbackQueryHandler(partner.open_registration, pattern=r"^st:open:\d+:\d+$")
    )
    application.add_handler(
        CallbackQueryHandler(partner.confirm_lost, pattern=r"^st:lost:\d+:\d+$")
    )
    application.add_handler(
        CallbackQueryHandler(partner.record_outcome, pattern=r"^st:(won|lostok):\d+:\d+$")
    )
    application.add_handler(
        CallbackQueryHandler(partner.change_setting, pattern=r"^set:(lang|rem):\w+$")
    )
    # Buttons of conversations that ended (or of an older version of the bot).
    application.add_handler(CallbackQueryHandler(partner.answer_stale_button))
    application.add_handler(
        MessageHandler(private & ~filters.UpdateType.EDITED, partner.answer_unknown)
    )
    application.add_error_handler(report_error)


async def report_error(update: object, context: Context) -> None:
    """Log the failure without personal data and tell the user something went wrong."""
    error = context.error
    update_id = update.update_id if isinstance(update, Update) else None
    log.error(
        "update %s failed: %s",
        update_id,
        type(error).__name__,
        exc_info=(type(error), error, error.__traceback__) if error else None,
    )
    if not isinstance(update, Update) or update.effective_chat is None:
        return
    try:
        texts = texts_for(update, await account_of(update, context))
        await reply(update, texts("error_generic"))
    except Exception:  # the apology itself failed (Telegram or the database down)
        log.warning("could not tell the user about the failure of update %s", update_id)
    if update.callback_query:
        # Stops the button's spinner; fails harmlessly if the query was answered already.
        with contextlib.suppress(TelegramError):
            await update.callback_query.answer()
