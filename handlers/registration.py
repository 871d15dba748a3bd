"""/new and /check: the verdict at once, then the deal's details, a summary, Confirm.

The conversation's state is the draft (`bot.domain.drafts`), read on every update: what
the bot waits for is whatever the draft says, never a guess kept elsewhere.

Each step of the user gets one message back, never two: every message spends
Telegram's send budget and buzzes a phone. Whatever precedes the question (the
verdict, why an answer was refused, a note) is written above it in the same message,
and a pressed button's message turns into the next step (or the outcome) in place.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from textwrap import shorten

from sqlalchemy.exc import SQLAlchemyError
from telegram import InlineKeyboardMarkup, Update
from telegram.error import TelegramError
from telegram.ext import ApplicationHandlerStop

from bot.domain.drafts import NEXT_STEP, Draft, Step, after_evidence
from bot.domain.errors import (
    AlreadyRegistered,
    CannotContestOwn,
    CustomerNotNew,
    CustomerProtected,
    DisputeAlreadyOpen,
    FileRefused,
    InvalidAmount,
    InvalidInput,
    InvalidVat,
    NothingToContest,
    Refusal,
)
from bot.domain.parsing import check_close_date, clean_text, normalise_vat, parse_amount, parse_date
from bot.i18n import Texts
from bot.resources import Resources
from bot.services.conflicts import Contest as ContestSent
from bot.services.conflicts import open_dispute
from bot.services.eligibility import Opportunity, check_eligibility, register_opportunity
from bot.services.registrations import get_registration
from bot.services.stats import count_verdict
from bot.services.vies import TIMEOUT as VIES_TIMEOUT
from bot.services.vies import ViesAnswer, ViesOutcome, look_up
from bot.services.views import Account, RegistrationView, Verdict
from bot.storage.conversations import MORE_TIME, PROOF
from handlers.callbacks import (
    CLOSE_IN_DAYS,
    CONTEST_REASONS,
    CancelDraft,
    CloseIn,
    ConfirmDraft,
    Contest,
    ContestBecause,
    DraftButton,
    PickAmount,
    PickVat,
    SkipEvidence,
    UseViesName,
    keyboard,
)
from handlers.common import (
    Context,
    account_of,
    answer_query,
    current_draft,
    drafts_of,
    linked_only,
    remove_buttons,
    replace_pressed,
    reply,
    resources,
    texts_for,
    user_id_of,
)
from handlers.conflicts import (
    evidence_of,
    has_file,
    pending_prompt,
    said,
    take_evidence,
    take_more_time_reason,
    take_proof,
    take_reason,
)
from handlers.photos import read_photo, readable_file
from handlers.render import (
    render_invalid,
    render_refusal,
    render_registered,
    render_verdict,
    vies_line,
)
from models import NAME_LENGTH, PRODUCT_LENGTH

log = logging.getLogger(__name__)


# --- questions ---------------------------------------------------------------


def question(
    texts: Texts, shared: Resources, draft: Draft
) -> tuple[str, InlineKeyboardMarkup | None]:
    """The text and buttons that ask for what the draft waits for."""
    step = draft.step
    if step == Step.VAT:
        return texts("ask_vat"), None
    if step == Step.REASON:
        reasons = [
            (texts.plain(f"contest_{key}"), ContestBecause(draft.id, key))
            for key in CONTEST_REASONS
        ]
        return texts("ask_contest_reason", vat=draft.vat or ""), keyboard(
            *([reason] for reason in reasons)
        )
    if step == Step.EVIDENCE:
        return texts("ask_evidence"), keyboard(
            [(texts.plain("button_skip"), SkipEvidence(draft.id))]
        )
    if step == Step.COMPANY:
        if draft.vies_name:  # the name VIES gave, in one tap (PRODUCT.md §6)
            label = texts.plain("button_use_name", name=shorten(draft.vies_name, 40))
            return texts("ask_company"), keyboard([(label, UseViesName(draft.id))])
        return texts("ask_company"), None
    if step == Step.VALUE:
        return amount_question(texts, draft)
    if step == Step.PRODUCT:
        return texts("ask_product"), None
    if step == Step.CLOSE:
        close_in = [
            (texts.plain("close_in_days", days=days), CloseIn(draft.id, days))
            for days in CLOSE_IN_DAYS
        ]
        # The example is a real date ahead, so that typing it as shown works.
        example = shared.today() + dt.timedelta(days=CLOSE_IN_DAYS[0])
        # Written so that no reader takes the month for the day: "24 Dec 2026", ISO.
        examples = {"example": texts.date(example), "iso": example.isoformat()}
        return texts("ask_close", **examples), keyboard(close_in)
    if draft.contest:
        return contest_summary(texts, draft), keyboard(
            [
                (texts.plain("button_send_to_staff"), ConfirmDraft(draft.id)),
                (texts.plain("button_cancel"), CancelDraft(draft.id)),
            ]
        )
    return summary(texts, draft), keyboard(
        [
            (texts.plain("button_confirm"), ConfirmDraft(draft.id)),
            (texts.plain("button_cancel"), CancelDraft(draft.id)),
        ]
    )


def amount_question(texts: Texts, draft: Draft) -> tuple[str, InlineKeyboardMarkup | None]:
    """Ask for the deal value; after an amount that reads two ways, with a button per reading."""
    choices = draft.amount_choices
    if not choices:
        return texts("ask_value"), None
    readings = [
        (texts.money(amount, draft.currency), PickAmount(draft.id, index))
        for index, amount in enumerate(choices)
    ]
    key = "amount_which" if len(choices) > 1 else "amount_did_you_mean"
    return texts(key), keyboard(readings)


def summary(texts: Texts, draft: Draft) -> str:
    assert draft.vat is not None
    assert draft.deal_value is not None
    assert draft.expected_close is not None
    assert draft.protected_until is not None
    assert draft.quoted_amount is not None
    return texts(
        "summary",
        customer=draft.known_name or draft.customer_name or "",
        vat=draft.vat,
        value=texts.money(draft.deal_value, draft.currency),
        product=draft.product or "",
        close=texts.date(draft.expected_close),
        amount=texts.money(draft.quoted_amount, draft.currency),
        until=texts.date(draft.protected_until),
    )


def contest_summary(texts: Texts, draft: Draft) -> str:
    assert draft.deal_value is not None
    assert draft.expected_close is not None
    assert draft.quoted_amount is not None
    return texts(
        "contest_summary",
        customer=draft.known_name or draft.customer_name or "",
        vat=draft.vat or "",
        reason=draft.reason or "",
        evidence=texts.plain("evidence_one" if draft.evidence else "evidence_none"),
        value=texts.money(draft.deal_value, draft.currency),
        product=draft.product or "",
        close=texts.date(draft.expected_close),
        amount=texts.money(draft.quoted_amount, draft.currency),
    )


async def ask(
    update: Update,
    context: Context,
    texts: Texts,
    draft: Draft,
    preface: str = "",
    *,
    in_place: bool = False,
) -> None:
    """Keep the draft and ask for its step, after `preface` (a verdict, an error, a note).

    `in_place`: in the message whose button was pressed, instead of a new one.
    """
    shared = resources(context)
    draft.touched_at = shared.now()
    draft.interrupted = False
    await drafts_of(context).save(user_id_of(update), draft)
    text, markup = question(texts, shared, draft)
    text = paragraphs(preface, text)
    if in_place:
        await replace_pressed(update, text, markup)
    else:
        await reply(update, text, markup)


def paragraphs(*texts: str) -> str:
    """Texts that go out as one message, a blank line between them; empty ones left out."""
    return "\n\n".join(text for text in texts if text)


# --- /check ------------------------------------------------------------------


@linked_only(default=None)
async def check_customer(update: Update, context: Context, account: Account, texts: Texts) -> None:
    """Give the verdict and quote for /check VAT, registering nothing; then back to /new."""
    typed = " ".join(context.args or [])
    if not typed:
        answer = texts("check_usage")
    else:
        try:
            answer, _, _, _ = await verdict_on(context, account, texts, typed)
        except InvalidVat as error:
            rules = resources(context).rules
            answer = paragraphs(render_invalid(texts, rules, error), texts("check_usage"))
    draft = await current_draft(update, context)
    if draft is None:
        await reply(update, answer)
    else:
        await ask(update, context, texts, draft, paragraphs(answer, texts("back_to_registration")))


def contest_button(
    texts: Texts, shared: Resources, typed: str, refusal: Refusal | None
) -> InlineKeyboardMarkup | None:
    """Contest, under a refusal that can be contested (protected, or not new)."""
    if not isinstance(refusal, CustomerProtected | CustomerNotNew):
        return None
    vat = normalise_vat(typed, default_country=shared.rules.country)
    return keyboard([(texts.plain("button_contest"), Contest(vat, shared.today()))])


async def verdict_on(
    context: Context, account: Account, texts: Texts, typed: str
) -> tuple[str, Verdict | None, Refusal | None, ViesAnswer | None]:
    """The verdict on `typed` in words with VIES's line, and the verdict itself when the
    customer qualifies, or the refusal when it does not; and what VIES said.

    VIES is asked while the verdict is worked out, and waited for at most its timeout:
    newness never depends on it."""
    shared = resources(context)
    vat = normalise_vat(typed, default_country=shared.rules.country)
    started = asyncio.get_running_loop().time()
    vies = asyncio.create_task(ask_vies(shared, vat))
    try:
        try:
            async with shared.sessions() as session:
                verdict = await check_eligibility(
                    session=session, rules=shared.rules, account=account, vat=vat, now=shared.now()
                )
        except Refusal as refusal:
            tally(shared, VERDICT_NAMES.get(type(refusal), "other"))
            said = await vies_within(shared, vies, started)
            text = paragraphs(
                render_refusal(texts, shared.rules, vat, refusal), vies_line(texts, said)
            )
            return text, None, refusal, said
    except BaseException:
        vies.cancel()
        raise
    tally(shared, "new")
    said = await vies_within(shared, vies, started)
    text = paragraphs(render_verdict(texts, shared.rules, verdict), vies_line(texts, said))
    return text, verdict, None, said


async def vies_within(
    shared: Resources, vies: asyncio.Task[ViesAnswer | None], started: float
) -> ViesAnswer | None:
    """VIES's answer if it comes within its timeout from the start of the verdict (the
    database's part included); past it the verdict goes without, and the look-up goes on
    beside to keep what it gets."""
    left = VIES_TIMEOUT + 0.5 - (asyncio.get_running_loop().time() - started)
    try:
        return await asyncio.wait_for(asyncio.shield(vies), max(left, 0.0))
    except TimeoutError:
        shared.run_in_background(_finished(vies), "keeping VIES's late answer")
        return ViesAnswer(ViesOutcome.UNAVAILABLE, error="TIMEOUT", retrying=True)


async def _finished(vies: asyncio.Task[ViesAnswer | None]) -> None:
    await vies


async def ask_vies(shared: Resources, vat: str) -> ViesAnswer | None:
    """VIES's answer, or None when it is off or does not know the country; a database
    failure while keeping the answer loses the line, never the verdict."""
    client = shared.vies
    if client is None:
        return None
    try:
        return await look_up(sessions=shared.sessions, client=client, vat=vat, now=shared.now())
    except SQLAlchemyError:
        log.warning("VIES's answer could not be kept", exc_info=True)
        return None
    except Exception:  # newness never depends on VIES: whatever it did, the verdict goes on
        log.exception("the VIES look-up failed")
        return None


# How each verdict is counted for the programme's numbers (/stats).
VERDICT_NAMES: dict[type[Refusal], str] = {
    CustomerNotNew: "not_new",
    CustomerProtected: "protected",
    AlreadyRegistered: "yours",
}


def tally(shared: Resources, outcome: str) -> None:
    """Count the verdict for /stats, beside the answer: bookkeeping never delays it."""

    async def count() -> None:
        async with shared.sessions() as session:
            await count_verdict(session=session, day=shared.today(), outcome=outcome)

    shared.run_in_background(count(), "counting a verdict")


# --- /new ----------------------------------------------------------------------


@linked_only(default=None)
async def start_registration(
    update: Update, context: Context, account: Account, texts: Texts
) -> None:
    """Begin a registration, dropping a half-typed one; `/new VAT` skips the first question."""
    await begin_registration(update, context, account, texts, " ".join(context.args or []))


async def start_from_button(
    update: Update, context: Context, account: Account, texts: Texts
) -> None:
    """ "Register a deal" under a nudge: the same as /new."""
    await answer_query(update)
    await begin_registration(update, context, account, texts, "")


async def begin_registration(
    update: Update, context: Context, account: Account, texts: Texts, typed_vat: str
) -> None:
    dropped = await current_draft(update, context)
    notice = texts("draft_dropped") if dropped is not None else ""
    draft = Draft(touched_at=resources(context).now())
    if not typed_vat:
        await ask(update, context, texts, draft, notice)
        return
    await take_vat(update, context, account, texts, draft, typed_vat, notice)


async def take_vat(
    update: Update,
    context: Context,
    account: Account,
    texts: Texts,
    draft: Draft,
    typed: str,
    notice: str = "",
) -> None:
    """Answer the VAT number with the verdict and, if it qualifies, the next question."""
    shared = resources(context)
    try:
        answer, verdict, refusal, vies = await verdict_on(context, account, texts, typed)
    except InvalidVat as error:
        draft.step = Step.VAT
        why = render_invalid(texts, shared.rules, error)
        await ask(update, context, texts, draft, paragraphs(notice, why))
        return
    if verdict is None:  # refused: the verdict says why, and this registration ends
        markup = contest_button(texts, shared, typed, refusal)
        await reply(update, paragraphs(notice, answer), markup)
        await drafts_of(context).drop(user_id_of(update))
        return
    draft.vat = verdict.vat
    draft.known_name = verdict.known_name
    draft.vies_name = vies.name if vies is not None and vies.valid else None
    draft.quoted_amount = verdict.quote.amount
    draft.currency = verdict.quote.currency
    draft.protected_until = verdict.protected_until
    draft.step = Step.VALUE if verdict.known_name else Step.COMPANY
    await ask(update, context, texts, draft, paragraphs(notice, answer))


@linked_only(default=None)
async def receive_text(update: Update, context: Context, account: Account, texts: Texts) -> None:
    """Take a typed message as the answer to the draft's question, or point to the commands."""
    prompt = await pending_prompt(context, user_id_of(update), MORE_TIME)
    if prompt is not None:
        await take_more_time_reason(update, context, account, texts, prompt)
        return
    draft = await current_draft(update, context)
    if draft is None:
        await reply(update, texts("unknown_message"))
        return
    if draft.interrupted:
        # The last question may never have arrived: this message cannot be its answer.
        await ask(update, context, texts, draft, texts("question_again"))
        return
    message = update.effective_message
    typed = (message.text or "") if message else ""
    if draft.step == Step.VAT:
        await take_vat(update, context, account, texts, draft, typed)
        return
    if draft.step == Step.CONFIRM:
        await ask(update, context, texts, draft, texts("use_buttons"))
        return
    if draft.step == Step.EVIDENCE:
        await ask(update, context, texts, draft, texts("file_kind"))
        return
    if draft.step == Step.REASON:
        try:
            take_reason(draft, typed)
        except InvalidInput as error:
            rules = resources(context).rules
            await ask(update, context, texts, draft, render_invalid(texts, rules, error))
            return
        await ask(update, context, texts, draft)
        return
    try:
        keep_answer(resources(context), texts, draft, typed)
    except InvalidAmount as error:
        draft.amount_choices = error.readings
        preface = (
            ""
            if len(error.readings) > 1
            else render_invalid(texts, resources(context).rules, error)
        )
        await ask(update, context, texts, draft, preface)
        return
    except InvalidInput as error:
        await ask(
            update, context, texts, draft, render_invalid(texts, resources(context).rules, error)
        )
        return
    draft.step = NEXT_STEP[draft.step]
    await ask(update, context, texts, draft)


