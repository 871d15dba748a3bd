"""Talking to the assembled bot as users do, through the fake Bot API, in process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from telegram import Update
from telegram.ext import Application

from bot.app import build_application
from bot.config import Settings
from handlers.common import DEPS_KEY
from tests.fake_bot_api import FakeBotApi, FakeRequest, User

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0"


@dataclass
class Harness:
    api: FakeBotApi
    app: Application

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        return self.app.bot_data[DEPS_KEY].sessions

    async def deliver(self) -> None:
        while self.api.pending:
            update = self.api.take_update()
            await self.app.process_update(Update.de_json(update, self.app.bot))

    def chat(self, user_id: int, language: str = "it") -> Chat:
        return Chat(self, User(id=user_id, language_code=language))


@dataclass
class Chat:
    harness: Harness
    user: User

    async def send(self, text: str | None = None, **content: Any) -> list[dict[str, Any]]:
        """Send a message; return the bot's messages sent in answer."""
        before = len(self.harness.api.sent_to(self.user.id))
        self.harness.api.user_sends(self.user, text, **content)
        await self.harness.deliver()
        return self.harness.api.sent_to(self.user.id)[before:]

    async def press(self, message: dict[str, Any], label: str) -> list[dict[str, Any]]:
        """Press the button labelled `label` (a substring) on `message`."""
        data = button_data(message, label)
        return await self.press_data(message, data)

    async def press_data(self, message: dict[str, Any], data: str) -> list[dict[str, Any]]:
        before = len(self.harness.api.sent_to(self.user.id))
        self.harness.api.user_presses(self.user, message, data)
        await self.harness.deliver()
        return self.harness.api.sent_to(self.user.id)[before:]

    @property
    def last(self) -> dict[str, Any]:
        return self.harness.api.sent_to(self.user.id)[-1]

    def messages(self) -> list[dict[str, Any]]:
        return self.harness.api.sent_to(self.user.id)


def buttons(message: dict[str, Any]) -> list[tuple[str, str]]:
    keyboard = message.get("reply_markup", {}).get("inline_keyboard", [])
    return [(b["text"], b.get("callback_data", "")) for row in keyboard for b in row]


def button_data(message: dict[str, Any], label: str) -> str:
    for text, data in buttons(message):
        if label in text:
            return data
    raise AssertionError(f"no button {label!r} on {message['text']!r}: {buttons(message)}")


@asynccontextmanager
async def running_bot(tmp_path: Path, api: FakeBotApi | None = None) -> AsyncIterator[Harness]:
    api = api or FakeBotApi()
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        telegram_bot_token=TOKEN,
        database_url=f"sqlite:///{tmp_path / 'bot.db'}",
    )
    app = build_application(settings, request=FakeRequest(api), updates_request=FakeRequest(api))
    await app.initialize()
    assert app.post_init is not None
    await app.post_init(app)
    await app.start()
    try:
        yield Harness(api, app)
    finally:
        await app.stop()
        assert app.post_shutdown is not None
        await app.post_shutdown(app)
        await app.shutdown()
