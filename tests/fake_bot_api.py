"""The fake Bot API moved into the package (bot/fakeapi.py), shared with `pai-bot demo`."""

from bot.fakeapi import *  # noqa: F403
from bot.fakeapi import (
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