def keep_answer(shared: Resources, texts: Texts, draft: Draft, typed: str) -> None:
    """Read a typed answer to the draft's step into the draft, or raise why it cannot be."""
    if draft.step == Step.COMPANY:
        draft.customer_name = clean_text(typed, max_length=NAME_LENGTH)
    elif draft.step == Step.VALUE:
        draft.amount_choices = ()
        draft.deal_value = parse_amount(typed)
    elif draft.step == Step.PRODUCT:
        draft.product = clean_text(typed, max_length=PRODUCT_LENGTH)
    elif draft.step == Step.CLOSE:
        close = parse_date(typed, locale=texts.locale)
        draft.expected_close = check_close_date(close, today=shared.today())


async def repeat_question(update: Update, context: Context, texts: Texts, draft: Draft) -> None:
    """Answer something unexpected mid-registration with the same question, saying why."""
    message = update.effective_message
    if message is not None and message.text and message.text.startswith("/"):
        preface = texts("in_conversation")
    elif draft.step == Step.CONFIRM:
        preface = texts("use_buttons")
    else:
        preface = texts("use_text")
    await ask(update, context, texts, draft, preface)


async def repeat_if_registering(update: Update, context: Context, texts: Texts) -> bool:
    """If a registration is under way, ask its question again and return True."""
    draft = await current_draft(update, context)
    if draft is None:
        return False
    await repeat_question(update, context, texts, draft)
    return True


