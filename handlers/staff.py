"""Programme staff in chat: deciding on won deals, /pending, /find. Staff only."""

from __future__ import annotations

import asyncio
import functools
import html
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from telegram import Update

from bot.domain.errors import (
    AlreadyDecided,
    CustomerTakenMeanwhile,
    InvalidText,
    InvalidVat,
    RegistrationNotFound,
    TransitionNotAllowed,
)
from bot.domain.parsing import clean_text, normalise_vat
from bot.i18n import Texts
from bot.reports import chart_png, numbers_text
from bot.services.conflicts import decide_item
from bot.services.items import ItemView, item_view, keep_item_notice, open_items
from bot.services.privacy import record_access, staff_who
from bot.services.similar import similar_customers
from bot.services.staff import (
    decide,
    decision_item,
    find_customer,
    note_staff_visit,
)
from bot.services.stats import programme_numbers
from bot.storage.conversations import BROADCAST, REJECTION
from bot.telegram.sending import best_effort
from handlers import broadcasts, staff_files
from handlers.callbacks import (
    BroadcastCancel,
    BroadcastSend,
    BroadcastTo,
    Grant,
    ImportFile,
    MarkPaid,
    Refuse,
    Reject,
    StaffButton,
)
from handlers.common import (
    Context,
    account_of,
    answer_query,
    prompt_forgotten,
    reply,
    reply_in_parts,
    resources,
    show_in_place,
    texts_for,
    user_id_of,
    visitor_of,
)
from handlers.files import send_file
from handlers.partner import show_help
from handlers.registration import cancel_registration, receive_other, receive_text
from handlers.render import (
    deal_text,
    decided_text,
    item_body,
    item_buttons,
    item_decided_text,
    item_text,
    render_invalid,
    similar_lines,
    staff_vies_line,
)
from models import NOTE_LENGTH

# Items /pending shows with their buttons; the count says how many more wait.
PENDING_SHOWN = 20

log = logging.getLogger(__name__)
StaffHandler = Callable[[Update, Context, Texts], Coroutine[Any, Any, None]]


def is_staff(context: Context, user_id: int | None) -> bool:
    return user_id is not None and user_id in resources(context).settings.pai_admin_ids


async def note_staff(update: Update, context: Context) -> None:
    """Keep a staff member's name and language as Telegram shows them, before anything
    else: the texts the bot starts to them, and "decided by", read them."""
    user = update.effective_user
    if user is None or not is_staff(context, user.id):
        return
    shared = resources(context)
    async with shared.sessions() as session:
        await note_staff_visit(session=session, visitor=visitor_of(user), now=shared.now())


def staff_only(callback: StaffHandler) -> Callable[[Update, Context], Coroutine[Any, Any, None]]:
    """Run the callback for staff; anyone else gets the answer to an unknown command."""

    @functools.wraps(callback)
    async def wrapper(update: Update, context: Context) -> None:
        user = update.effective_user
        if not is_staff(context, user.id if user else None):
            await receive_other(update, context)
            return
        await callback(update, context, texts_for(update, None))

    return wrapper


# --- won deals -------------------------------------------------------------------


async def press_staff_button(update: Update, context: Context, button: StaffButton) -> None:
    """Approve at once; Reject asks for the reason first; the broadcast's buttons. Staff only."""
    if not is_staff(context, user_id_of(update)):
        texts = texts_for(update, None)
        await answer_query(update, texts.plain("stale_button"))
        return
    if isinstance(button, BroadcastTo | BroadcastSend | BroadcastCancel):
        await broadcasts.press_broadcast_button(update, context, button)
        return
    texts = texts_for(update, None)
    if isinstance(button, Grant | Refuse):
        await press_item_button(update, context, texts, button)
        return
    if isinstance(button, ImportFile):
        await staff_files.press_import(update, context, texts, button)
        return
    if isinstance(button, MarkPaid):
        await staff_files.press_mark_paid(update, context, texts, button)
        return
    if not await still_waiting(update, context, texts, button.reference):
        return
    if isinstance(button, Reject):
        shared = resources(context)
        now = shared.now()
        prompt = {"reference": button.reference, "asked_at": now.isoformat()}
        await shared.conversations.save(user_id_of(update), REJECTION, prompt, now)
        await answer_query(update)
        await reply(update, texts("staff_reject_why", reference=button.reference))
        return
    await answer_query(update)
    await settle(update, context, texts, button.reference, approve=True, reason=None)


