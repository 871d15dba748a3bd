"""Talking to the assembled bot as users do, through the fake Bot API, in process.

Updates go through the same queue, the same checks and the same per-user
concurrency as in production; only getUpdates is skipped.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from telegram import Bot
from telegram.error import NetworkError
from telegram.request import BaseRequest

from bot.app.application import build_application
from bot.app.demo.telegram import FakeBotApi, FakeRequest, User
from bot.config import Settings
from bot.domain.clock import ManualClock
from bot.resources import Resources
from bot.telegram.context import App
from bot.telegram.updates import checked_updates

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0"
# The Bot API methods that put a message on the user's screen or change one: each
# spends Telegram's send budget. answerCallbackQuery (a spinner stopped) is not one.
MESSAGE_METHODS = frozenset(
    {"sendMessage", "sendPhoto", "sendDocument", "editMessageText", "editMessageReplyMarkup"}
)
# A weekday morning in Rome, so that dates in the tests do not depend on the day they run.
START = dt.datetime(2026, 11, 24, 9, 30, tzinfo=dt.UTC)


@dataclass
class Harness:
    api: FakeBotApi
    app: App
    clock: ManualClock

    @property
    def resources(self) -> Resources:
        return self.app.bot_data.resources

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        return self.resources.sessions

    def today(self) -> dt.date:
        return self.resources.today()

    async def post(self) -> None:
        """Hand every queued update to the bot, as polling would, without waiting."""
        while self.api.pending:
            for update in checked_updates([self.api.take_update()], self.app.bot):
                await self.app.update_queue.put(update)

    async def deliver(self) -> None:
        """Hand the queued updates to the bot and wait until every one is handled."""
        await self.post()
        await self.app.update_queue.join()
        await self.resources.settle()

    async def wait_until(self, condition: Callable[[], bool], within: float = 10.0) -> float:
        """Wait for `condition` while the bot works; return the seconds it took."""
        started = time.monotonic()
        while not condition():
            if time.monotonic() - started > within:
                raise AssertionError("the bot did not answer in time")
            await asyncio.sleep(0.01)
        return time.monotonic() - started

    def chat(self, user_id: int, language: str = "it") -> Chat:
        return Chat(self, User(id=user_id, language_code=language))


@dataclass
class Chat:
    harness: Harness
    user: User
    # The update of the user's last message, for editing it later.
    said: dict[str, Any] | None = None

    async def send(self, text: str | None = None, **content: Any) -> list[dict[str, Any]]:
        """Send a message; return the bot's messages sent in answer."""
        before = len(self.harness.api.sent_to(self.user.id))
        self.said = self.harness.api.user_sends(self.user, text, **content)
        await self.harness.deliver()
        return self.harness.api.sent_to(self.user.id)[before:]

    async def edit(self, message: dict[str, Any], text: str) -> list[dict[str, Any]]:
        """Edit one of the user's own messages; return the bot's messages sent in answer."""
        before = len(self.harness.api.sent_to(self.user.id))
        self.harness.api.user_edits(self.user, message, text)
        await self.harness.deliver()
        return self.harness.api.sent_to(self.user.id)[before:]

    async def press(self, message: dict[str, Any], label: str) -> list[dict[str, Any]]:
        """Press the button labelled `label` (a substring) on `message`."""
        data = button_data(message, label)
        return await self.press_data(message, data)

    async def press_data(self, message: dict[str, Any], data: str | None) -> list[dict[str, Any]]:
        before = len(self.harness.api.sent_to(self.user.id))
        self.harness.api.user_presses(self.user, message, data)
        await self.harness.deliver()
        return self.harness.api.sent_to(self.user.id)[before:]

    @property
    def last(self) -> dict[str, Any]:
        return self.harness.api.sent_to(self.user.id)[-1]

    def messages(self) -> list[dict[str, Any]]:
        return self.harness.api.sent_to(self.user.id)

    def message_calls(self) -> list[str]:
        """The bot's calls that sent or edited a message in this chat, by method, in order."""
        return [
            method
            for method, params in self.harness.api.calls
            if method in MESSAGE_METHODS and str(params.get("chat_id")) == str(self.user.id)
        ]

    def popups(self) -> list[str]:
        """The texts of the button answers (pop-ups) the user got."""
        return [
            str(params.get("text", ""))
            for params in self.harness.api.answers()
            if params.get("callback_query_id") in self.harness.api.queries_of(self.user.id)
        ]


def buttons(message: dict[str, Any]) -> list[tuple[str, str]]:
    keyboard = message.get("reply_markup", {}).get("inline_keyboard", [])
    return [(b["text"], b.get("callback_data", "")) for row in keyboard for b in row]


def button_data(message: dict[str, Any], label: str) -> str:
    for text, data in buttons(message):
        if label in text:
            return data
    raise AssertionError(f"no button {label!r} on {message['text']!r}: {buttons(message)}")


def settings_for(database_url: str, **overrides: Any) -> Settings:
    # The fake answers at once: no need to pace messages as for Telegram, unless a test
    # is about the pace.
    pace = {"pai_telegram_rate": 1000, "pai_broadcast_rate": 1000}
    # Tests never reach the EU: VIES is on only where a test points it at its fake.
    pace["pai_vies"] = False
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        telegram_bot_token=TOKEN,
        database_url=database_url,
        **{**pace, **overrides},
    )


@asynccontextmanager
async def running_bot(
    tmp_path: Path,
    api: FakeBotApi | None = None,
    *,
    database_url: str | None = None,
    **settings: Any,
) -> AsyncIterator[Harness]:
    api = api or FakeBotApi()
    clock = ManualClock(START)
    app = build_application(
        settings_for(database_url or f"sqlite:///{tmp_path / 'bot.db'}", **settings),
        request=FakeRequest(api),
        updates_request=FakeRequest(api),
        clock=clock,
        schedule_reminders=False,
        # A test that wants the web view serves it on a free port (tests/webview_helpers.py),
        # never the fixed PAI_WEBHOOK_LISTEN port another test process may hold.
        serve_web_view=False,
    )
    await app.initialize()
    assert app.post_init is not None
    await app.post_init(app)
    await app.start()
    try:
        yield Harness(api, app, clock)
    finally:
        # In python-telegram-bot's own order: stop, post_stop, shutdown, post_shutdown.
        await app.stop()
        assert app.post_stop is not None
        await app.post_stop(app)
        await app.shutdown()
        assert app.post_shutdown is not None
        await app.post_shutdown(app)


async def failed_send(
    request: BaseRequest, base_url: str = "https://api.telegram.org/bot"
) -> NetworkError:
    """How a send through `request` fails (it must): what the retry rules look at."""
    bot = Bot(TOKEN, base_url=base_url, request=request)
    await request.initialize()
    try:
        await bot.send_message(1, "news")
    except NetworkError as failure:
        return failure
    finally:
        await request.shutdown()
    raise AssertionError("the send went through")