@linked_only(default=None)
async def receive_other(update: Update, context: Context, account: Account, texts: Texts) -> None:
    """A file asked for (evidence, proof), or a sticker, photo or unknown command: the
    current question again, or the commands."""
    message = update.effective_message
    draft = await current_draft(update, context)
    if draft is not None and draft.step == Step.EVIDENCE and has_file(message):
        try:
            take_evidence(draft, message)
        except FileRefused as refused:
            await ask(update, context, texts, draft, said(texts, refused))
            return
        await ask(update, context, texts, draft, texts("evidence_kept"))
        return
    prompt = await pending_prompt(context, user_id_of(update), PROOF)
    if draft is None and prompt is not None and has_file(message):
        await take_proof(update, context, account, texts, prompt, message)
        return
    waiting = await pending_prompt(context, user_id_of(update), MORE_TIME)
    if draft is None and waiting is not None:
        # The reason for more time is asked: a file is not it, and starts nothing.
        again = texts("ask_more_time_reason", reference=waiting["reference"])
        await reply(update, f"{texts('use_text')}\n{again}")
        return
    if readable_file(message) is not None and (draft is None or draft.step == Step.VAT):
        # Where a VAT number is asked, or to begin: read it off the photo (§6).
        await read_photo(update, context, texts, draft)
        return
    if not await repeat_if_registering(update, context, texts):
        await reply(update, texts("unknown_message"))


