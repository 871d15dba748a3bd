"""Conflicts in chat (PRODUCT.md §5), the partner's side: a refusal contested, more time
asked, proof of a won deal sent. Staff's side is in handlers/staff.py."""

from __future__ import annotations

from telegram import InlineKeyboardMarkup, Message, Update

from bot.domain.drafts import Draft, Step, after_evidence
from bot.domain.errors import (
    CannotContestOwn,
    DisputeAlreadyOpen,
    DomainError,
    FileRefused,
    InvalidText,
    MoreTimeNotAllowed,
    NoIncentiveInForce,
    NothingToContest,
    RegistrationNotFound,
    TransitionNotAllowed,
)
from bot.domain.items import DOCUMENT_TYPES, MAX_FILE_BYTES
from bot.domain.parsing import clean_text
from bot.domain.rules import may_contest
from bot.i18n import Texts
from bot.services.conflicts import (
    FileSent,
    Submitted,
    add_proof,
    ask_more_time,
    check_more_time,
    prepare_contest,
    waiting_on_staff,
)
from bot.services.views import Account
from bot.storage.conversations import MORE_TIME, PROOF
from handlers.callbacks import AskMoreTime, ConflictButton, Contest, SkipProof, keyboard
from handlers.common import (
    Context,
    answer_query,
    prompt_forgotten,
    reply,
    resources,
    show_in_place,
    user_id_of,
)
from models import NOTE_LENGTH


def file_of(message: Message | None) -> FileSent:
    """The photo or document in a message, as kept; FileRefused when it cannot be."""
    if message is not None and message.photo:
        photo = message.photo[-1]  # the largest size Telegram made
        if (photo.file_size or 0) > MAX_FILE_BYTES:
            raise FileRefused("too_big")
        return FileSent("photo", photo.file_id)
    document = message.document if message is not None else None
    if document is None or (document.mime_type or "") not in DOCUMENT_TYPES:
        raise FileRefused("kind")
    if (document.file_size or 0) > MAX_FILE_BYTES:
        raise FileRefused("too_big")
    return FileSent("document", document.file_id, document.file_name)


def has_file(message: Message | None) -> bool:
    """Whether the message brings something sent as a file (kept or refused with why)."""
    if message is None:
        return False
    return bool(
        message.photo
        or message.document
        or message.video
        or message.audio
        or message.voice
        or message.video_note
        or message.animation
    )


def said(texts: Texts, error: DomainError, vat: str = "") -> str:
    """A conflict's refusal in words."""
    if isinstance(error, NothingToContest):
        return texts("contest_nothing", vat=vat)
    if isinstance(error, CannotContestOwn):
        return texts("contest_own", vat=vat)
    if isinstance(error, DisputeAlreadyOpen):
        return texts("contest_open", vat=vat, reference=error.reference)
    if isinstance(error, MoreTimeNotAllowed):
        return texts(f"more_time_{error.why}", days=0)
    if isinstance(error, FileRefused):
        return texts("file_too_big" if error.why == "too_big" else "file_kind")
    if isinstance(error, NoIncentiveInForce):
        return texts("no_incentive")
    return texts("registration_not_found")


def due_line(texts: Texts, context: Context, submitted: Submitted) -> str:
    zone = resources(context).rules.timezone
    return texts("staff_answer_by", due=texts.moment(submitted.due_at, zone))


async def press_conflict_button(
    update: Update, context: Context, account: Account, texts: Texts, button: ConflictButton
) -> None:
    if isinstance(button, Contest):
        await start_contest(update, context, account, texts, button)
    elif isinstance(button, AskMoreTime):
        await ask_why_more_time(update, context, account, texts, button.reference)
    else:
        await skip_proof(update, context, account, texts, button)


# --- contest ---------------------------------------------------------------------


