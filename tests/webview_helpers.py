"""The web view served by the bot's own listener on a free port, beside a harness bot:
for the HTTP tests, the browser tests and bench/webview.py."""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from bot.app import web
from bot.app.webview import WebApp
from bot.telegram.initdata import init_data_for
from tests.harness import TOKEN, Harness

PATH = "/app"


@dataclass
class Served:
    base: str  # http://127.0.0.1:PORT/app
    bot: Harness

    def init_data(self, user_id: int, language: str = "en", at: dt.datetime | None = None) -> str:
        moment = at or self.bot.clock.now()
        return init_data_for(user_id, bot_token=TOKEN, at=moment, language=language)

    def auth(self, user_id: int, language: str = "en") -> dict[str, str]:
        return {"Authorization": f"tma {self.init_data(user_id, language)}"}


@asynccontextmanager
async def serving_web_view(bot: Harness) -> AsyncIterator[Served]:
    webapp = WebApp(url=f"https://bot.example.com{PATH}", path=PATH)
    server = web.guarded_server(
        lambda guard: web.listener(bot.app, None, "", guard, webapp)  # type: ignore[arg-type]
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    server.add_sockets([sock])
    try:
        yield Served(f"http://127.0.0.1:{sock.getsockname()[1]}{PATH}", bot)
    finally:
        server.stop()
        await server.close_all_connections()
