"""Sending a broadcast: in the background, at the broadcast rate, behind partners' answers.

One instance sends (the leader), so Telegram's budget and the progress message have
one owner; it survives a restart and a change of leader, since the delivery rows say
what is left. Staff see one progress message, edited every few seconds, that ends as
the report.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence

from telegram.ext import ExtBot

from bot.config import Settings
from bot.domain.outbox import Outcome, Result
from bot.events import BroadcastReady
from bot.i18n import Texts
from bot.jobs.outbox import bulk_turn, deliver, tally
from bot.jobs.staff import staff_texts
from bot.logs import timed_action
from bot.resources import Resources
from bot.services.broadcasts import (
    MAX_ATTEMPTS,
    BroadcastView,
    Recipient,
    advance_deliveries,
    failures_of,
    finish_broadcast,
    get_broadcast,
    next_recipients,
    report_of,
    unfinished_broadcasts,
)
from bot.services.staff import staff_people
from bot.sheets import table_bytes
from bot.telegram.context import App, BotData
from bot.telegram.ratelimit import PREPAID
from bot.telegram.sending import best_effort
from handlers.render import report_text

log = logging.getLogger(__name__)
# Sends in flight at once: enough to keep the rate while Telegram takes its time to
# answer each one. A crash can leave this many handed over without an answer: they
# are never sent again, and the report lists them as unconfirmed.
WORKERS = 4
# Paid broadcasts go up to 40 times as fast: one sender more for every 25 a second, each
# send being a round trip to Telegram and a write of its hand-over.
PAID_WORKERS_PER = 25
PAID_BATCH = 10


def workers_for(settings: Settings) -> int:
    paid = settings.paid_broadcast_rate
    return WORKERS if paid is None else max(WORKERS, math.ceil(paid / PAID_WORKERS_PER))


# Pauses before the recipients whose send failed on the way are tried again (the
# next pass), by how many times they have been tried: one a try after the first.
BACKOFF = (1.0, 2.0, 4.0, 8.0)
assert len(BACKOFF) == MAX_ATTEMPTS - 1
# How often the progress message is edited, in seconds.
PROGRESS_EVERY = 2.0
# Recipients read from the database at once.
PASS = 10_000
# The file of those a broadcast did not reach.
NOT_REACHED_COLUMNS = ("partner_code", "company", "telegram_id", "name", "status", "error")


def start_sending(application: App, broadcast_id: int) -> bool:
    """Send the broadcast from here if this instance leads and is not sending it yet.

    Otherwise the leader picks it up at its next lease renewal (`resume_broadcasts`).
    """
    state = application.bot_data
    if not state.leads() or broadcast_id in state.sending:
        return False
    state.sending.add(broadcast_id)
    shared = state.resources

    async def send() -> None:
        try:
            await deliver_broadcast(application.bot, shared, broadcast_id, state)
        finally:
            state.sending.discard(broadcast_id)

    shared.run_until_closed(send(), f"broadcast {broadcast_id}")
    return True


def send_when_created(application: App) -> None:
    """A broadcast staff just sent starts going out at once, from the leader."""

    async def heard(ready: BroadcastReady) -> None:
        start_sending(application, ready.broadcast_id)

    application.bot_data.resources.events.listen(BroadcastReady, heard)


async def resume_broadcasts(application: App) -> None:
    """Go on with broadcasts a stop or a crash interrupted, or that staff started on
    another instance: at start, and whenever this instance renews its lead."""
    shared = application.bot_data.resources
    async with shared.sessions() as session:
        unfinished = await unfinished_broadcasts(session=session)
    for broadcast_id in unfinished:
        if start_sending(application, broadcast_id):
            log.info("sending broadcast %s", broadcast_id)


async def deliver_broadcast(
    bot: ExtBot[str], shared: Resources, broadcast_id: int, state: BotData
) -> None:
    """Send to every recipient not handed over yet, show progress, end with the report.

    It stops when the bot stops or this instance stops leading: the new leader goes on
    from the delivery rows. One log line a run, not one a message.
    """
    async with timed_action("broadcast", broadcast_id=broadcast_id) as action:
        results = await _deliver_all(bot, shared, broadcast_id, state)
        action.update(tally(results))


async def _deliver_all(
    bot: ExtBot[str], shared: Resources, broadcast_id: int, state: BotData
) -> list[Result]:
    def going() -> bool:
        """Neither stopping nor led by another instance now (checked before each send)."""
        return not shared.stopping.is_set() and state.leads()

    async with shared.sessions() as session:
        broadcast = await get_broadcast(session=session, broadcast_id=broadcast_id)
        sender = (await staff_people(session=session, ids=[broadcast.created_by]))[
            broadcast.created_by
        ]
    progress = Progress(bot, shared, broadcast, staff_texts(sender.telegram_language))
    outbox = Deliveries(shared)
    everything: list[Result] = []
    while going():
        async with shared.sessions() as session:
            recipients = await next_recipients(
                session=session, broadcast_id=broadcast_id, now=shared.now(), limit=PASS
            )
        if not recipients:
            break
        results = await _one_pass(bot, shared, outbox, broadcast, recipients, progress, going)
        everything += results
        tries = {r.id: r.attempts + 1 for r in recipients}
        retried = [tries[r.id] for r in results if r.outcome == Outcome.RETRY]
        if retried and await shared.stopped_within(BACKOFF[min(min(retried), len(BACKOFF)) - 1]):
            break  # written as retries: the restart sends them
    if not going():
        return everything  # the rest goes when the bot starts again, or from the new leader
    async with shared.sessions() as session:
        finished = await finish_broadcast(
            session=session, broadcast_id=broadcast_id, now=shared.now()
        )
    if finished:  # one report, even if an old leader got here as well
        await progress.finish()
    return everything


async def _one_pass(
    bot: ExtBot[str],
    shared: Resources,
    outbox: Deliveries,
    broadcast: BroadcastView,
    recipients: list[Recipient],
    progress: Progress,
    going: Callable[[], bool],
) -> list[Result]:
    """Each recipient once, `workers_for` at a time, each send its own hand-over."""
    queue: Iterator[Recipient] = iter(recipients)  # shared: each worker takes the next

    paid = shared.settings.pai_paid_broadcast
    # Handed over one at a time, a crash leaves at most WORKERS unconfirmed; paid ones go
    # forty times as fast, and one write a message held them to a sixth of their rate:
    # PAID_BATCH a hand-over.
    batch = PAID_BATCH if paid else 1

    async def send(recipient: Recipient) -> None:
        await bot.send_message(
            recipient.telegram_user_id,
            broadcast.text_html,
            parse_mode="HTML",
            allow_paid_broadcast=paid or None,
            rate_limit_args=PREPAID,  # its turn came before: `turn` below
        )

    async def turn() -> bool:
        return await bulk_turn(bot, shared.stopping, paid=paid)

    async def worker() -> list[Result]:
        return await deliver(
            outbox, queue, send, batch=batch, turn=turn, going=going, sent=progress.tick
        )

    # A task group: if one sender fails, the others stop with it rather than go on
    # sending unwatched.
    async with asyncio.TaskGroup() as senders:
        workers = [senders.create_task(worker()) for _ in range(workers_for(shared.settings))]
    return [result for done in workers for result in done.result()]


class Deliveries:
    """A broadcast's delivery rows as an outbox (bot/jobs/outbox.py)."""

    def __init__(self, shared: Resources) -> None:
        self._shared = shared

    async def step(
        self,
        *,
        done: Sequence[Result],
        take: Sequence[Recipient],
        give_back: Sequence[Recipient],
    ) -> list[Recipient]:
        async with self._shared.sessions() as session:
            held = await advance_deliveries(
                session=session,
                done=done,
                take=[r.id for r in take],
                give_back=[r.id for r in give_back],
                now=self._shared.now(),
            )
        return [r for r in take if r.id in held]