async def start_contest(
    update: Update, context: Context, account: Account, texts: Texts, button: Contest
) -> None:
    """Begin a contest of the refusal under which Contest was pressed: why, first."""
    shared = resources(context)
    rules = shared.rules
    if not may_contest(rules, button.day, shared.today()):
        await answer_query(
            update, texts.plain("contest_too_late", days=rules.conflicts.contest_days), alert=True
        )
        return
    try:
        async with shared.sessions() as session:
            terms = await prepare_contest(
                session=session, rules=rules, account=account, vat=button.vat, now=shared.now()
            )
    except (NothingToContest, CannotContestOwn, DisputeAlreadyOpen, NoIncentiveInForce) as error:
        await answer_query(update)
        await reply(update, said(texts, error, button.vat))
        return
    await answer_query(update)
    draft = Draft(
        touched_at=shared.now(),
        step=Step.REASON,
        vat=terms.vat,
        known_name=terms.known_name,
        quoted_amount=terms.quote.amount,
        currency=terms.quote.currency,
        contest=True,
    )
    # Imported late: the registration conversation asks the questions of a contest too.
    from handlers.registration import ask

    await ask(update, context, texts, draft)


def take_reason(draft: Draft, typed: str) -> None:
    draft.reason = clean_text(typed, max_length=NOTE_LENGTH)
    draft.step = Step.EVIDENCE


def take_evidence(draft: Draft, message: Message | None) -> None:
    sent = file_of(message)
    draft.evidence = (sent.kind, sent.file_id, sent.file_name or "")
    draft.step = after_evidence(draft)


def evidence_of(draft: Draft) -> tuple[FileSent, ...]:
    if len(draft.evidence) != 3:
        return ()
    kind, file_id, name = draft.evidence
    return (FileSent(kind, file_id, name or None),)


# --- more time -------------------------------------------------------------------


async def ask_why_more_time(
    update: Update, context: Context, account: Account, texts: Texts, reference: str
) -> None:
    """Ask for more time, first press: why, in one line (or say why it cannot be asked)."""
    shared = resources(context)
    try:
        async with shared.sessions() as session:
            await check_more_time(
                session=session,
                rules=shared.rules,
                account=account,
                reference=reference,
                now=shared.now(),
            )
    except RegistrationNotFound:
        await answer_query(update, texts.plain("registration_not_found"), alert=True)
        return
    except MoreTimeNotAllowed as refused:
        await answer_query(update, more_time_refused(texts, context, refused), alert=True)
        return
    await answer_query(update)
    now = shared.now()
    prompt = {"reference": reference, "asked_at": now.isoformat()}
    await shared.conversations.save(user_id_of(update), MORE_TIME, prompt, now)
    await reply(update, texts("ask_more_time_reason", reference=reference))


def more_time_refused(texts: Texts, context: Context, refused: MoreTimeNotAllowed) -> str:
    days = resources(context).rules.conflicts.extension_window_days
    return texts.plain(f"more_time_{refused.why}", days=days)


async def pending_prompt(context: Context, user_id: int, kind: str) -> dict[str, str] | None:
    """A partner's open prompt (proof, more time), forgotten once left for hours."""
    shared = resources(context)
    prompt = await shared.conversations.load(user_id, kind)
    if prompt is None:
        return None
    if prompt_forgotten(prompt, shared.now()):
        await shared.conversations.take(user_id, kind)
        return None
    return prompt


