"""A VAT number from a photo, an image or a PDF (PRODUCT.md §6): sent where the bot
asks for a VAT number, or by a linked salesperson outside any conversation (which
starts /new). The numbers found come back as buttons; the one tapped goes on as if
typed (registration.take_vat)."""

from __future__ import annotations

import logging

from telegram import InlineKeyboardMarkup, Message, Update
from telegram.constants import ChatAction
from telegram.error import TelegramError

from bot.domain.drafts import Draft, Step
from bot.i18n import Texts
from bot.services.photos import MAX_BYTES, UnreadableFile, read_vat_numbers
from bot.telegram.sending import best_effort
from handlers.callbacks import PickVat, keyboard
from handlers.common import Context, drafts_of, reply, resources, user_id_of

log = logging.getLogger(__name__)

IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp", "image/tiff", "image/bmp", "image/gif")
PDF_TYPE = "application/pdf"


def readable_file(message: Message | None) -> tuple[str, int | None, str | None] | None:
    """The file id, size and type of a photo, an image or a PDF in the message; None for
    anything else (a sticker, a voice note, an Excel file)."""
    if message is None:
        return None
    if message.photo:
        largest = message.photo[-1]
        return largest.file_id, largest.file_size, "image/jpeg"
    document = message.document
    if document is not None and (document.mime_type or "") in (*IMAGE_TYPES, PDF_TYPE):
        return document.file_id, document.file_size, document.mime_type
    return None


async def read_photo(update: Update, context: Context, texts: Texts, draft: Draft | None) -> None:
    """Read the VAT numbers of the file in the message and offer them as buttons; the
    draft (a new one when none was under way) waits for the number as before."""
    shared = resources(context)
    message = update.effective_message
    found = readable_file(message)
    assert found is not None
    assert message is not None
    file_id, size, mime_type = found
    draft = draft or Draft(touched_at=shared.now())
    draft.step = Step.VAT
    try:
        if (size or 0) > MAX_BYTES:
            raise UnreadableFile("too_big")
        await best_effort("showing that the bot reads", message.chat.send_action(ChatAction.TYPING))
        data = await download(context, file_id)
        reading = await read_vat_numbers(data, mime_type=mime_type, country=shared.rules.country)
    except UnreadableFile as refused:
        await keep_and_say(update, context, texts, draft, texts(f"photo_{refused.reason}"))
        return
    if not reading.candidates:
        await keep_and_say(update, context, texts, draft, texts("photo_none"))
        return
    key = "photo_found_one" if len(reading.candidates) == 1 else "photo_found"
    buttons = keyboard(*([(vat, PickVat(draft.id, vat))] for vat in reading.candidates))
    await keep_and_say(update, context, texts, draft, texts(key), buttons)


async def download(context: Context, file_id: str) -> bytes:
    """The file's bytes, in memory only; a file Telegram will not hand over is too big."""
    try:
        file = await context.bot.get_file(file_id)
        return bytes(await file.download_as_bytearray())
    except TelegramError as exc:
        # "file is too big" past 20 MB, or a file id gone stale: not readable either way.
        log.info("a photo could not be fetched: %s", type(exc).__name__)
        raise UnreadableFile("too_big" if "too big" in str(exc).lower() else "not_image") from None


async def keep_and_say(
    update: Update,
    context: Context,
    texts: Texts,
    draft: Draft,
    said: str,
    buttons: InlineKeyboardMarkup | None = None,
) -> None:
    """Keep the draft at the VAT question and answer with what the file gave, above the
    question (typing the number always works)."""
    draft.touched_at = resources(context).now()
    draft.interrupted = False
    await drafts_of(context).save(user_id_of(update), draft)
    await reply(update, f"{said}\n\n{texts('ask_vat')}", buttons)
