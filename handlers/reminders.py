"""The messages the bot starts (nudges, follow-ups, expiry notices) and the follow-up's buttons."""

from __future__ import annotations

import dataclasses
import logging
import secrets
from dataclasses import dataclass

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import (
    TelegramError,
)
from telegram.ext import ExtBot

from bot.domain.drafts import FORGET_AFTER
from bot.domain.errors import RegistrationNotFound, TransitionNotAllowed
from bot.domain.lifecycle import Status
from bot.domain.rules import Rules, sending_allowed
from bot.i18n import Texts, language_for
from bot.logs import timed_action
from bot.resources import Resources
from bot.services.registrations import report_still_open
from bot.services.reminders import (
    EXPIRY,
    NUDGE,
    ON_CLOSE_DATE,
    Outcomes,
    ToSend,
    claim_reminders,
    due_reminders,
    expire_lapsed,
    mark_sending,
    record_outcomes,
    release_claims,
    reminders_to_send,
)
from bot.services.views import Account
from bot.telegram.context import App, BotContext
from bot.telegram.ratelimit import BULK, SendFailure, classify_failure
from handlers.callbacks import (
    LOST_REASONS,
    FollowupButton,
    FollowupLost,
    FollowupLostBecause,
    FollowupStillOpen,
    FollowupWon,
    StartRegistration,
)
from handlers.common import (
    Context,
    answer_query,
    own_registration,
    report,
    resources,
    show_in_place,
)
from handlers.render import standing_line
from handlers.staff import ask_staff_to_decide

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


async def tick(context: BotContext) -> None:
    """The scheduled job: expire what lapsed, then send what is due."""
    async with timed_action("reminders") as action:
        report = await run_tick(context.application)
        action.update(dataclasses.asdict(report))


async def run_tick(application: App) -> TickReport:
    """One tick, from the database's state at the clock's moment; safe to run twice."""
    shared = application.bot_data.resources
    rules, now = shared.rules, shared.now()
    async with shared.sessions() as session:
        expired = await expire_lapsed(session=session, rules=rules, now=now)
    await shared.conversations.forget_before(now - FORGET_AFTER)
    if not sending_allowed(rules, now):
        return TickReport(expired=expired, quiet=True)
    token = secrets.token_hex(8)
    async with shared.sessions() as session:
        due = await due_reminders(session=session, rules=rules, now=now)
        claimed = await claim_reminders(session=session, due=due, token=token, now=now)
        ready, gone = await reminders_to_send(session=session, rules=rules, ids=claimed, now=now)
    total = Outcomes()
    try:
        await _record(shared, Outcomes(skipped=gone), total)
        for start in range(0, len(ready), SEND_BATCH):
            if not sending_allowed(rules, shared.now()):
                break  # a long catch-up ran into quiet hours: the rest waits for morning
            await _send_batch(
                application.bot, shared, ready[start : start + SEND_BATCH], token, total
            )
    finally:
        # Whatever was claimed and not tried (quiet hours, an error) goes at the next tick.
        async with shared.sessions() as session:
            await release_claims(session=session, token=token)
    return TickReport(
        expired=expired,
        quiet=False,
        sent=len(total.sent),
        retry=len(total.retry),
        blocked=len(total.blocked),
        failed=len(total.failed),
        skipped=len(total.skipped),
    )


async def _send_batch(
    bot: ExtBot[str], shared: Resources, batch: list[ToSend], token: str, total: Outcomes
) -> None:
    """Mark a few reminders as handed to Telegram, send them, record how it went.

    Marked before the send: a crash from here on can lose these few, never send them
    twice. Those not handed over when something unexpected stops the batch go back.
    """
    async with shared.sessions() as session:
        held = await mark_sending(session=session, ids=[item.id for item in batch], token=token)
    outcomes = Outcomes()
    untried = [item.id for item in batch if item.id in held]
    try:
        for item in batch:
            if item.id not in held:  # another tick took it back meanwhile: it sends it
                continue
            untried.remove(item.id)
            if item.due.recipient.salesperson_id in {person for _, person in total.blocked} | {
                person for _, person in outcomes.blocked
            }:
                outcomes.skipped.append(item.id)  # blocked the bot moments ago
                continue
            await send_reminder(bot, shared.rules, item, outcomes)
    finally:
        outcomes.retry += untried
        await _record(shared, outcomes, total)


async def _record(shared: Resources, batch: Outcomes, total: Outcomes) -> None:
    async with shared.sessions() as session:
        await record_outcomes(session=session, outcomes=batch, now=shared.now())
    total.sent += batch.sent
    total.retry += batch.retry
    total.failed += batch.failed
    total.blocked += batch.blocked
    total.skipped += batch.skipped
    total.unsure += batch.unsure


async def send_reminder(bot: ExtBot[str], rules: Rules, item: ToSend, outcomes: Outcomes) -> None:
    """Send one reminder and note how it went.

    Tried again at the next tick only when it surely did not reach Telegram (the
    connection failed, a 5xx, a 429 past the retries); a read timeout may have
    delivered it, so it is not sent again.
    """
    person = item.due.recipient
    texts = Texts(language_for(chosen=person.language, telegram_code=person.telegram_language))
    text, markup = render_reminder(texts, rules, item)
    try:
        await bot.send_message(
            chat_id=person.telegram_user_id,
            text=text,
            parse_mode="HTML",
            reply_markup=markup,
            rate_limit_args=BULK,  # partners' answers go first
        )
    except TelegramError as exc:
        failure, reason = classify_failure(exc)
        level = logging.WARNING if failure == SendFailure.REFUSED else logging.INFO
        log.log(level, "reminder %s not sent (%s): %s", item.id, failure, reason)
        if failure == SendFailure.BLOCKED:
            outcomes.blocked.append((item.id, person.salesperson_id))
        elif failure == SendFailure.RETRY:
            outcomes.retry.append(item.id)
        elif failure == SendFailure.UNSURE:
            outcomes.unsure.append(item.id)  # may have been delivered: not sent again
        else:
            outcomes.failed.append(item.id)
    else:
        outcomes.sent.append(item.id)