class Progress:
    """The staff member's progress message, edited every few seconds, then the report."""

    def __init__(
        self, bot: ExtBot[str], shared: Resources, broadcast: BroadcastView, texts: Texts
    ) -> None:
        self.bot, self.shared, self.broadcast_id = bot, shared, broadcast.id
        self.texts = texts
        self.staff_id = broadcast.created_by
        self.chat_id, self.message_id = broadcast.progress_chat_id, broadcast.progress_message_id
        self.shown_at = time.monotonic()

    async def tick(self, _result: Result) -> None:
        if time.monotonic() - self.shown_at < PROGRESS_EVERY:
            return
        self.shown_at = time.monotonic()
        async with self.shared.sessions() as session:
            report = await report_of(session=session, broadcast_id=self.broadcast_id)
        await self._show(
            self.texts("broadcast_progress", sent=report.total - report.waiting, total=report.total)
        )

    async def finish(self) -> None:
        async with self.shared.sessions() as session:
            report = await report_of(session=session, broadcast_id=self.broadcast_id)
            failures = await failures_of(session=session, broadcast_id=self.broadcast_id)
        texts = self.texts
        if failures:
            # Through the one writer: a name typed in Telegram as "=HYPERLINK(…)" must not
            # reach staff's Excel as a live formula.
            document = table_bytes(
                NOT_REACHED_COLUMNS,
                (
                    {
                        "partner_code": failure.partner_code,
                        "company": failure.company,
                        "telegram_id": failure.telegram_user_id,
                        "name": failure.name,
                        "status": failure.status.value,
                        "error": failure.error,
                    }
                    for failure in failures
                ),
            )
            await best_effort(
                "sending the failures",
                self.bot.send_document(
                    self.chat_id or self.staff_id,
                    document,
                    filename=f"broadcast-{self.broadcast_id}-not-reached.csv",
                ),
            )
        # Last: the report says it is over, in place of the progress or as a new message.
        await self._where()
        if self.message_id is None:
            await best_effort(
                "sending the report",
                self.bot.send_message(
                    self.staff_id,
                    report_text(texts, report, self.shared.rules.timezone),
                    parse_mode="HTML",
                ),
            )
        else:
            await self._show(report_text(texts, report, self.shared.rules.timezone))

    async def _where(self) -> None:
        """Look again for the progress message when it was not known at the start: the
        leader may pick the broadcast up before staff's instance has recorded it."""
        if self.message_id is None:
            async with self.shared.sessions() as session:
                broadcast = await get_broadcast(session=session, broadcast_id=self.broadcast_id)
            self.chat_id, self.message_id = (
                broadcast.progress_chat_id,
                broadcast.progress_message_id,
            )

    async def _show(self, text: str) -> None:
        await self._where()
        if self.chat_id is None or self.message_id is None:
            return  # the progress message never arrived: only the report is sent
        await best_effort(
            "showing broadcast progress",
            self.bot.edit_message_text(
                text, chat_id=self.chat_id, message_id=self.message_id, parse_mode="HTML"
            ),
        )