async def take_more_time_reason(
    update: Update, context: Context, account: Account, texts: Texts, prompt: dict[str, str]
) -> None:
    """The typed reason for more time: the request goes to staff."""
    shared = resources(context)
    reference = prompt["reference"]
    message = update.effective_message
    try:
        reason = clean_text(message.text or "" if message else "", max_length=NOTE_LENGTH)
    except InvalidText as error:
        why = texts(error.reason, max=error.limit)
        await reply(update, f"{why}\n{texts('ask_more_time_reason', reference=reference)}")
        return
    if await shared.conversations.take(user_id_of(update), MORE_TIME) is None:
        return  # the same reason reached two instances: one asks
    try:
        async with shared.sessions() as session:
            submitted = await ask_more_time(
                session=session,
                rules=shared.rules,
                account=account,
                reference=reference,
                reason=reason,
                now=shared.now(),
            )
    except RegistrationNotFound:
        await reply(update, texts("registration_not_found"))
        return
    except MoreTimeNotAllowed as refused:
        await reply(update, more_time_refused(texts, context, refused))
        return
    days = shared.rules.conflicts.extension_days
    zone = shared.rules.timezone
    await reply(
        update,
        texts(
            "more_time_sent",
            days=days,
            reference=reference,
            due=texts.moment(submitted.due_at, zone),
        ),
    )


# --- proof -----------------------------------------------------------------------


async def ask_for_proof(
    update: Update, context: Context, texts: Texts, reference: str
) -> tuple[str, InlineKeyboardMarkup | None]:
    """After Won: the question for proof (with Skip unless the rules require it) and
    when staff will answer, if the deal is before them already."""
    shared = resources(context)
    now = shared.now()
    prompt = {"reference": reference, "asked_at": now.isoformat()}
    await shared.conversations.save(user_id_of(update), PROOF, prompt, now)
    required = shared.rules.conflicts.require_proof
    text = texts("ask_proof_required" if required else "ask_proof")
    markup = None if required else keyboard([(texts.plain("button_skip"), SkipProof(reference))])
    return text, markup


async def staff_answer_line(context: Context, texts: Texts, registration_id: int) -> str:
    """ "Staff will answer by …" for what of the registration waits for them, if any."""
    shared = resources(context)
    async with shared.sessions() as session:
        waiting = await waiting_on_staff(session=session, registration_id=registration_id)
    if not waiting:
        return ""
    due = min(due for _kind, due in waiting)
    return texts("staff_answer_by", due=texts.moment(due, shared.rules.timezone))


async def take_proof(
    update: Update,
    context: Context,
    account: Account,
    texts: Texts,
    prompt: dict[str, str],
    message: Message | None,
) -> None:
    """A photo or document while proof is asked: kept, and staff shown it."""
    shared = resources(context)
    reference = prompt["reference"]
    try:
        sent = file_of(message)
    except FileRefused as refused:
        await reply(update, said(texts, refused))
        return
    await shared.conversations.take(user_id_of(update), PROOF)
    await record_proof(update, context, account, texts, reference, sent)


async def record_proof(
    update: Update,
    context: Context,
    account: Account,
    texts: Texts,
    reference: str,
    sent: FileSent | None,
    *,
    in_place: bool = False,
) -> None:
    shared = resources(context)
    try:
        async with shared.sessions() as session:
            submitted = await add_proof(
                session=session,
                rules=shared.rules,
                account=account,
                reference=reference,
                sent=sent,
                now=shared.now(),
            )
    except (RegistrationNotFound, TransitionNotAllowed):
        await reply(update, texts("registration_not_found"))
        return
    head = texts("proof_kept", reference=reference) if sent else texts("proof_skipped")
    tail = due_line(texts, context, submitted) if submitted is not None else ""
    text = "\n".join(part for part in (head, tail) if part)
    if in_place:
        await show_in_place(update, text, None)
    else:
        await reply(update, text)


async def skip_proof(
    update: Update, context: Context, account: Account, texts: Texts, button: SkipProof
) -> None:
    shared = resources(context)
    prompt = await pending_prompt(context, user_id_of(update), PROOF)
    if prompt is None or prompt.get("reference") != button.reference:
        await answer_query(update, texts.plain("stale_button"))
        return
    await answer_query(update)
    if shared.rules.conflicts.require_proof:
        return
    await shared.conversations.take(user_id_of(update), PROOF)
    await record_proof(update, context, account, texts, button.reference, None, in_place=True)
