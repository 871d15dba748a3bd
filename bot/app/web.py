"""Webhook mode: Telegram posts each update to us, through a proxy that forwards the
path of PAI_WEBHOOK_URL as it is. Any number of instances can serve it.

The listener is our own small tornado application (tornado is what PTB's webhook
extra brings) rather than PTB's `run_webhook`: PTB compares the secret token with
`!=` and logs a wrong one, and it has no room for `GET /healthz` on the same port.
Tornado stays, rather than aiohttp's server, for what the port needs when anyone can
reach it: a deadline for the headers and for the body (aiohttp has none for the
headers: a client that trickles them holds its connection for ever), and a handler
that reads the headers before the body, so a request without the secret is refused
before a byte of its body is read. bot/app/guard.py caps the connections.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import secrets
import signal
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

import tornado.web
from sqlalchemy import text
from tornado.http1connection import HTTP1Connection

from bot.app.guard import BODY_TIMEOUT, HEADER_TIMEOUT, Guard, GuardedServer, connection_cap
from bot.app.webview import WebApp, webapp_of
from bot.app.webview import routes as web_view_routes
from bot.config import ConfigurationError, Settings
from bot.resources import Resources
from bot.services.accounts import remembered_or_new_webhook_secret
from bot.telegram.context import App
from bot.telegram.updates import read_update

log = logging.getLogger(__name__)
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# What Telegram accepts as a secret token.
_SECRET_SHAPE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
# An update is at most a few kB; anything much larger is not from Telegram.
MAX_BODY = 1024 * 1024
# What is read of a request before the handler has seen its secret or on any other
# path (/healthz has no body): a stranger's body never takes more than this.
MAX_OTHER_BODY = 4 * 1024
# Telegram's and a proxy's headers are well under 1 kB.
MAX_HEADERS = 16 * 1024
# How long /healthz waits for the database before saying it is unreachable.
HEALTH_TIMEOUT = 3.0


@dataclass(frozen=True)
class Webhook:
    url: str
    path: str
    host: str
    port: int


def webhook_of(settings: Settings) -> Webhook:
    """PAI_WEBHOOK_URL and PAI_WEBHOOK_LISTEN, checked; one sentence when wrong."""
    url = (settings.pai_webhook_url or "").strip()
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ConfigurationError(
            "PAI_WEBHOOK_URL must be the public https address Telegram posts to, "
            "such as https://bot.example.com/telegram"
        )
    host, port = listen_address(settings)
    return Webhook(url=url, path=parts.path or "/", host=host, port=port)


def listen_address(settings: Settings) -> tuple[str, int]:
    """PAI_WEBHOOK_LISTEN: where the listener (webhook, web view, /healthz) listens."""
    host, _, port = settings.pai_webhook_listen.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigurationError(
            "PAI_WEBHOOK_LISTEN must be an address and a port, such as 127.0.0.1:8080"
        )
    return host.strip("[]"), int(port)


def checked_secret(settings: Settings) -> str | None:
    if settings.pai_webhook_secret is None:
        return None
    secret = settings.pai_webhook_secret.get_secret_value()
    if not _SECRET_SHAPE.match(secret):
        raise ConfigurationError(
            "PAI_WEBHOOK_SECRET may hold only letters, digits, _ and -, up to 256 of them"
        )
    return secret


@tornado.web.stream_request_body
class UpdateReceiver(tornado.web.RequestHandler):
    """POST <path>: one update from Telegram, proven by the secret token header, which
    is checked as soon as the headers are in: the body of a request without it is
    never read."""

    def initialize(self, bot_application: App, secret: str, guard: Guard) -> None:
        self.application_ = bot_application
        self.secret = secret.encode()
        self.guard = guard
        self.chunks: list[bytes] = []

    def prepare(self) -> None:
        # Whatever the method: a GET with a body is read as a POST's would be.
        given = self.request.headers.get(SECRET_HEADER, "").encode()
        connection = self.request.connection
        assert isinstance(connection, HTTP1Connection)  # what tornado's HTTPServer gives
        # Constant time: how much of a guess was right must not show in the timing.
        if not hmac.compare_digest(given, self.secret):
            self.guard.distrust(connection.stream)
            self.send_error(HTTPStatus.FORBIDDEN)
            return
        self.guard.trust(connection.stream)
        # The listener reads MAX_OTHER_BODY of anyone's request; an update may be larger.
        connection.set_max_body_size(MAX_BODY)

    def data_received(self, chunk: bytes) -> None:
        self.chunks.append(chunk)  # tornado holds the whole to MAX_BODY

    async def post(self) -> None:
        try:
            update = json.loads(b"".join(self.chunks))
        except ValueError:
            self.send_error(HTTPStatus.BAD_REQUEST)
            return
        checked = read_update(update, self.application_.bot)
        if checked is not None:
            await self.application_.update_queue.put(checked)
        self.set_status(HTTPStatus.OK)

    def log_exception(self, *args: Any) -> None:
        # Anyone can post a wrong method or a bad body, as often as they like: those
        # are answered, never logged. A failure of ours is one line.
        if isinstance(args[1], tornado.web.HTTPError) and args[1].status_code < 500:
            return
        log.warning("webhook request failed: %s", args[0].__name__ if args[0] else "?")


class Health(tornado.web.RequestHandler):
    """GET /healthz: 200 while the database answers, 503 when it does not."""

    def initialize(self, bot_application: App) -> None:
        self.application_ = bot_application

    async def get(self) -> None:
        state = self.application_.bot_data
        database = "starting" if not state.started else await _database_state(state.resources)
        self.set_status(HTTPStatus.OK if database == "ok" else HTTPStatus.SERVICE_UNAVAILABLE)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        leads = state.leadership is not None and state.leadership.held
        self.finish(json.dumps({"database": database, "leader": leads}))


async def _database_state(shared: Resources) -> str:
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT), shared.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception:
        return "unreachable"
    return "ok"


def listener(
    application: App,
    webhook: Webhook | None,
    secret: str,
    guard: Guard,
    webapp: WebApp | None = None,
) -> tornado.web.Application:
    """One tornado application on the open port: the webhook (webhook mode), the web view
    (with PAI_WEBAPP_URL) and /healthz."""
    routes: list[Any] = [(r"/healthz", Health, {"bot_application": application})]
    if webhook is not None:
        routes.insert(
            0,
            (
                re.escape(webhook.path),
                UpdateReceiver,
                {"bot_application": application, "secret": secret, "guard": guard},
            ),
        )
    if webapp is not None:
        routes += web_view_routes(application, webapp)
    return tornado.web.Application(
        routes,
        log_function=lambda handler: None,  # one line per update comes from the bot itself
    )


def serve_web_view_while_polling(application: App, settings: Settings) -> GuardedServer | None:
    """Polling mode has no webhook, but the web view (and /healthz) still need the port:
    the same guarded listener, without the webhook's path. None when there is no web view."""
    webapp = webapp_of(settings)
    if webapp is None:
        return None
    host, port = listen_address(settings)
    server = guarded_server(
        listener_for=lambda guard: listener(application, None, "", guard, webapp)
    )
    server.listen(port, host)
    log.info("web view at %s, listening on %s:%s", webapp.url, host or "*", port)
    return server


