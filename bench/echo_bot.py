"""The baseline of bench.e2e: python-telegram-bot's echo bot, polling, and nothing else.

Same library and version as the real bot, PTB's own HTTP layer (httpx) and the
same long polling; it answers every text with one message. Reads
TELEGRAM_BOT_TOKEN and TELEGRAM_API_BASE_URL (the fake Bot API's `…/bot`
address); with ECHO_TRANSPORT=aiohttp it talks through the bot's HTTP layer
(bot/telegram/transport.py) instead, to tell what the layer saves from what the bot does.

    TELEGRAM_BOT_TOKEN=… TELEGRAM_API_BASE_URL=http://127.0.0.1:PORT/bot python -m bench.echo_bot
"""

from __future__ import annotations

import os

from telegram import Update
from telegram.ext import Application, ContextTypes, MessageHandler, filters

from bot.telegram.transport import AiohttpRequest


async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Send the user's text back."""
    if update.message is not None and update.message.text is not None:
        await update.message.reply_text(update.message.text)


def main() -> None:
    builder = (
        Application.builder()
        .token(os.environ["TELEGRAM_BOT_TOKEN"])
        .base_url(os.environ["TELEGRAM_API_BASE_URL"])
    )
    if os.environ.get("ECHO_TRANSPORT") == "aiohttp":
        builder = builder.request(AiohttpRequest(connection_pool_size=256)).get_updates_request(
            AiohttpRequest(connection_pool_size=1)
        )
    application = builder.build()
    application.add_handler(MessageHandler(filters.TEXT, echo))
    application.run_polling(allowed_updates=[Update.MESSAGE])


if __name__ == "__main__":
    main()