async def receive_edit(update: Update, context: Context) -> None:
    """An edited message is never read as an answer: say so, and ask the question again."""
    account = await account_of(update, context)
    if account is None:
        return  # strangers' edits get nothing, like their messages get only the join text
    texts = texts_for(update, account)
    draft = await current_draft(update, context)
    if draft is None:
        await reply(update, texts("edit_ignored"))
    else:
        await ask(update, context, texts, draft, texts("edit_ignored"))


@linked_only(default=None)
async def cancel_registration(
    update: Update, context: Context, account: Account, texts: Texts
) -> None:
    """Leave the registration (/cancel), or say there is nothing to leave."""
    draft = await current_draft(update, context)
    if draft is None:
        await reply(update, texts("nothing_to_cancel"))
        return
    await drafts_of(context).drop(user_id_of(update))
    await reply(update, texts("cancelled"))


# --- the conversation's buttons --------------------------------------------------


async def press_draft_button(
    update: Update, context: Context, account: Account, texts: Texts, button: DraftButton
) -> None:
    """Act on a button of a /new conversation, if that conversation is still the current one."""
    draft = await current_draft(update, context)
    if draft is None or draft.id != button.draft:
        await answer_stale(update, texts)
        return
    # The pressed message becomes the next step: the press costs no second message.
    if isinstance(button, CancelDraft):
        await answer_query(update)
        await drafts_of(context).drop(user_id_of(update))
        await replace_pressed(update, texts("cancelled"))
    elif isinstance(button, CloseIn) and draft.step == Step.CLOSE:
        await answer_query(update)
        draft.expected_close = resources(context).today() + dt.timedelta(days=button.days)
        draft.step = Step.CONFIRM
        # The summary in its place shows the date chosen.
        await ask(update, context, texts, draft, in_place=True)
    elif (
        isinstance(button, PickAmount)
        and draft.step == Step.VALUE
        and button.index < len(draft.amount_choices)
    ):
        await answer_query(update)
        draft.deal_value = draft.amount_choices[button.index]
        draft.amount_choices = ()
        draft.step = Step.PRODUCT
        # What was chosen stays in view above the next question.
        chosen = texts("value_chosen", value=texts.money(draft.deal_value, draft.currency))
        await ask(update, context, texts, draft, chosen, in_place=True)
    elif isinstance(button, ContestBecause) and draft.step == Step.REASON:
        await answer_query(update)
        take_reason(draft, texts.plain(f"contest_{button.reason}"))
        await ask(update, context, texts, draft, in_place=True)
    elif isinstance(button, PickVat) and draft.step == Step.VAT:
        await answer_query(update)
        await remove_buttons(update)  # the choice is made: the verdict comes below
        await take_vat(update, context, account, texts, draft, button.vat)
    elif isinstance(button, UseViesName) and draft.step == Step.COMPANY and draft.vies_name:
        await answer_query(update)
        await remove_buttons(update)  # the verdict above stays as it was
        draft.customer_name = draft.vies_name
        draft.step = NEXT_STEP[draft.step]
        await ask(
            update, context, texts, draft, texts("company_chosen", company=draft.customer_name)
        )
    elif isinstance(button, SkipEvidence) and draft.step == Step.EVIDENCE:
        await answer_query(update)
        draft.step = after_evidence(draft)
        await ask(update, context, texts, draft, in_place=True)
    elif isinstance(button, ConfirmDraft) and draft.step == Step.CONFIRM and draft.contest:
        await send_contest(update, context, account, texts, draft)
    elif isinstance(button, ConfirmDraft) and draft.step == Step.CONFIRM:
        await confirm_registration(update, context, account, texts, draft)
    elif draft.interrupted:
        # An answer failed to arrive (the apology said so), maybe this button's: rather
        # than "expired", the tap brings the question where the registration stands.
        await answer_query(update)
        await ask(update, context, texts, draft, texts("question_again"), in_place=True)
    else:
        await answer_stale(update, texts)