async def still_waiting(update: Update, context: Context, texts: Texts, reference: str) -> bool:
    """Whether the deal still waits for a decision; if not, say at once who decided, and
    the pressed copy shows the outcome, its buttons gone."""
    try:
        async with resources(context).sessions() as session:
            item = await decision_item(session=session, reference=reference)
    except RegistrationNotFound:
        await answer_query(update, texts.plain("staff_not_found", reference=reference), alert=True)
        return False
    if item.earlier is None or item.by is None:
        return True
    popup = texts.plain(
        "staff_already_decided",
        reference=reference,
        status=texts.status(item.deal.registration.status),
        by=texts.actor(item.by),
    )
    await answer_query(update, popup, alert=True)
    await show_in_place(update, decided_text(texts, item.earlier, who=texts.actor(item.by)), None)
    return False


async def receive_staff_text(update: Update, context: Context) -> None:
    """A broadcast's text, or a rejection's reason; any other text goes on as usual."""
    shared = resources(context)
    draft = await shared.conversations.load(user_id_of(update), BROADCAST)
    if draft is not None and draft.get("step") == broadcasts.TEXT:
        await broadcasts.take_broadcast_text(update, context, texts_for(update, None), draft)
        return
    prompt = await shared.conversations.load(user_id_of(update), REJECTION)
    if prompt is not None and prompt_forgotten(prompt, shared.now()):
        # Asked hours ago and left: a text typed now is not that reason.
        await shared.conversations.take(user_id_of(update), REJECTION)
        prompt = None
    if prompt is None:
        await receive_text(update, context)
        return
    reference = prompt["reference"]
    message = update.effective_message
    texts = texts_for(update, None)
    try:
        reason = clean_text(message.text or "" if message else "", max_length=NOTE_LENGTH)
    except InvalidText as error:  # empty or too long: say why, ask again
        why = render_invalid(texts, shared.rules, error)
        again = "staff_refuse_why" if "item" in prompt else "staff_reject_why"
        await reply(update, f"{why}\n{texts(again, reference=reference)}")
        return
    if await shared.conversations.take(user_id_of(update), REJECTION) is None:
        return  # the same reason, typed twice, reached two instances: one rejects
    if "item" in prompt:
        await settle_item(update, context, texts, int(prompt["item"]), grant=False, reason=reason)
        return
    await settle(update, context, texts, reference, approve=False, reason=reason)


async def press_item_button(
    update: Update, context: Context, texts: Texts, button: Grant | Refuse
) -> None:
    """Grant at once; Refuse asks for the reason first. A decided item says who did."""
    item = await item_still_waiting(update, context, texts, button.item)
    if item is None:
        return
    if isinstance(button, Refuse):
        shared = resources(context)
        now = shared.now()
        reference = item.registration.reference
        prompt = {"item": str(item.id), "reference": reference, "asked_at": now.isoformat()}
        await shared.conversations.save(user_id_of(update), REJECTION, prompt, now)
        await answer_query(update)
        await reply(update, texts("staff_refuse_why", reference=reference))
        return
    await answer_query(update)
    await settle_item(update, context, texts, item.id, grant=True, reason=None)


async def item_still_waiting(
    update: Update, context: Context, texts: Texts, item_id: int
) -> ItemView | None:
    """The item if it still waits; if not, say at once who decided, and the pressed
    copy shows the outcome, its buttons gone. A forged number is an expired button."""
    shared = resources(context)
    try:
        async with shared.sessions() as session:
            item = await item_view(session=session, item_id=item_id)
    except RegistrationNotFound:
        await answer_query(update, texts.plain("stale_button"))
        return None
    if item.outcome is None:
        return item
    who = texts.actor(item.decided_by) if item.decided_by else ""
    popup = texts.plain(
        "staff_already_decided",
        reference=item.registration.reference,
        status=texts.plain(f"outcome_{item.outcome}"),
        by=who,
    )
    await answer_query(update, popup, alert=True)
    await show_in_place(update, item_decided_text(texts, shared.rules, item, who=who), None)
    return None


