"""Telegram handlers: parse the update, call one service, render the reply."""

from __future__ import annotations

import logging

from telegram import Update
from telegram.error import NetworkError
from telegram.ext import (
    ApplicationHandlerStop,
    CallbackQueryHandler,
    CommandHandler,
    InlineQueryHandler,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot.i18n import Texts
from bot.logs import note_update_failure
from bot.services.views import Account
from bot.storage.database import database_failure
from bot.telegram.context import App
from handlers import (
    callbacks,
    conflicts,
    followups,
    inline,
    partner,
    privacy,
    registration,
    staff,
)
from handlers.common import (
    Context,
    account_already_read,
    answer_query,
    drafts_of,
    linked_only,
    reply,
    texts_for,
)
from handlers.registration import answer_stale

log = logging.getLogger(__name__)
# Updates the bot asks Telegram for: edits too, so that an edited answer is answered.
ALLOWED_UPDATES = ["message", "edited_message", "callback_query", "inline_query"]


def add_handlers(application: App, staff_ids: frozenset[int] = frozenset()) -> None:
    private = filters.ChatType.PRIVATE
    messages = private & filters.UpdateType.MESSAGE
    if staff_ids:
        # Staff first: a rejection waiting for its reason takes their next text or /cancel.
        by_staff = messages & filters.User(user_id=staff_ids)
        application.add_handler(CommandHandler("cancel", staff.cancel_staff_prompt, by_staff))
        application.add_handler(CommandHandler("help", staff.show_staff_help, by_staff))
        application.add_handler(
            MessageHandler(by_staff & filters.TEXT & ~filters.COMMAND, staff.receive_staff_text)
        )
        application.add_handler(
            MessageHandler(by_staff & filters.Document.ALL, staff.receive_document)
        )
    # First: who staff are, as Telegram shows them now (name, language).
    application.add_handler(TypeHandler(Update, staff.note_staff), -2)
    # Before anything else: a registration's confirmation that failed to arrive.
    application.add_handler(TypeHandler(Update, registration.deliver_pending_confirmation), -1)
    # Order matters within group 0: commands first, then edits, typed answers, buttons,
    # and a catch-all for the rest (stickers, photos, unknown commands). The
    # conversation needs no handler of its own: the draft says what a message answers.
    application.add_handler(CommandHandler("start", partner.start, messages))
    application.add_handler(CommandHandler("new", registration.start_registration, messages))
    application.add_handler(CommandHandler("cancel", registration.cancel_registration, messages))
    application.add_handler(CommandHandler("check", registration.check_customer, messages))
    application.add_handler(CommandHandler("status", partner.show_status, messages))
    application.add_handler(CommandHandler("settings", partner.show_settings, messages))
    application.add_handler(CommandHandler("help", partner.show_help, messages))
    application.add_handler(CommandHandler("privacy", privacy.show_privacy, messages))
    # Staff commands: anyone else gets the answer to an unknown command (staff_only).
    application.add_handler(CommandHandler("pending", staff.show_pending, messages))
    application.add_handler(CommandHandler("find", staff.find, messages))
    application.add_handler(CommandHandler("stats", staff.show_stats, messages))
    application.add_handler(CommandHandler("broadcast", staff.start_broadcast, messages))
    application.add_handler(CommandHandler("broadcasts", staff.list_broadcasts, messages))
    application.add_handler(CommandHandler("export", staff.export_registrations, messages))
    application.add_handler(CommandHandler("payouts", staff.show_payouts, messages))
    application.add_handler(
        MessageHandler(private & filters.UpdateType.EDITED_MESSAGE, registration.receive_edit)
    )
    application.add_handler(
        MessageHandler(messages & filters.TEXT & ~filters.COMMAND, registration.receive_text)
    )
    application.add_handler(CallbackQueryHandler(press_button))
    # `@bot VAT` from any chat (PRODUCT.md §6); needs inline mode on at @BotFather.
    application.add_handler(InlineQueryHandler(inline.answer_inline))
    application.add_handler(MessageHandler(messages, registration.receive_other))
    application.add_error_handler(report_error)


async def press_button(update: Update, context: Context) -> None:
    """Read the button's data and hand it to its handler; forged or old data is "expired"."""
    query = update.callback_query
    assert query is not None
    button = callbacks.parse(query.data)
    if isinstance(button, callbacks.StaffButton):
        await staff.press_staff_button(update, context, button)
    elif isinstance(button, callbacks.PrivacyButton):
        await privacy.press_privacy_button(update, context, button)
    else:
        await press_partner_button(update, context)


@linked_only(default=None)
async def press_partner_button(
    update: Update, context: Context, account: Account, texts: Texts
) -> None:
    query = update.callback_query
    assert query is not None
    button = callbacks.parse(query.data)
    if button is None or isinstance(button, callbacks.StaffButton | callbacks.PrivacyButton):
        await answer_stale(update, texts)
    elif isinstance(button, callbacks.DraftButton):
        await registration.press_draft_button(update, context, account, texts, button)
    elif isinstance(button, callbacks.StartRegistration):
        await registration.start_from_button(update, context, account, texts)
    elif isinstance(button, callbacks.ConflictButton):
        await conflicts.press_conflict_button(update, context, account, texts, button)
    elif isinstance(button, callbacks.FollowupButton):
        await followups.press_followup_button(update, context, account, texts, button)
    else:
        await partner.press_partner_button(update, context, account, texts, button)


async def report_error(update: object, context: Context) -> None:
    """Log the failure without personal data and tell the user something went wrong.

    A registration under way is kept, marked so that the user's next message gets
    its question again rather than being read as the answer to one they never saw.
    """
    error = context.error
    note_update_failure(error)  # the update's log line says how it ended
    if not isinstance(update, Update) and isinstance(error, NetworkError):
        # Fetching updates failed (Telegram away for a while): PTB tries again by itself.
        log.warning("the Bot API cannot be reached (%s): trying again", type(error).__name__)
        return
    update_id = update.update_id if isinstance(update, Update) else None
    trouble = database_failure(error) if error is not None else None
    if trouble is not None:  # the database away, busy or full: one line, no traceback
        log.error("update %s failed: %s", update_id, trouble)
    else:
        log.error(
            "update %s failed: %s",
            update_id,
            type(error).__name__,
            exc_info=(type(error), error, error.__traceback__) if error else None,
        )
    if not isinstance(update, Update) or update.effective_chat is None:
        return
    if update.effective_chat.type == update.effective_chat.PRIVATE:
        await apologise(update, context, cannot_save=trouble is not None)
    # Nothing else handles this update: a later group would fail the same way and
    # apologise once more.
    raise ApplicationHandlerStop


async def apologise(update: Update, context: Context, *, cannot_save: bool) -> None:
    """Say something went wrong, in words that need no database (it may be what failed):
    the language Telegram gives, or the account's if this update already read it."""
    update_id = update.update_id
    texts = texts_for(update, account_already_read(update))
    try:
        await reply(update, texts("error_cannot_save" if cannot_save else "error_generic"))
    except Exception:  # Telegram away too
        log.warning("could not tell the user about the failure of update %s", update_id)
    await answer_query(update)
    if cannot_save:
        return  # the question did arrive; its answer was not kept: the next one answers it
    try:
        await mark_draft_interrupted(update, context)
    except Exception as exc:
        log.info("update %s: the draft could not be marked: %s", update_id, type(exc).__name__)


async def mark_draft_interrupted(update: Update, context: Context) -> None:
    user = update.effective_user
    if user is None:
        return
    drafts = drafts_of(context)
    draft = await drafts.load(user.id)
    if draft is not None and not draft.interrupted:
        draft.interrupted = True
        await drafts.save(user.id, draft)