async def answer_stale(update: Update, texts: Texts) -> None:
    """A button of a conversation that ended (or that the bot never offered)."""
    await answer_query(update, texts.plain("stale_button"))
    await remove_buttons(update)


async def confirm_registration(
    update: Update, context: Context, account: Account, texts: Texts, draft: Draft
) -> None:
    """Register the deal; the customer may have been taken since the verdict.

    Should registering fail unexpectedly (a database timeout), the draft and the
    Confirm button stay, so the salesperson can press again after the apology.
    """
    await answer_query(update)
    assert draft.vat is not None
    assert draft.deal_value is not None
    assert draft.product is not None
    assert draft.expected_close is not None
    opportunity = Opportunity(
        vat=draft.vat,
        customer_name=draft.customer_name,
        deal_value=draft.deal_value,
        product=draft.product,
        expected_close=draft.expected_close,
    )
    shared = resources(context)
    user_id = user_id_of(update)
    try:
        async with shared.sessions() as session:
            registration = await register_opportunity(
                session=session,
                rules=shared.rules,
                account=account,
                opportunity=opportunity,
                now=shared.now(),
            )
    except Refusal as refusal:
        await drafts_of(context).drop(user_id)
        await replace_pressed(update, render_refusal(texts, shared.rules, opportunity.vat, refusal))
        return
    # Registered: from here on the draft only waits for the confirmation to arrive.
    draft.step = Step.REGISTERED
    draft.reference = registration.reference
    await drafts_of(context).save(user_id, draft)
    await send_confirmation(update, context, texts, draft, registration, in_place=True)