async def settle_item(
    update: Update,
    context: Context,
    texts: Texts,
    item_id: int,
    *,
    grant: bool,
    reason: str | None,
) -> None:
    """Record the decision on a dispute or request for more time: the first counts."""
    shared = resources(context)
    try:
        async with shared.sessions() as session:
            await decide_item(
                session=session,
                rules=shared.rules,
                item_id=item_id,
                grant=grant,
                staff_id=user_id_of(update),
                now=shared.now(),
                reason=reason,
            )
    except RegistrationNotFound:
        await reply(update, texts("stale_button"))
        return
    except CustomerTakenMeanwhile as taken:
        await reply(update, texts("staff_taken_meanwhile", reference=taken.reference))
        return
    except (AlreadyDecided, TransitionNotAllowed):  # another staff member, a moment before
        if update.callback_query is not None:
            await item_still_waiting(update, context, texts, item_id)
            return
        async with shared.sessions() as session:
            item = await item_view(session=session, item_id=item_id)
        who = texts.actor(item.decided_by) if item.decided_by else ""
        await reply(update, item_decided_text(texts, shared.rules, item, who=who))
        return
    # The partner is told and every copy edited by bot/jobs/staff.py; a reason typed in
    # the chat has no message of its own to edit: it gets the outcome here.
    if update.callback_query is None:
        async with shared.sessions() as session:
            item = await item_view(session=session, item_id=item_id)
        user = update.effective_user
        who = user.full_name if user else ""
        await reply(update, item_decided_text(texts, shared.rules, item, who=who))


async def cancel_staff_prompt(update: Update, context: Context) -> None:
    """/cancel while a rejection waits for its reason (nothing is rejected) or while a
    broadcast is being written (nothing is sent)."""
    shared = resources(context)
    if await shared.conversations.take(user_id_of(update), BROADCAST) is not None:
        await reply(update, texts_for(update, None)("broadcast_cancelled"))
        return
    prompt = await shared.conversations.take(user_id_of(update), REJECTION)
    if prompt is None:
        await cancel_registration(update, context)
        return
    await reply(
        update, texts_for(update, None)("staff_reject_cancelled", reference=prompt["reference"])
    )


async def settle(
    update: Update,
    context: Context,
    texts: Texts,
    reference: str,
    *,
    approve: bool,
    reason: str | None,
) -> None:
    """Record the decision: the first counts."""
    shared = resources(context)
    try:
        async with shared.sessions() as session:
            decision = await decide(
                session=session,
                reference=reference,
                approve=approve,
                staff_id=user_id_of(update),
                now=shared.now(),
                reason=reason,
            )
    except RegistrationNotFound:
        await reply(update, texts("staff_not_found", reference=reference))
        return
    except AlreadyDecided as first:  # another staff member, a moment before
        if update.callback_query is not None:
            await still_waiting(update, context, texts, reference)
            return
        said = texts.plain(
            "staff_already_decided",
            reference=reference,
            status=texts.status(first.status),
            by=texts.actor(first.by),
        )
        await reply(update, html.escape(said))
        return
    # The partner is told, and every staff copy edited, by bot/jobs/staff.py; a reason
    # typed in the chat has no message of its own to edit: it gets the outcome here.
    if update.callback_query is None:
        user = update.effective_user
        await reply(update, decided_text(texts, decision, who=user.full_name if user else ""))


# --- /help, /pending, /find ---------------------------------------------------------


@staff_only
async def show_staff_help(update: Update, context: Context, texts: Texts) -> None:
    """Staff's own commands, one line each; a staff member who also sells gets both."""
    await reply(update, texts("staff_help", programme=resources(context).rules.name))
    if await account_of(update, context) is not None:
        await show_help(update, context)


@staff_only
async def show_pending(update: Update, context: Context, texts: Texts) -> None:
    """List what waits for a decision, overdue first with how late, each with its buttons."""
    shared = resources(context)
    now = shared.now()
    async with shared.sessions() as session:
        items = await open_items(session=session)
    if not items:
        await reply(update, texts("staff_pending_none"))
        return
    shown = items[:PENDING_SHOWN]
    await reply(update, texts.plural("staff_pending", len(items), shown=len(shown)))
    for item in shown:
        copy = await reply(
            update, item_text(texts, shared.rules, item, now), item_buttons(texts, item)
        )
        if copy is not None:  # a copy like any other: edited into the outcome once decided
            async with shared.sessions() as session:
                await keep_item_notice(
                    session=session,
                    item_id=item.id,
                    registration_id=item.registration.id,
                    chat_id=copy.chat_id,
                    message_id=copy.message_id,
                )
        chat = update.effective_chat
        if chat is not None:
            for sent in item.files:
                await send_file(context.bot, chat.id, texts, item.registration.reference, sent)