# --- what they say ----------------------------------------------------------------


def render_reminder(
    texts: Texts, rules: Rules, item: ToSend
) -> tuple[str, InlineKeyboardMarkup | None]:
    if item.due.kind == NUDGE:
        assert item.standing is not None
        text = texts(
            "nudge",
            programme=rules.name,
            company=item.company,
            days=item.inactive_days,
            standing=standing_line(texts, rules, item.standing),
        )
        button = InlineKeyboardButton(
            texts.plain("button_register"), callback_data=StartRegistration().data
        )
        return text, InlineKeyboardMarkup([[button]])
    registration = item.registration
    assert registration is not None
    if item.due.kind == EXPIRY:
        return texts(
            "expiry_notice",
            reference=registration.reference,
            customer=registration.customer_name,
            until=texts.date(registration.protected_until),
        ), None
    key = "followup_close" if item.due.period == ON_CLOSE_DATE else "followup_protection"
    text = texts(
        key,
        reference=registration.reference,
        customer=registration.customer_name,
        close=texts.date(registration.expected_close),
        until=texts.date(registration.protected_until),
    )
    return text, followup_buttons(texts, registration.reference)


def followup_buttons(texts: Texts, reference: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(
                    texts.plain("button_won"), callback_data=FollowupWon(reference).data
                ),
                InlineKeyboardButton(
                    texts.plain("button_lost"), callback_data=FollowupLost(reference).data
                ),
                InlineKeyboardButton(
                    texts.plain("button_still_open"),
                    callback_data=FollowupStillOpen(reference).data,
                ),
            ]
        ]
    )


# --- the follow-up's buttons -------------------------------------------------------


async def press_followup_button(
    update: Update, context: Context, account: Account, texts: Texts, button: FollowupButton
) -> None:
    """Won / Lost (then why) / Still open, answered in the same message."""
    if isinstance(button, FollowupLost):
        await ask_why_lost(update, context, account, texts, button.reference)
        return
    if isinstance(button, FollowupStillOpen):
        await keep_open(update, context, account, texts, button.reference)
        return
    outcome, note = (
        (Status.WON, None)
        if isinstance(button, FollowupWon)
        else (Status.LOST, f"reason: {button.reason}")
    )
    try:
        registration = await report(context, account, button.reference, outcome, note)
    except RegistrationNotFound:
        await answer_query(update, texts.plain("registration_not_found"), alert=True)
        return
    except TransitionNotAllowed as refused:
        await answer_already(update, texts, button.reference, refused.current)
        return
    await answer_query(update)
    if isinstance(button, FollowupWon):
        ask_staff_to_decide(context, registration.reference)
        text = texts("marked_won", reference=registration.reference)
    else:
        text = texts(
            "followup_marked_lost",
            reference=registration.reference,
            reason=texts(f"lost_{button.reason}"),
        )
    await show_in_place(update, text, None)


async def ask_why_lost(
    update: Update, context: Context, account: Account, texts: Texts, reference: str
) -> None:
    """Lost, first press: ask why, if the deal is still open."""
    shared = resources(context)
    registration = await own_registration(update, context, account, texts, reference)
    if registration is None:
        return
    if not registration.open_on(shared.today()):
        # Past its protection but not yet expired by the tick: it is expired all the same.
        status = Status.EXPIRED if registration.status == Status.QUALIFIED else registration.status
        await answer_already(update, texts, reference, status)
        return
    await answer_query(update)
    await show_in_place(
        update, texts("followup_why_lost", reference=reference), why_lost_buttons(texts, reference)
    )


def why_lost_buttons(texts: Texts, reference: str) -> InlineKeyboardMarkup:
    reasons = [
        InlineKeyboardButton(
            texts.plain(f"lost_{reason}"),
            callback_data=FollowupLostBecause(reference, reason).data,
        )
        for reason in LOST_REASONS
    ]
    back = InlineKeyboardButton(
        texts.plain("button_still_open"), callback_data=FollowupStillOpen(reference).data
    )
    return InlineKeyboardMarkup([reasons[:3], reasons[3:], [back]])


async def keep_open(
    update: Update, context: Context, account: Account, texts: Texts, reference: str
) -> None:
    """Still open: kept in the history; the message says until when it is protected."""
    shared = resources(context)
    try:
        async with shared.sessions() as session:
            registration = await report_still_open(
                session=session,
                rules=shared.rules,
                account=account,
                reference=reference,
                now=shared.now(),
            )
    except RegistrationNotFound:
        await answer_query(update, texts.plain("registration_not_found"), alert=True)
        return
    except TransitionNotAllowed as refused:
        await answer_already(update, texts, reference, refused.current)
        return
    await answer_query(update)
    text = texts(
        "followup_still_open", reference=reference, until=texts.date(registration.protected_until)
    )
    await show_in_place(update, text, None)


async def answer_already(update: Update, texts: Texts, reference: str, status: str) -> None:
    """A follow-up pressed after the registration moved on: say so, change nothing."""
    await answer_query(update)
    await show_in_place(
        update,
        texts("followup_already", reference=reference, status=texts.status(status)),
        None,
    )