async def send_contest(
    update: Update, context: Context, account: Account, texts: Texts, draft: Draft
) -> None:
    """Send the contest to staff: a `disputed` registration; the draft ends either way."""
    await answer_query(update)
    assert draft.vat is not None
    assert draft.deal_value is not None
    assert draft.product is not None
    assert draft.expected_close is not None
    contest = ContestSent(
        vat=draft.vat,
        customer_name=draft.customer_name,
        deal_value=draft.deal_value,
        product=draft.product,
        expected_close=draft.expected_close,
        reason=draft.reason or "",
        evidence=evidence_of(draft),
    )
    shared = resources(context)
    try:
        async with shared.sessions() as session:
            submitted = await open_dispute(
                session=session,
                rules=shared.rules,
                account=account,
                contest=contest,
                now=shared.now(),
            )
    except (NothingToContest, CannotContestOwn, DisputeAlreadyOpen) as error:
        await drafts_of(context).drop(user_id_of(update))
        await replace_pressed(update, said(texts, error, draft.vat))
        return
    await drafts_of(context).drop(user_id_of(update))
    text = texts(
        "contest_sent",
        reference=submitted.registration.reference,
        customer=submitted.registration.customer_name,
        due=texts.moment(submitted.due_at, shared.rules.timezone),
    )
    await replace_pressed(update, text)


