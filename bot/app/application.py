"""The one assembly point: Settings in, a ready Application out."""

from __future__ import annotations

import asyncio
import logging
import os

from telegram import BotCommand, BotCommandScopeChat
from telegram.error import TelegramError
from telegram.ext import ApplicationBuilder, ContextTypes, ExtBot
from telegram.request import BaseRequest

from bot.app.web import serve_web_view_while_polling
from bot.config import Settings
from bot.domain.clock import Clock
from bot.domain.rules import Rules, load_rules
from bot.i18n import LANGUAGES, Texts
from bot.jobs.broadcasts import resume_broadcasts, send_when_created
from bot.jobs.leadership import RENEW_EVERY, Leadership
from bot.jobs.reminders import tick
from bot.jobs.schedule import every
from bot.jobs.staff import attend_to_staff_items
from bot.resources import open_resources
from bot.services.accounts import remember_bot_username
from bot.telegram.budget import SharedBudget
from bot.telegram.context import App, BotData
from bot.telegram.locks import UserLocks
from bot.telegram.menu import offer_web_view
from bot.telegram.ratelimit import PerChatRateLimiter
from bot.telegram.transport import AiohttpRequest
from bot.telegram.updates import CheckedBot, CheckedUpdates, OnePerUser
from handlers import add_handlers
from handlers.common import Context

log = logging.getLogger(__name__)
COMMANDS = ("new", "check", "status", "settings", "help", "privacy", "cancel")
STAFF_COMMANDS = ("pending", "find", "stats", "broadcast", "broadcasts", "export", "payouts")
# Connections open at once for sends: PTB's default for its own layer.
SEND_CONNECTIONS = 256


def build_application(
    settings: Settings,
    *,
    request: BaseRequest | None = None,
    updates_request: BaseRequest | None = None,
    clock: Clock | None = None,
    schedule_reminders: bool = True,
    serve_web_view: bool = True,
) -> App:
    """Build the bot; connections open in post_init, not here.

    Tests turn the scheduled tick off and run it themselves with a moved clock.
    """
    # Durations as timedelta, PTB's coming default: without this opt-in PTB warns
    # (deprecation) on every 429 it receives. It is read at run time, so set it first.
    os.environ.setdefault("PTB_TIMEDELTA", "true")
    # Read now, so a broken rules file stops the bot before it connects to anything.
    programme_rules = load_rules(settings.pai_rules_file)

    polling = settings.pai_webhook_url is None
    processor = OnePerUser()
    limiter = PerChatRateLimiter(
        messages_per_second=settings.pai_telegram_rate,
        bulk_per_second=settings.bulk_rate,
        paid_per_second=settings.paid_broadcast_rate,
    )

    async def open_shared(application: App) -> None:
        shared = await open_resources(settings, clock=clock, rules=programme_rules)
        state = application.bot_data
        state.open(shared)
        if polling and serve_web_view:
            # Before waiting to lead: a standby instance serves the web view too.
            state.web_server = serve_web_view_while_polling(application, settings)
        if not polling and shared.engine.dialect.name == "postgresql":
            # Several instances may serve this bot: Telegram's limit is for all of them,
            # and a user's next update may reach another instance mid-answer.
            limiter.share_budget(SharedBudget(shared.sessions, settings.pai_telegram_rate))
            locks = UserLocks(settings.database_url, settings.timeouts)
            state.user_locks = locks
            processor.take_turns_across(locks)
        processor.remember_updates_in(shared.conversations, shared.now)
        leadership = state.leadership = Leadership(shared)
        send_when_created(application)
        attend_to_staff_items(application)
        await _start(application)
        if polling:
            await _wait_to_lead(leadership)
        else:
            await leadership.renew()
        await resume_broadcasts(application)
        _keep_leading(application, polling=polling, schedule_reminders=schedule_reminders)
        if schedule_reminders:
            _schedule_reminders(application, programme_rules)

    bot: ExtBot[str] = CheckedBot(
        settings.require_token(),
        base_url=settings.api_base_url,
        base_file_url=settings.file_base_url,
        request=request or AiohttpRequest(connection_pool_size=SEND_CONNECTIONS),
        get_updates_request=CheckedUpdates(
            updates_request or AiohttpRequest(connection_pool_size=1)
        ),
        rate_limiter=limiter,
    )
    builder = (
        ApplicationBuilder()
        .bot(bot)
        .context_types(ContextTypes(context=Context, bot_data=BotData))
        # Nothing of ours runs on PTB's JobQueue: its scheduler keeps the wall clock, which
        # steps (bot/jobs/schedule.py keeps time for the lease and the tick instead).
        .job_queue(None)
        # Users side by side, each user's updates in order (bot/telegram/updates.py).
        .concurrent_updates(processor)
        .post_init(open_shared)
        .post_stop(_wind_down)
        .post_shutdown(_close_resources)
    )
    application: App = builder.build()
    add_handlers(application, settings.pai_admin_ids)
    return application


