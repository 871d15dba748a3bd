"""The messages the bot starts (nudges, follow-ups, expiry notices) and the follow-up's buttons."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import cast

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter

from bot.errors import RegistrationNotFound, TransitionNotAllowed
from bot.i18n import Texts, language_for
from bot.lifecycle import Status
from bot.resources import Resources
from bot.rules import LoyaltyStanding, Rules, sending_allowed
from bot.services.registrations import get_registration
from bot.services.reminders import (
    EXPIRY,
    NUDGE,
    ON_CLOSE_DATE,
    Outcomes,
    ToSend,
    claim_reminders,
    due_reminders,
    expire_lapsed,
    record_outcomes,
    reminders_to_send,
)
from bot.services.views import Account
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
    RESOURCES_KEY,
    App,
    Context,
    answer_query,
    report,
    resources,
    show_in_place,
)

log = logging.getLogger(__name__)
# Outcomes are written down this often during a tick, so a crash loses little.
RECORD_EVERY = 50
TICKED_KEY = "pai_ticked"


@dataclass(frozen=True)
class TickReport:
    expired: int
    quiet: bool
    sent: int = 0
    retry: int = 0
    blocked: int = 0
    failed: int = 0
    skipped: int = 0


async def tick(context: Context) -> None:
    """The scheduled job: expire what lapsed, then send what is due."""
    await run_tick(cast(App, context.application))


async def run_tick(application: App) -> TickReport:
    """One tick, from the database's state at the clock's moment; safe to run twice."""
    shared: Resources = application.bot_data[RESOURCES_KEY]
    rules, now = shared.rules, shared.now()
    async with shared.sessions() as session:
        expired = await expire_lapsed(session=session, rules=rules, now=now)
    if not sending_allowed(rules, now):
        return TickReport(expired=expired, quiet=True)
    token = secrets.token_hex(8)
    async with shared.sessions() as session:
        due = await due_reminders(session=session, rules=rules, now=now)
        claimed = await claim_reminders(session=session, due=due, token=token, now=now)
        ready, gone = await reminders_to_send(session=session, rules=rules, ids=claimed, now=now)
    total = Outcomes(skipped=gone)
    batch = Outcomes()
    for item in ready:
        await send_reminder(application.bot, rules, item, batch)
        if len(batch.sent) + len(batch.retry) >= RECORD_EVERY:
            await _record(shared, batch, total)
            batch = Outcomes()
    await _record(shared, batch, total)
    async with shared.sessions() as session:
        await record_outcomes(session=session, outcomes=Outcomes(skipped=gone), now=now)
    report = TickReport(
        expired=expired,
        quiet=False,
        sent=len(total.sent),
        retry=len(total.retry),
        blocked=len(total.blocked),
        failed=len(total.failed),
        skipped=len(total.skipped),
    )
    # Said when something happened, and at the first tick after start (a restart
    # that catches up says what it caught up on, or that there was nothing).
    first = not application.bot_data.get(TICKED_KEY)
    application.bot_data[TICKED_KEY] = True
    if first or report.sent or report.retry or report.blocked or report.failed or expired:
        log.info("reminders: %s", report)
    return report


async def _record(shared: Resources, batch: Outcomes, total: Outcomes) -> None:
    async with shared.sessions() as session:
        await record_outcomes(session=session, outcomes=batch, now=shared.now())
    total.sent += batch.sent
    total.retry += batch.retry
    total.failed += batch.failed
    total.blocked += batch.blocked


async def send_reminder(bot: Bot, rules: Rules, item: ToSend, outcomes: Outcomes) -> None:
    """Send one reminder and note how it went: a network error is tried again next tick."""
    person = item.due.recipient
    texts = Texts(language_for(chosen=person.language, telegram_code=person.telegram_language))
    text, markup = render_reminder(texts, rules, item)
    try:
        await bot.send_message(
            chat_id=person.telegram_user_id, text=text, parse_mode="HTML", reply_markup=markup
        )
    except Forbidden:
        outcomes.blocked.append((item.id, person.salesperson_id))
    except BadRequest as exc:
        log.warning("reminder %s refused by Telegram: %s", item.id, exc.message)
        outcomes.failed.append(item.id)
    except (NetworkError, RetryAfter) as exc:
        log.info("reminder %s to be tried again: %s", item.id, type(exc).__name__)
        outcomes.retry.append(item.id)
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


def standing_line(texts: Texts, rules: Rules, standing: LoyaltyStanding) -> str:
    """ "3 registrations in the last 365 days: ×1.10; 1 more before 15 Mar 2027 keeps you
    there; 3 more reach ×1.25"."""
    window = rules.loyalty_window_days
    if standing.multiplier is None:
        return texts.plural("loyalty_count_fixed", standing.count, window=window)
    line = texts.plural(
        "loyalty_count",
        standing.count,
        window=window,
        multiplier=texts.multiplier(standing.multiplier),
    )
    if standing.keep_before is not None:
        line += texts("loyalty_keep", date=texts.date(standing.keep_before))
    more = standing.registrations_to_next_step
    if standing.next_step is not None and more is not None:
        line += texts.plural(
            "loyalty_next", more, more=more, next=texts.multiplier(standing.next_step.multiplier)
        )
    return line


# --- the follow-up's buttons -------------------------------------------------------


async def press_followup_button(
    update: Update, context: Context, account: Account, texts: Texts, button: FollowupButton
) -> None:
    """Won / Lost (then why) / Still open, answered in the same message."""
    if isinstance(button, FollowupLost):
        await answer_query(update)
        await show_in_place(
            update,
            texts("followup_why_lost", reference=button.reference),
            why_lost_buttons(texts, button.reference),
        )
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
        await answer_query(update)
        await show_in_place(
            update,
            texts(
                "followup_already",
                reference=button.reference,
                status=texts.status(refused.current),
            ),
            None,
        )
        return
    await answer_query(update)
    if isinstance(button, FollowupWon):
        text = texts("marked_won", reference=registration.reference)
    else:
        text = texts(
            "followup_marked_lost",
            reference=registration.reference,
            reason=texts(f"lost_{button.reason}"),
        )
    await show_in_place(update, text, None)


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
    """Still open: nothing changes, and the message says until when it is protected."""
    shared = resources(context)
    try:
        async with shared.sessions() as session:
            registration = await get_registration(
                session=session, account=account, reference=reference
            )
    except RegistrationNotFound:
        await answer_query(update, texts.plain("registration_not_found"), alert=True)
        return
    await answer_query(update)
    if registration.open_on(shared.today()):
        text = texts(
            "followup_still_open",
            reference=reference,
            until=texts.date(registration.protected_until),
        )
    else:
        text = texts(
            "followup_already", reference=reference, status=texts.status(registration.status)
        )
    await show_in_place(update, text, None)
