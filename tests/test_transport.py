"""The bot's HTTP to the Bot API (bot/telegram/transport.py), against real servers on 127.0.0.1.

Each failure Telegram or the way to it can produce must come out as PTB's own layer
would give it, with what `surely_not_delivered` needs to tell a send that never left
(sent again) from one Telegram may have taken (never sent again).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web
from telegram import Bot
from telegram.error import BadRequest, NetworkError, TimedOut

from bot.app.application import build_application
from bot.telegram.ratelimit import surely_not_delivered
from bot.telegram.transport import AiohttpRequest
from bot.telegram.updates import CheckedUpdates
from tests.harness import TOKEN, failed_send, settings_for

MESSAGE = {
    "message_id": 5,
    "date": 1_700_000_000,
    "chat": {"id": 1, "type": "private", "first_name": "Ada"},
    "text": "news",
}

Answer = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def api(answer: Answer) -> AsyncIterator[tuple[Bot, list[dict[str, Any]]]]:
    """A Bot API on 127.0.0.1 answering every call with `answer`, and a bot talking to
    it through the transport; the calls it received, as their method and form."""
    received: list[dict[str, Any]] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        received.append({"method": request.path.rsplit("/", 1)[-1], "request": request})
        return await answer(request)

    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", handle)
    # Handlers still waiting (a server that never answers) are cut short at the end.
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    request = AiohttpRequest(connection_pool_size=1)
    bot = Bot(TOKEN, base_url=f"http://127.0.0.1:{port}/bot", request=request)
    await request.initialize()
    try:
        yield bot, received
    finally:
        await request.shutdown()
        await runner.cleanup()


def ok(result: Any) -> Answer:
    async def answer(request: web.Request) -> web.StreamResponse:
        return web.json_response({"ok": True, "result": result})

    return answer


async def test_a_send_goes_as_a_form_and_its_answer_comes_back_as_a_message():
    forms: list[dict[str, str]] = []

    async def answer(request: web.Request) -> web.StreamResponse:
        forms.append(dict(await request.post()))  # type: ignore[arg-type]
        return web.json_response({"ok": True, "result": MESSAGE})

    async with api(answer) as (bot, received):
        message = await bot.send_message(1, "news", parse_mode="HTML")
    assert message.message_id == 5 and message.text == "news"
    assert [call["method"] for call in received] == ["sendMessage"]
    assert forms == [{"chat_id": "1", "text": "news", "parse_mode": "HTML"}]


async def test_a_document_is_uploaded_as_multipart_with_its_name_and_bytes():
    parts: dict[str, Any] = {}

    async def answer(request: web.Request) -> web.StreamResponse:
        form = await request.post()
        parts.update(form)
        parts["content"] = form["document"].file.read()  # type: ignore[union-attr]
        return web.json_response({"ok": True, "result": {**MESSAGE, "text": None}})

    async with api(answer) as (bot, _received):
        await bot.send_document(1, b"vat,company\n", filename="città 2026.csv", caption="x")
    upload = parts["document"]
    assert upload.filename == "città 2026.csv"  # as it is, not percent-encoded
    assert parts["content"] == b"vat,company\n"
    assert parts["chat_id"] == "1" and parts["caption"] == "x"


async def test_telegram_refusing_a_send_is_bad_request_as_ptb_says_it():
    async def answer(request: web.Request) -> web.StreamResponse:
        body = {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}
        return web.json_response(body, status=400)

    async with api(answer) as (bot, _received):
        with pytest.raises(BadRequest, match="Chat not found"):
            await bot.send_message(1, "news")


async def test_a_redirect_is_not_followed_so_a_message_is_never_posted_twice():
    async def answer(request: web.Request) -> web.StreamResponse:
        if request.path.endswith("/again"):
            return web.json_response({"ok": True, "result": MESSAGE})
        raise web.HTTPTemporaryRedirect(location=f"{request.path}/again")

    async with api(answer) as (bot, received):
        with pytest.raises(NetworkError):
            await bot.send_message(1, "news")
    assert [call["method"] for call in received] == ["sendMessage"]


def status(code: int, body: bytes, content_type: str) -> Answer:
    async def answer(request: web.Request) -> web.StreamResponse:
        return web.Response(status=code, body=body, content_type=content_type)

    return answer


def hang_up() -> Answer:
    """Read the request, then drop the connection without a word."""

    async def answer(request: web.Request) -> web.StreamResponse:
        await request.read()
        assert request.transport is not None
        request.transport.close()
        await asyncio.sleep(1)
        return web.Response()

    return answer


def never_answer() -> Answer:
    async def answer(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(30)
        return web.Response()

    return answer


# What the server does, and whether sending again after it is safe.
ANSWERS = {
    "500 from Telegram": (
        status(500, json.dumps({"ok": False, "description": "Internal"}).encode(), "text/json"),
        True,
    ),
    "502 page from a proxy": (status(502, b"<html>Bad Gateway</html>", "text/html"), True),
    "503, empty": (status(503, b"", "text/plain"), True),
    "504 page: Telegram may have it": (status(504, b"<html>timeout</html>", "text/html"), False),
    "dropped after reading the send": (hang_up(), False),
    "no answer within the read timeout": (never_answer(), False),
}


@pytest.mark.parametrize("case", list(ANSWERS))
async def test_a_failed_send_says_whether_it_may_have_reached_telegram(case):
    answer, safe = ANSWERS[case]
    async with api(answer) as (bot, _received):
        with pytest.raises(NetworkError) as failed:
            await bot.send_message(1, "news", read_timeout=0.3)
    assert surely_not_delivered(failed.value) is safe


async def test_a_refused_connection_is_safe_to_send_again():
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()  # nobody listens there now
    failure = await failed_send(AiohttpRequest(), f"http://127.0.0.1:{port}/bot")
    assert "aiohttp.ClientConnectorError" in str(failure)
    assert surely_not_delivered(failure)


async def test_waiting_too_long_for_a_connection_of_the_pool_is_safe_to_send_again():
    async with api(never_answer()) as (bot, _received):
        busy = asyncio.create_task(bot.send_message(1, "first", read_timeout=5))
        await asyncio.sleep(0.2)  # the pool's one connection is taken
        with pytest.raises(TimedOut) as failed:
            await bot.send_message(1, "second", pool_timeout=0.2, connect_timeout=0.2)
        busy.cancel()
        await asyncio.gather(busy, return_exceptions=True)
    assert surely_not_delivered(failed.value)


async def test_the_bot_talks_to_telegram_through_the_transport(tmp_path):
    application = build_application(settings_for(f"sqlite:///{tmp_path / 'bot.db'}"))
    assert isinstance(application.bot.request, AiohttpRequest)
    updates = application.bot._request[0]  # PTB keeps getUpdates' layer first
    assert isinstance(updates, CheckedUpdates) and isinstance(updates._inner, AiohttpRequest)


async def test_a_proxy_from_the_environment_is_used_except_for_no_proxy_hosts(monkeypatch):
    async with api(ok(MESSAGE)) as (local, received):
        proxy = str(local.base_url).rsplit("/bot", 1)[0]
        monkeypatch.setenv("HTTP_PROXY", proxy)
        far = AiohttpRequest()
        bot = Bot(TOKEN, base_url="http://api.telegram.invalid/bot", request=far)
        await far.initialize()
        try:
            await bot.send_message(1, "through the proxy")
        finally:
            await far.shutdown()
        assert [call["request"].host for call in received] == ["api.telegram.invalid"]

        monkeypatch.setenv("NO_PROXY", "api.telegram.invalid")
        direct = AiohttpRequest()
        bot = Bot(TOKEN, base_url="http://api.telegram.invalid/bot", request=direct)
        await direct.initialize()
        try:
            with pytest.raises(NetworkError):  # no such host, and no proxy to ask
                await bot.send_message(1, "straight there")
        finally:
            await direct.shutdown()
        assert len(received) == 1


async def test_a_proxys_html_error_page_is_a_failure_without_ptbs_traceback(caplog):
    async def answer(request: web.Request) -> web.StreamResponse:
        page = "<html><body><h1>502 Bad Gateway</h1>nginx</body></html>"
        return web.Response(status=502, text=page, content_type="text/html")

    async with api(answer) as (bot, _received):
        with pytest.raises(NetworkError):
            await bot.send_message(1, "news")
    assert not [r for r in caplog.records if "invalid JSON" in r.getMessage()]
    assert not [r for r in caplog.records if r.exc_info]  # nothing logged with a traceback
    assert "nginx" not in caplog.text  # nor the page itself