async def send_confirmation(
    update: Update,
    context: Context,
    texts: Texts,
    draft: Draft,
    registration: RegistrationView,
    *,
    in_place: bool = False,
) -> bool:
    """Tell the user the reference; if Telegram keeps failing, the next update tries again.

    Answering Confirm, the summary just tapped turns into the confirmation (`in_place`):
    it is on the user's screen, and its buttons go with it. A confirmation that comes
    later, with the next update, is news: a new message.
    """
    text = render_registered(texts, resources(context).rules, registration)
    if draft.quoted_amount is not None and draft.quoted_amount != registration.quote.amount:
        # The summary that showed the old amount is gone (or far up): say what it was.
        quoted = texts.money(draft.quoted_amount, draft.currency)
        text = paragraphs(texts("quote_changed", quoted=quoted), text)
    try:
        if in_place:
            await replace_pressed(update, text)
        else:
            await reply(update, text)
    except TelegramError as exc:
        log.warning("the confirmation of a registration is pending: %s", type(exc).__name__)
        return False
    await drafts_of(context).drop(user_id_of(update))
    return True


async def deliver_pending_confirmation(update: Update, context: Context) -> None:
    """Before anything else, give a user the confirmation that failed to reach them."""
    user = update.effective_user
    chat = update.effective_chat
    if user is None or chat is None or chat.type != chat.PRIVATE:
        return
    shared = resources(context)
    draft = await drafts_of(context).load(user.id)
    if draft is None or draft.step != Step.REGISTERED or draft.reference is None:
        return
    account = await account_of(update, context)
    if account is None:
        await drafts_of(context).drop(user.id)
        return
    async with shared.sessions() as session:
        registration = await get_registration(
            session=session, account=account, reference=draft.reference
        )
    texts = texts_for(update, account)
    if not await send_confirmation(update, context, texts, draft, registration):
        # Telegram still fails: handle nothing else now, so that no other step can
        # drop the pending confirmation or read this update against it.
        await answer_query(update)
        raise ApplicationHandlerStop
