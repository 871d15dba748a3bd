"""Webhook mode: Telegram posts each update to us, through a proxy that forwards the
path of PAI_WEBHOOK_URL as it is. Any number of instances can serve it.

The listener is our own small tornado application (tornado is what PTB's webhook
extra brings) rather than PTB's `run_webhook`: PTB compares the secret token with
`!=` and logs a wrong one, and it has no room for `GET /healthz` on the same port.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import secrets
import signal
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

import tornado.web
from sqlalchemy import text
from tornado.httpserver import HTTPServer

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
    host, _, port = settings.pai_webhook_listen.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigurationError(
            "PAI_WEBHOOK_LISTEN must be an address and a port, such as 127.0.0.1:8080"
        )
    return Webhook(url=url, path=parts.path or "/", host=host.strip("[]"), port=int(port))


def checked_secret(settings: Settings) -> str | None:
    if settings.pai_webhook_secret is None:
        return None
    secret = settings.pai_webhook_secret.get_secret_value()
    if not _SECRET_SHAPE.match(secret):
        raise ConfigurationError(
            "PAI_WEBHOOK_SECRET may hold only letters, digits, _ and -, up to 256 of them"
        )
    return secret


class UpdateReceiver(tornado.web.RequestHandler):
    """POST <path>: one update from Telegram, proven by the secret token header."""

    def initialize(self, bot_application: App, secret: str) -> None:
        self.application_ = bot_application
        self.secret = secret.encode()

    async def post(self) -> None:
        given = self.request.headers.get(SECRET_HEADER, "").encode()
        # Constant time: how much of a guess was right must not show in the timing.
        if not hmac.compare_digest(given, self.secret):
            self.send_error(HTTPStatus.FORBIDDEN)
            return
        try:
            update = json.loads(self.request.body)
        except ValueError:
            self.send_error(HTTPStatus.BAD_REQUEST)
            return
        checked = read_update(update, self.application_.bot)
        if checked is not None:
            await self.application_.update_queue.put(checked)
        self.set_status(HTTPStatus.OK)

    def log_exception(self, *args: Any) -> None:
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


def listener(application: App, webhook: Webhook, secret: str) -> tornado.web.Application:
    return tornado.web.Application(
        [
            (
                re.escape(webhook.path),
                UpdateReceiver,
                {"bot_application": application, "secret": secret},
            ),
            (r"/healthz", Health, {"bot_application": application}),
        ],
        log_function=lambda handler: None,  # one line per update comes from the bot itself
    )


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
        server = HTTPServer(listener(application, webhook, secret), max_body_size=MAX_BODY)
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


async def _stored_secret(shared: Resources) -> str:
    """The secret every instance shares: made by the first one, kept in the database."""
    async with shared.sessions() as session:
        return await remembered_or_new_webhook_secret(
            session=session, candidate=secrets.token_urlsafe(32)
        )
