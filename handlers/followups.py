"""The follow-up's buttons: Won, Lost (then why), Still open, answered in the same message."""

from __future__ import annotations

from telegram import InlineKeyboardMarkup, Update

from bot.domain.errors import RegistrationNotFound, TransitionNotAllowed
from bot.domain.lifecycle import Status
from bot.i18n import Texts
from bot.services.registrations import report_still_open
from bot.services.views import Account
from handlers.callbacks import (
    LOST_REASONS,
    FollowupButton,
    FollowupLost,
    FollowupLostBecause,
    FollowupStillOpen,
    FollowupWon,
    keyboard,
)
from handlers.common import (
    Context,
    answer_query,
    own_registration,
    report,
    resources,
    show_in_place,
)
from handlers.conflicts import ask_for_proof


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
    markup = None
    if isinstance(button, FollowupWon):
        ask, markup = await ask_for_proof(update, context, texts, registration.reference)
        text = f"{texts('marked_won', reference=registration.reference)}\n\n{ask}"
    else:
        text = texts(
            "followup_marked_lost",
            reference=registration.reference,
            reason=texts(f"lost_{button.reason}"),
        )
    await show_in_place(update, text, markup)


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
        (texts.plain(f"lost_{reason}"), FollowupLostBecause(reference, reason))
        for reason in LOST_REASONS
    ]
    back = (texts.plain("button_still_open"), FollowupStillOpen(reference))
    return keyboard(reasons[:3], reasons[3:], [back])


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
