"""The one assembly point: Settings in, a ready Application out."""

from __future__ import annotations

import logging
import os
from typing import Any

from telegram import BotCommand
from telegram.error import TelegramError
from telegram.ext import AIORateLimiter, ApplicationBuilder
from telegram.request import BaseRequest

from bot.config import Settings
from bot.db import create_tables, make_engine, make_sessions
from bot.i18n import LANGUAGES, Texts
from bot.rules import load_rules
from bot.services.accounts import remember_bot_username
from handlers import add_handlers
from handlers.common import DEPS_KEY, App, Deps

log = logging.getLogger(__name__)
ENGINE_KEY = "pai_engine"
COMMANDS = ("new", "check", "status", "settings", "help", "cancel")
# A 429 is Telegram saying "not yet": nothing was delivered, so retrying is safe.
RATE_LIMIT_RETRIES = 3


def build_application(
    settings: Settings,
    *,
    request: BaseRequest | None = None,
    updates_request: BaseRequest | None = None,
) -> App:
    """Build the bot; connections open in post_init, not here."""
    # Durations as timedelta, PTB's coming default: without this opt-in PTB warns
    # (deprecation) on every 429 it receives. It is read at run time, so set it first.
    os.environ.setdefault("PTB_TIMEDELTA", "true")
    programme_rules = load_rules(settings.pai_rules_file)
    builder = (
        ApplicationBuilder()
        .token(settings.require_token())
        .base_url(settings.api_base_url)
        .base_file_url(settings.file_base_url)
        .rate_limiter(AIORateLimiter(max_retries=RATE_LIMIT_RETRIES))
        .post_init(_open_resources)
        .post_shutdown(_close_resources)
    )
    if request is not None:
        builder = builder.request(request)
    if updates_request is not None:
        builder = builder.get_updates_request(updates_request)
    application = builder.build()
    application.bot_data["settings"] = settings
    application.bot_data["rules"] = programme_rules
    add_handlers(application)
    return application


async def _open_resources(application: App) -> None:
    settings: Settings = application.bot_data["settings"]
    engine = make_engine(settings.database_url)
    await create_tables(engine)
    sessions = make_sessions(engine)
    application.bot_data[ENGINE_KEY] = engine
    application.bot_data[DEPS_KEY] = Deps(
        sessions=sessions, rules=application.bot_data["rules"], settings=settings
    )
    async with sessions() as session:
        await remember_bot_username(session=session, username=application.bot.username)
    await _publish_commands(application)
    log.info("bot @%s ready", application.bot.username)


async def _publish_commands(application: App) -> None:
    """Fill Telegram's command menu in both languages; the bot works without it."""
    for language in LANGUAGES:
        texts = Texts(language)
        commands = [BotCommand(name, texts(f"command_{name}")) for name in COMMANDS]
        try:
            await application.bot.set_my_commands(
                commands, language_code=None if language == "en" else language
            )
        except TelegramError as exc:
            log.warning("could not publish the command menu: %s", exc)


async def _close_resources(application: App) -> None:
    engine: Any = application.bot_data.pop(ENGINE_KEY, None)
    if engine is not None:
        await engine.dispose()
