"""/broadcast: staff write a programme update, pick who gets it, preview it, send it.

Sending runs in the background at the broadcast rate, behind partners' answers,
and survives a restart: the delivery rows say what is left.
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import TelegramError
from telegram.ext import ExtBot

from bot.i18n import Texts
from bot.logs import timed_action
from bot.resources import Resources
from bot.services.broadcasts import (
    BLOCKED,
    DELIVERED,
    FAILED,
    RETRY,
    SENDING,
    Audience,
    Recipient,
    Report,
    broadcast_text,
    count_audience,
    create_broadcast,
    failures_of,
    finish_broadcast,
    hand_back,
    hand_over,
    next_recipients,
    recent_reports,
    record_delivery,
    report_of,
    set_progress_message,
    unfinished_broadcasts,
)
from bot.storage.conversations import BROADCAST
from bot.telegram.context import App, BotData
from bot.telegram.ratelimit import PREPAID, PerChatRateLimiter, SendFailure, classify_failure
from handlers.callbacks import (
    INACTIVE_DAYS,
    BroadcastCancel,
    BroadcastSend,
    BroadcastTo,
)
from handlers.common import (
    Context,
    answer_query,
    best_effort,
    remove_buttons,
    reply,
    resources,
    texts_for,
    user_id_of,
)
from models import Broadcast

log = logging.getLogger(__name__)
# Sends in flight at once: enough to keep the rate while Telegram takes its time to
# answer each one. A crash can leave this many handed over without an answer: they
# are never sent again, and the report lists them as unconfirmed.
WORKERS = 4
# Pauses before trying a recipient again after a network error or a 5xx.
BACKOFF = (1.0, 2.0, 4.0, 8.0)
# How often the progress message is edited, in seconds.
PROGRESS_EVERY = 2.0
TEXT, AUDIENCE, PREVIEW = "text", "audience", "preview"
# Whether a broadcast may go on sending.
Going = Callable[[], bool]


# --- writing it --------------------------------------------------------------------


async def start_broadcast(update: Update, context: Context, texts: Texts) -> None:
    shared = resources(context)
    await shared.conversations.save(user_id_of(update), BROADCAST, {"step": TEXT}, shared.now())
    await reply(update, texts("broadcast_ask_text"))


async def take_broadcast_text(
    update: Update, context: Context, texts: Texts, draft: dict[str, str]
) -> None:
    """The message to broadcast, with its formatting (bold, links) as HTML."""
    message = update.effective_message
    assert message is not None
    shared = resources(context)
    draft.update(step=AUDIENCE, text=message.text_html)
    await shared.conversations.save(user_id_of(update), BROADCAST, draft, shared.now())
    await reply(update, texts("broadcast_ask_audience"), audience_buttons(texts, context))


def audience_buttons(texts: Texts, context: Context) -> InlineKeyboardMarkup:
    def button(label: str, audience: str) -> InlineKeyboardButton:
        return InlineKeyboardButton(label, callback_data=BroadcastTo(audience).data)

    levels = resources(context).rules.levels
    rows = [
        [button(texts.plain("audience_all"), "all")],
        [button(texts.level(level), f"level:{level}") for level in levels],
        [
            button(texts.plain("audience_inactive", days=days), f"inactive:{days}")
            for days in INACTIVE_DAYS
        ],
        [button(texts.plain("audience_open"), "open")],
    ]
    return InlineKeyboardMarkup(rows)


def describe_audience(texts: Texts, audience: Audience) -> str:
    if audience.kind == "level":
        return texts.plain("audience_level", level=texts.level(audience.value))
    if audience.kind == "inactive":
        return texts.plain("audience_inactive", days=audience.value)
    return texts.plain(f"audience_{audience.kind}")


async def pick_audience(
    update: Update, context: Context, texts: Texts, button: BroadcastTo
) -> None:
    """Show the message exactly as partners will see it, and how many will get it."""
    shared = resources(context)
    draft = await shared.conversations.load(user_id_of(update), BROADCAST)
    if draft is None or "text" not in draft:
        await answer_query(update, texts.plain("stale_button"))
        return
    await answer_query(update)
    await remove_buttons(update)
    audience = Audience(button.audience)
    if audience.kind == "level" and audience.value not in shared.rules.levels:
        return
    async with shared.sessions() as session:
        count = await count_audience(session=session, audience=audience, today=shared.today())
    draft.update(step=PREVIEW, audience=audience.code)
    await shared.conversations.save(user_id_of(update), BROADCAST, draft, shared.now())
    await reply(update, draft["text"])  # the preview: what partners will read
    markup = InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(
                    texts.plain("button_send", count=count), callback_data=BroadcastSend().data
                ),
                InlineKeyboardButton(
                    texts.plain("button_cancel"), callback_data=BroadcastCancel().data
                ),
            ]
        ]
    )
    await reply(
        update,
        texts.plural("broadcast_preview", count, audience=describe_audience(texts, audience)),
        markup,
    )


async def cancel_broadcast(update: Update, context: Context, texts: Texts) -> None:
    await resources(context).conversations.take(user_id_of(update), BROADCAST)
    await answer_query(update)
    await remove_buttons(update)
    await reply(update, texts("broadcast_cancelled"))


async def send_now(update: Update, context: Context, texts: Texts) -> None:
    """Store the broadcast and a delivery row per recipient, then send in the background."""
    shared = resources(context)
    draft = await shared.conversations.take(user_id_of(update), BROADCAST)
    if draft is None or draft.get("step") != PREVIEW:
        await answer_query(update, texts.plain("stale_button"))
        return
    await answer_query(update)
    await remove_buttons(update)
    async with shared.sessions() as session:
        broadcast_id, count = await create_broadcast(
            session=session,
            staff_id=user_id_of(update),
            text_html=draft["text"],
            audience=Audience(draft["audience"]),
            today=shared.today(),
            now=shared.now(),
        )
    try:
        progress = await reply(update, texts("broadcast_progress", sent=0, total=count))
    except TelegramError as exc:  # sending goes on; the report comes as a new message
        log.warning("the progress message of broadcast %s failed: %s", broadcast_id, exc)
        progress = None
    if progress is not None:
        async with shared.sessions() as session:
            await set_progress_message(
                session=session,
                broadcast_id=broadcast_id,
                chat_id=progress.chat_id,
                message_id=progress.message_id,
            )
    start_sending(context.application, broadcast_id)


# --- sending it --------------------------------------------------------------------


def start_sending(application: App, broadcast_id: int) -> bool:
    """Send the broadcast from here if this instance leads and is not sending it yet.

    Otherwise the leader picks it up at its next lease renewal (`resume_broadcasts`):
    one instance sends, so Telegram's budget and the progress message have one owner.
    """
    if not application.bot_data.leads():
        return False
    sending = application.bot_data.sending
    if broadcast_id in sending:
        return False
    sending.add(broadcast_id)
    shared = application.bot_data.resources

    async def deliver() -> None:
        try:
            await deliver_broadcast(application.bot, shared, broadcast_id, application.bot_data)
        finally:
            sending.discard(broadcast_id)

    shared.run_until_closed(deliver(), f"broadcast {broadcast_id}")
    return True


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
    bot: ExtBot[str], shared: Resources, broadcast_id: int, bot_data: BotData
) -> None:
    """Send to every recipient not handed over yet, show progress, end with the report.

    It stops between batches when the bot stops or this instance stops leading: the
    new leader goes on from the delivery rows. One log line a run, not one a message.
    """
    async with timed_action("broadcast", broadcast_id=broadcast_id):
        await _deliver_all(bot, shared, broadcast_id, bot_data)


async def _deliver_all(
    bot: ExtBot[str], shared: Resources, broadcast_id: int, bot_data: BotData
) -> None:
    def going() -> bool:
        """Neither stopping nor led by another instance now (checked before each send)."""
        return not shared.stopping.is_set() and bot_data.leads()

    async with shared.sessions() as session:
        broadcast = await broadcast_text(session=session, broadcast_id=broadcast_id)
    queue: asyncio.Queue[Recipient] = asyncio.Queue()
    progress = Progress(bot, shared, broadcast)
    while True:
        async with shared.sessions() as session:
            batch = await next_recipients(
                session=session, broadcast_id=broadcast_id, now=shared.now(), limit=10_000
            )
        if not batch or not going():
            break
        for recipient in batch:
            queue.put_nowait(recipient)
        # A task group: if one sender fails, the others stop with it rather than go on
        # sending unwatched.
        async with asyncio.TaskGroup() as senders:
            for _ in range(WORKERS):
                senders.create_task(_work(bot, shared, broadcast.text_html, queue, progress, going))
    if not going():
        return  # the rest goes when the bot starts again, or from the new leader
    async with shared.sessions() as session:
        finished = await finish_broadcast(
            session=session, broadcast_id=broadcast_id, now=shared.now()
        )
    if finished:  # one report, even if an old leader got here as well
        await progress.finish()


@dataclass(frozen=True)
class Outcome:
    """How a send went, to be written with the next hand-over (one commit a message)."""

    delivery_id: int
    status: str
    error: str | None
    salesperson_id: int


async def _work(
    bot: ExtBot[str],
    shared: Resources,
    text_html: str,
    queue: asyncio.Queue[Recipient],
    progress: Progress,
    going: Going,
) -> None:
    unwritten: Outcome | None = None
    try:
        while not queue.empty() and going():
            recipient = queue.get_nowait()
            unwritten = await _deliver(bot, shared, text_html, recipient, unwritten, going)
            await progress.tick()
    finally:
        if unwritten is not None:
            async with shared.sessions() as session:
                await _write(session, shared, unwritten)


async def _deliver(
    bot: ExtBot[str],
    shared: Resources,
    text_html: str,
    recipient: Recipient,
    unwritten: Outcome | None,
    going: Going,
) -> Outcome | None:
    """One recipient: marked handed-over (with the previous send's outcome, in one
    commit), then its turn under the rate, then sent at once: never sent twice, and the
    send follows its turn with no database work between. Returns the outcome to write."""
    if recipient.attempts > len(BACKOFF):  # tried as often as allowed: never again
        failed = Outcome(
            recipient.delivery_id, FAILED, "no more attempts", recipient.salesperson_id
        )
        return failed if unwritten is None else await _written_first(shared, unwritten, failed)
    for attempt in range(recipient.attempts, len(BACKOFF) + 1):
        if not going():
            # Stopping, or another instance leads now: left pending for whoever sends next.
            return unwritten
        async with shared.sessions() as session:
            if unwritten is not None:
                await _write(session, shared, unwritten, commit=False)
                unwritten = None
            if not await hand_over(session=session, delivery_id=recipient.delivery_id):
                return None  # someone else has it (another instance, a resumed run)
        if not await _take_turn(bot, shared):
            async with shared.sessions() as session:
                await hand_back(session=session, delivery_id=recipient.delivery_id)
            return None
        status, error = await _send(bot, recipient.telegram_user_id, text_html)
        if status == RETRY and attempt >= len(BACKOFF):
            status = FAILED
        outcome = Outcome(recipient.delivery_id, status, error, recipient.salesperson_id)
        if status != RETRY:
            return outcome
        async with shared.sessions() as session:
            await _write(session, shared, outcome)
        if await shared.stopped_within(BACKOFF[attempt]):
            return None  # written as a retry: the restart sends it
    return None


async def _written_first(shared: Resources, earlier: Outcome, later: Outcome) -> Outcome:
    async with shared.sessions() as session:
        await _write(session, shared, earlier)
    return later


async def _take_turn(bot: ExtBot[str], shared: Resources) -> bool:
    """Wait for a bulk turn under the rate; False when a stop comes first."""
    limiter = bot.rate_limiter
    if not isinstance(limiter, PerChatRateLimiter):
        return not shared.stopping.is_set()
    turn = asyncio.ensure_future(limiter.take_bulk_turn())
    stop = asyncio.ensure_future(shared.stopping.wait())
    await asyncio.wait({turn, stop}, return_when=asyncio.FIRST_COMPLETED)
    for waiting in (turn, stop):
        waiting.cancel()
    return not shared.stopping.is_set()


async def _write(
    session: AsyncSession, shared: Resources, outcome: Outcome, *, commit: bool = True
) -> None:
    await record_delivery(
        session=session,
        delivery_id=outcome.delivery_id,
        status=outcome.status,
        now=shared.now(),
        error=outcome.error,
        retry_at=shared.now(),
        salesperson_id=outcome.salesperson_id,
        commit=commit,
    )


async def _send(bot: ExtBot[str], chat_id: int, text_html: str) -> tuple[str, str | None]:
    """Send once; say how it went. What may have reached Telegram is never sent again."""
    try:
        await bot.send_message(chat_id, text_html, parse_mode="HTML", rate_limit_args=PREPAID)
    except TelegramError as exc:
        failure, reason = classify_failure(exc)
        return _STATUS_OF[failure], reason
    return DELIVERED, None


# A failed send's delivery status: one that may have gone stays "sending" (unconfirmed).
_STATUS_OF = {
    SendFailure.BLOCKED: BLOCKED,
    SendFailure.REFUSED: FAILED,
    SendFailure.RETRY: RETRY,
    SendFailure.UNSURE: SENDING,
}


class Progress:
    """The staff member's progress message, edited every few seconds, then the report."""

    def __init__(self, bot: ExtBot[str], shared: Resources, broadcast: Broadcast) -> None:
        assert broadcast.id is not None
        self.bot, self.shared, self.broadcast_id = bot, shared, broadcast.id
        self.staff_id = broadcast.created_by
        self.chat_id, self.message_id = broadcast.progress_chat_id, broadcast.progress_message_id
        self.shown_at = time.monotonic()

    async def tick(self) -> None:
        if time.monotonic() - self.shown_at < PROGRESS_EVERY:
            return
        self.shown_at = time.monotonic()
        async with self.shared.sessions() as session:
            report = await report_of(session=session, broadcast_id=self.broadcast_id)
        texts = Texts("en")
        await self._show(
            texts("broadcast_progress", sent=report.total - report.waiting, total=report.total)
        )

    async def finish(self) -> None:
        async with self.shared.sessions() as session:
            report = await report_of(session=session, broadcast_id=self.broadcast_id)
            failures = await failures_of(session=session, broadcast_id=self.broadcast_id)
        texts = Texts("en")
        if failures:
            document = io.StringIO()
            writer = csv.writer(document)
            writer.writerow(["partner_code", "company", "telegram_id", "name", "status", "error"])
            for failure in failures:
                writer.writerow(
                    [
                        failure.partner_code,
                        failure.company,
                        failure.telegram_user_id,
                        failure.name or "",
                        failure.status,
                        failure.error or "",
                    ]
                )
            await best_effort(
                "sending the failures",
                self.bot.send_document(
                    self.chat_id or self.staff_id,
                    document.getvalue().encode(),
                    filename=f"broadcast-{self.broadcast_id}-not-reached.csv",
                ),
            )
        # Last: the report says it is over, in place of the progress or as a new message.
        await self._where()
        if self.message_id is None:
            await best_effort(
                "sending the report",
                self.bot.send_message(self.staff_id, report_text(texts, report), parse_mode="HTML"),
            )
        else:
            await self._show(report_text(texts, report))

    async def _where(self) -> None:
        """Look again for the progress message when it was not known at the start: the
        leader may pick the broadcast up before staff's instance has recorded it."""
        if self.message_id is None:
            async with self.shared.sessions() as session:
                broadcast = await broadcast_text(session=session, broadcast_id=self.broadcast_id)
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


def report_text(texts: Texts, report: Report) -> str:
    return texts(
        "broadcast_report",
        id=report.broadcast_id,
        at=f"{report.created_at:%Y-%m-%d %H:%M} UTC",
        audience=report.audience,
        total=report.total,
        delivered=report.delivered,
        blocked=report.blocked,
        failed=report.failed,
        unconfirmed=report.unconfirmed,
        waiting=report.waiting,
    )


async def list_broadcasts(update: Update, context: Context, texts: Texts) -> None:
    async with resources(context).sessions() as session:
        reports = await recent_reports(session=session)
    if not reports:
        await reply(update, texts("broadcasts_none"))
        return
    await reply(update, "\n\n".join(report_text(texts, report) for report in reports))


async def press_broadcast_button(
    update: Update, context: Context, button: BroadcastTo | BroadcastSend | BroadcastCancel
) -> None:
    texts = texts_for(update, None)
    if isinstance(button, BroadcastTo):
        await pick_audience(update, context, texts, button)
    elif isinstance(button, BroadcastSend):
        await send_now(update, context, texts)
    else:
        await cancel_broadcast(update, context, texts)