@staff_only
async def find(update: Update, context: Context, texts: Texts) -> None:
    """/find VAT: the customer's standing with the holder named, and its registrations."""
    shared = resources(context)
    typed = " ".join(context.args or [])
    try:
        vat = normalise_vat(typed, default_country=shared.rules.country)
    except InvalidVat:
        await reply(update, texts("staff_find_usage"))
        return
    async with shared.sessions() as session:
        found = await find_customer(session=session, rules=shared.rules, vat=vat, now=shared.now())
        await record_access(
            session=session, who=staff_who(user_id_of(update)), what=f"find {vat}", now=shared.now()
        )
    verdict = found.verdict
    lines = [texts("staff_find_head", vat=vat, name=verdict.vendor_name or "-")]
    if vies := staff_vies_line(texts, found.vies):
        lines.append(vies)
    if verdict.holder is not None:
        holder = verdict.holder
        lines.append(
            texts(
                "staff_find_holder",
                code=holder.partner_code,
                company=holder.company,
                reference=holder.reference,
                until=texts.date(holder.until),
            )
        )
    elif verdict.is_new:
        lines.append(texts("staff_find_new"))
    else:
        assert verdict.last_purchase is not None
        lines.append(texts("staff_find_not_new", last=texts.date(verdict.last_purchase)))
    for deal, history in found.deals:
        lines.append("")
        lines.append(deal_text(texts, deal))
        for entry in history:
            lines.append(
                texts(
                    "staff_history",
                    at=texts.date(entry.at.astimezone(shared.rules.timezone).date()),
                    to=texts.status(entry.to_status),
                    by=texts.actor(entry.by),
                    note=f": {entry.note}" if entry.note else "",
                )
            )
    if not found.deals:
        lines.append(texts("staff_find_no_registrations"))
    for item in found.items:
        lines.append("")
        lines.append(item_body(texts, shared.rules, item))
        if item.outcome is None:
            state = texts(
                "staff_item_waiting", due=texts.moment(item.due_at, shared.rules.timezone)
            )
        else:
            by = texts.actor(item.decided_by) if item.decided_by else ""
            state = texts("staff_item_decided", outcome=texts(f"outcome_{item.outcome}"), by=by)
        lines.append(texts("staff_find_item", kind=texts(f"item_{item.kind}"), state=state))
    name = verdict.vendor_name or next((d.registration.customer_name for d, _ in found.deals), "")
    if name:
        async with shared.sessions() as session:
            similar = await similar_customers(
                session=session, vat=vat, name=name, today=shared.today()
            )
        if similar:
            lines.append("")
            lines.append(similar_lines(texts, similar))
    await reply_in_parts(update, lines)
    chat = update.effective_chat
    if chat is not None:
        for item in found.items:
            for sent in item.files:
                await send_file(context.bot, chat.id, texts, item.registration.reference, sent)


@staff_only
async def start_broadcast(update: Update, context: Context, texts: Texts) -> None:
    """Write a programme update for partners: its text, then who gets it."""
    await broadcasts.start_broadcast(update, context, texts)


@staff_only
async def list_broadcasts(update: Update, context: Context, texts: Texts) -> None:
    """Recent broadcasts with their reports."""
    await broadcasts.list_broadcasts(update, context, texts)


# --- /stats -----------------------------------------------------------------------


@staff_only
async def export_registrations(update: Update, context: Context, texts: Texts) -> None:
    """/export: the registrations as .xlsx (PRODUCT.md §7)."""
    await staff_files.send_export(update, context, texts)


@staff_only
async def show_payouts(update: Update, context: Context, texts: Texts) -> None:
    """/payouts: the approved, unpaid incentives as .xlsx, and Mark these paid."""
    await staff_files.send_payouts(update, context, texts)


async def receive_document(update: Update, context: Context) -> None:
    """A staff member's .csv / .xlsx is a file to import; any other document goes on as
    anyone's would (a photo of a VAT number, evidence, proof)."""
    if staff_files.is_sheet(update.effective_message):
        await staff_files.receive_sheet(update, context, texts_for(update, None))
        return
    await receive_other(update, context)


@staff_only
async def show_stats(update: Update, context: Context, texts: Texts) -> None:
    """The programme's numbers, and a chart of registrations and wins per month."""
    shared = resources(context)
    async with shared.sessions() as session:
        numbers = await programme_numbers(session=session, rules=shared.rules, now=shared.now())
    await reply(update, numbers_text(texts, shared.rules, numbers))
    # Drawing takes a few hundred milliseconds: off the event loop, nobody waits for it.
    chart = await asyncio.to_thread(chart_png, numbers, shared.rules.levels, texts)
    chat = update.effective_chat
    if chat is not None:
        await best_effort("sending the chart", chat.send_photo(chart, filename="stats.png"))