async def _start(application: App) -> None:
    shared = application.bot_data.resources
    async with shared.sessions() as session:
        await remember_bot_username(session=session, username=application.bot.username)
    # The menus in the background: a Bot API that fails them (tried again for seconds)
    # must not hold up the first answer; the bot works without them.
    shared.run_in_background(_publish_commands(application), "publishing the command menus")
    log.info("bot @%s ready", application.bot.username)


async def _wait_to_lead(leadership: Leadership) -> None:
    """Polling: Telegram gives updates to one poller, so a second instance waits. (A
    database too busy to say who leads is said by the renewal itself.)"""
    said = False
    while not await leadership.renew():
        if leadership.taken and not said:
            said = True
            log.warning(
                "another instance is polling this bot: waiting to take over "
                "(for several instances, use webhook mode: PAI_WEBHOOK_URL)"
            )
        await asyncio.sleep(RENEW_EVERY.total_seconds())


def _keep_leading(application: App, *, polling: bool, schedule_reminders: bool) -> None:
    """Renew the lease every RENEW_EVERY, on the monotonic clock (bot/jobs/schedule.py)."""
    shared = application.bot_data.resources

    async def renew() -> None:
        await renew_lead(application, polling=polling, schedule_reminders=schedule_reminders)

    shared.run_until_closed(
        every(RENEW_EVERY.total_seconds(), renew, stopping=shared.stopping, name="leader lease"),
        "renewing the leader lease",
    )


async def renew_lead(application: App, *, polling: bool, schedule_reminders: bool) -> None:
    """One renewal. A new leader catches up at once: the tick and the broadcasts another
    instance left. A poller whose lease another instance took stops, or two would poll
    (its service manager starts it again, to wait); one that could not renew (the
    database busy or away) goes on polling: Telegram lets only one poll anyway."""
    leadership = application.bot_data.leadership
    assert leadership is not None, "the lead is renewed only once it is set up"
    was = leadership.held
    if not await leadership.renew():
        if polling and was and leadership.taken:
            application.bot_data.lost_lead = True
            application.stop_running()
        return
    if not was and schedule_reminders:
        application.bot_data.resources.run_in_background(
            _tick_if_leading(application), "the reminders' tick on taking the lead"
        )
    await resume_broadcasts(application)


async def _tick_if_leading(application: App) -> None:
    if application.bot_data.leads():
        await tick(application)


def _schedule_reminders(application: App, rules: Rules) -> None:
    """One repeating tick that computes what is due from the database, first right at start:
    a bot that was down catches up at once, and a restart loses nothing."""
    shared = application.bot_data.resources

    async def tick_if_leading() -> None:
        await _tick_if_leading(application)

    shared.run_until_closed(
        every(
            rules.reminders.tick_minutes * 60.0,
            tick_if_leading,
            stopping=shared.stopping,
            name="the reminders' tick",
            first=0.0,
        ),
        "the reminders' tick",
    )


async def _publish_commands(application: App) -> None:
    """Fill Telegram's command menu in both languages; the bot works without it.

    Staff get their own menu in their own chat (Telegram's per-chat scope): partners
    never see staff commands.
    """
    shared = application.bot_data.resources
    for language in LANGUAGES:
        texts = Texts(language)
        commands = [BotCommand(name, texts(f"command_{name}")) for name in COMMANDS]
        staff_commands = commands + [
            BotCommand(name, texts(f"command_{name}")) for name in STAFF_COMMANDS
        ]
        code = None if language == "en" else language
        try:
            await application.bot.set_my_commands(commands, language_code=code)
        except TelegramError as exc:
            log.warning("could not publish the command menu: %s", exc)
        for staff_id in sorted(shared.settings.pai_admin_ids):
            try:
                await application.bot.set_my_commands(
                    staff_commands, scope=BotCommandScopeChat(staff_id), language_code=code
                )
            except TelegramError as exc:  # a staff member who never opened the bot
                log.warning("could not publish the staff menu for %s: %s", staff_id, exc)
    for staff_id in sorted(shared.settings.pai_admin_ids):
        await offer_web_view(application.bot, shared.settings.pai_webapp_url, staff_id, Texts("en"))


async def _wind_down(application: App) -> None:
    state = application.bot_data
    server, state.web_server = state.web_server, None
    if server is not None:
        server.stop()
        await server.close_all_connections()
    if state.started:
        await state.resources.wind_down()
    leadership = state.leadership
    if leadership is not None:  # another instance takes over now, not in LEASE_TTL
        await leadership.give_up()


async def _close_resources(application: App) -> None:
    state = application.bot_data
    shared = state.close()
    if shared is not None:
        await shared.close()
    locks, state.user_locks = state.user_locks, None
    if locks is not None:
        await locks.close()
