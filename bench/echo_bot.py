"""The baseline of bench.e2e: python-telegram-bot's echo bot, polling, and nothing else.

Same library and version as the real bot, the same HTTP layer and the same
long polling; it answers every text with one message. Reads TELEGRAM_BOT_TOKEN
and TELEGRAM_API_BASE_URL (the fake Bot API's `…/bot` address).

    TELEGRAM_BOT_TOKEN=… TELEGRAM_API_BASE_URL=http://127.0.0.1:PORT/bot python -m bench.echo_bot
"""

from __future__ import annotations

import os

from telegram import Update
from telegram.ext import Application, ContextTypes, MessageHandler, filters


async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Send the user's text back."""
    if update.message is not None and update.message.text is not None:
        await update.message.reply_text(update.message.text)


def main() -> None:
    application = (
        Application.builder()
        .token(os.environ["TELEGRAM_BOT_TOKEN"])
        .base_url(os.environ["TELEGRAM_API_BASE_URL"])
        .build()
    )
    application.add_handler(MessageHandler(filters.TEXT, echo))
    application.run_polling(allowed_updates=[Update.MESSAGE])


if __name__ == "__main__":
    main()
