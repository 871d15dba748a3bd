"""Files partners sent (evidence, proof), shown to staff by their Telegram ids."""

from __future__ import annotations

from telegram import Bot

from bot.i18n import Texts
from bot.services.items import FileView
from bot.telegram.sending import best_effort


async def send_file(bot: Bot, chat_id: int, texts: Texts, reference: str, sent: FileView) -> None:
    """A partner's file, shown to staff by its Telegram id: it never passes through us."""
    caption = texts.plain(
        "staff_file_caption", purpose=texts.plain(f"purpose_{sent.purpose}"), reference=reference
    )
    send = bot.send_photo if sent.kind == "photo" else bot.send_document
    await best_effort("showing staff a file", send(chat_id, sent.file_id, caption=caption))