async def serve_webhook(application: App, settings: Settings, allowed_updates: list[str]) -> None:
    """Run the bot until SIGTERM or SIGINT: take updates from the listener, register
    the webhook, then stop in order: no new updates, finish those in flight, stop the
    scheduler, close the database."""
    webhook = webhook_of(settings)
    given_secret = checked_secret(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await application.initialize()
    try:
        if application.post_init is not None:
            await application.post_init(application)
        shared = application.bot_data.resources
        secret = given_secret or await _stored_secret(shared)
        # Registered before anything runs: if Telegram refuses it, nothing needs stopping
        # (Telegram posts again whatever arrives before the listener is up).
        await application.bot.set_webhook(
            webhook.url, secret_token=secret, allowed_updates=allowed_updates
        )
        webapp = webapp_of(settings)
        server = guarded_server(
            listener_for=lambda guard: listener(application, webhook, secret, guard, webapp)
        )
        server.listen(webhook.port, webhook.host)
        await application.start()
        log.info(
            "webhook mode: Telegram posts to %s, listening on %s:%s",
            urlsplit(webhook.url).hostname,
            webhook.host or "*",
            webhook.port,
        )
        await stop.wait()
        log.info("stopping: no new updates, finishing those in flight")
        server.stop()
        await server.close_all_connections()
    finally:
        # Also after a failed start: the lease handed back, what runs wound down.
        if application.running:
            await application.stop()
        if application.post_stop is not None:
            await application.post_stop(application)
        await application.shutdown()
        if application.post_shutdown is not None:
            await application.post_shutdown(application)


def guarded_server(
    listener_for: Callable[[Guard], tornado.web.Application],
) -> GuardedServer:
    """The HTTP server with every limit the open port needs (bot/app/guard.py)."""
    guard = Guard(connection_cap())
    server = GuardedServer(
        listener_for(guard),
        max_body_size=MAX_OTHER_BODY,
        max_header_size=MAX_HEADERS,
        idle_connection_timeout=HEADER_TIMEOUT,
        body_timeout=BODY_TIMEOUT,
    )
    server.guard = guard
    return server


async def _stored_secret(shared: Resources) -> str:
    """The secret every instance shares: made by the first one, kept in the database."""
    async with shared.sessions() as session:
        return await remembered_or_new_webhook_secret(
            session=session, candidate=secrets.token_urlsafe(32)
        )
