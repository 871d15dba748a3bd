"""The fake Bot API lives in the package (bot/app/demo/telegram.py), shared with the demo."""

from bot.app.demo.telegram import *  # noqa: F403
from bot.app.demo.telegram import (
    BOT_ID,
    BOT_USERNAME,
    FakeBotApi,
    FakeRequest,
    TelegramError,
    Timeout,
    User,
    plain_text,
    serve_http,
)

__all__ = [
    "BOT_ID",
    "BOT_USERNAME",
    "FakeBotApi",
    "FakeRequest",
    "TelegramError",
    "Timeout",
    "User",
    "plain_text",
    "serve_http",
]
