"""The reminders' tick: expire what lapsed, then send the nudges, follow-ups and expiry
notices due, outside quiet hours.

What is due is computed from the database at each tick; each reminder is written down
(once, under a unique constraint) and handed over before it is sent, so a second tick,
a second instance or a restart never sends it again.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from telegram.ext import ExtBot

from bot.domain.drafts import FORGET_AFTER
from bot.domain.outbox import Outcome, Result
from bot.domain.rules import Rules, sending_allowed
from bot.i18n import Texts, language_for
from bot.jobs.digest import send_overdue_digest
from bot.jobs.outbox import bulk_turn, deliver, tally
from bot.logs import timed_action
from bot.resources import Resources
from bot.services.privacy import apply_retention
from bot.services.reminders import (
    ToSend,
    advance_reminders,
    claim_reminders,
    due_reminders,
    expire_lapsed,
    release_claims,
    reminders_to_send,
)
from bot.services.vies import retry_failed
from bot.telegram.context import App
from bot.telegram.ratelimit import PREPAID
from handlers.render import render_reminder

log = logging.getLogger(__name__)

# Reminders handed to Telegram together, then recorded (about a second of Telegram's
# 30 messages a second): a crash can lose at most these, never send them twice.
SEND_BATCH = 30


@dataclass(frozen=True)
class TickReport:
    expired: int
    quiet: bool
    sent: int = 0
    retry: int = 0
    blocked: int = 0
    failed: int = 0
    skipped: int = 0
    digests: int = 0
    vies_retried: int = 0
    # Retention (PRODUCT.md §8): typed names cleared, deliveries and access rows deleted.
    names_cleared: int = 0
    deliveries_deleted: int = 0
    access_deleted: int = 0
    vies_deleted: int = 0


async def tick(application: App) -> None:
    """The scheduled job: expire what lapsed, then send what is due; one log line."""
    async with timed_action("reminders") as action:
        report = await run_tick(application)
        action.update(dataclasses.asdict(report))


async def run_tick(application: App) -> TickReport:
    """One tick, from the database's state at the clock's moment; safe to run twice."""
    shared = application.bot_data.resources
    rules, now = shared.rules, shared.now()
    async with shared.sessions() as session:
        expired = await expire_lapsed(session=session, rules=rules, now=now)
    await shared.conversations.forget_before(now - FORGET_AFTER)
    # Telegram gives up on an update after a day: two days of notes is plenty.
    await shared.conversations.forget_updates_before(now - 2 * FORGET_AFTER)
    async with shared.sessions() as session:
        kept = await apply_retention(session=session, rules=rules, now=now)
    forgotten = {
        "names_cleared": kept.names_cleared,
        "deliveries_deleted": kept.deliveries_deleted,
        "access_deleted": kept.access_deleted,
        "vies_deleted": kept.vies_deleted,
    }
    # VIES numbers that failed are asked again hourly, quiet hours or not: nobody is told.
    vies_retried = 0
    if shared.vies is not None:
        try:
            vies_retried = await retry_failed(sessions=shared.sessions, client=shared.vies, now=now)
        except Exception:  # never at the cost of the reminders and the digest below
            log.exception("retrying VIES failed")
    if not sending_allowed(rules, now):
        return TickReport(expired=expired, quiet=True, vies_retried=vies_retried, **forgotten)
    digests = await send_overdue_digest(application.bot, shared)
    token = secrets.token_hex(8)
    async with shared.sessions() as session:
        due = await due_reminders(session=session, rules=rules, now=now)
        claimed = await claim_reminders(session=session, due=due, token=token, now=now)
        ready, gone = await reminders_to_send(session=session, rules=rules, ids=claimed, now=now)
    outbox = Claimed(shared, token)
    skipped = [Result(id, 0, Outcome.SKIPPED) for id in gone]
    try:
        await outbox.step(done=skipped, take=(), give_back=())
        results = await _send(application.bot, shared, outbox, ready)
    finally:
        # Whatever was claimed and not tried (quiet hours, an error) goes at the next tick.
        async with shared.sessions() as session:
            await release_claims(session=session, token=token)
    counts = tally([*skipped, *results])
    return TickReport(
        expired=expired,
        quiet=False,
        digests=digests,
        sent=counts[Outcome.SENT],
        retry=counts[Outcome.RETRY],
        blocked=counts[Outcome.BLOCKED],
        failed=counts[Outcome.REFUSED],
        skipped=counts[Outcome.SKIPPED],
        vies_retried=vies_retried,
        **forgotten,
    )


async def _send(
    bot: ExtBot[str], shared: Resources, outbox: Claimed, ready: list[ToSend]
) -> list[Result]:
    rules = shared.rules

    async def send(item: ToSend) -> None:
        await send_reminder(bot, rules, item)

    async def turn() -> bool:
        return await bulk_turn(bot, shared.stopping)

    def going() -> bool:
        # A long catch-up that runs into quiet hours leaves the rest for the morning.
        return not shared.stopping.is_set() and sending_allowed(rules, shared.now())

    return await deliver(outbox, iter(ready), send, batch=SEND_BATCH, turn=turn, going=going)


class Claimed:
    """The reminders this tick claimed, as an outbox (bot/jobs/outbox.py)."""

    def __init__(self, shared: Resources, token: str) -> None:
        self._shared, self._token = shared, token

    async def step(
        self, *, done: Sequence[Result], take: Sequence[ToSend], give_back: Sequence[ToSend]
    ) -> list[ToSend]:
        async with self._shared.sessions() as session:
            held = await advance_reminders(
                session=session,
                token=self._token,
                done=done,
                take=[item.id for item in take],
                give_back=[item.id for item in give_back],
                now=self._shared.now(),
            )
        return [item for item in take if item.id in held]


async def send_reminder(bot: ExtBot[str], rules: Rules, item: ToSend) -> None:
    """Send one reminder, in its person's language; its turn was taken before."""
    person = item.due.recipient
    texts = Texts(language_for(chosen=person.language, telegram_code=person.telegram_language))
    text, markup = render_reminder(texts, rules, item)
    await bot.send_message(
        chat_id=person.telegram_user_id,
        text=text,
        parse_mode="HTML",
        reply_markup=markup,
        rate_limit_args=PREPAID,
    )
