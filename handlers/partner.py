"""/start, /help, /status, /settings, their buttons, and the answers to everything else."""

from __future__ import annotations

import datetime as dt
import logging

from telegram import InlineKeyboardMarkup, Update

from bot.domain.errors import InviteInvalid, RegistrationNotFound, TransitionNotAllowed
from bot.domain.lifecycle import Status
from bot.domain.rules import Rules
from bot.i18n import LANGUAGES, Texts
from bot.services.accounts import (
    preview_invite,
    redeem_invite,
    update_preferences,
)
from bot.services.conflicts import offers_more_time, waiting_on_staff
from bot.services.registrations import (
    PAGE_SIZE,
    list_registrations,
)
from bot.services.views import Account, RegistrationView, StatusPage
from bot.telegram.menu import offer_web_view
from handlers.callbacks import (
    AskLost,
    AskMoreTime,
    Key,
    MoveToPartner,
    OpenRegistration,
    PartnerButton,
    ReportLost,
    ReportWon,
    SetLanguage,
    SetReminders,
    ShowPage,
    StayWithPartner,
    keyboard,
)
from handlers.common import (
    Context,
    account_of,
    answer_query,
    current_draft,
    drafts_of,
    linked_only,
    own_registration,
    remove_buttons,
    reply,
    report,
    resources,
    show_in_place,
    texts_for,
    user_id_of,
    visitor_of,
)
from handlers.conflicts import ask_for_proof
from handlers.registration import repeat_if_registering
from handlers.render import render_registration, standing_line

log = logging.getLogger(__name__)


# --- /start ----------------------------------------------------------------------


async def start(update: Update, context: Context) -> None:
    """Link the account through an invite payload, or say how to get one."""
    if context.args:
        await follow_invite(update, context, context.args[0])
        return
    account = await account_of(update, context)
    texts = texts_for(update, account)
    if account is None:
        await reply(update, texts("start_no_invite", programme=resources(context).rules.name))
    elif not await repeat_if_registering(update, context, texts):
        await reply(update, texts("start_already_linked", company=account.company))


async def follow_invite(update: Update, context: Context, token: str) -> None:
    """Open an invite: link a newcomer at once; ask someone linked elsewhere before moving."""
    shared = resources(context)
    user_id = user_id_of(update)
    account = await account_of(update, context)
    texts = texts_for(update, account)
    if await current_draft(update, context) is not None:
        await drafts_of(context).drop(user_id)
        await reply(update, texts("draft_dropped"))
    try:
        async with shared.sessions() as session:
            preview = await preview_invite(
                session=session, token=token, telegram_user_id=user_id, now=shared.now()
            )
    except InviteInvalid:
        await reply(update, texts("start_invite_invalid"))
        return
    if preview.current is None:
        await link(update, context, token)
    elif not preview.moves:
        await reply(update, texts("start_already_linked", company=preview.current.company))
    else:
        markup = keyboard(
            [
                (texts.plain("button_move", company=preview.partner.company), MoveToPartner(token)),
                (texts.plain("button_stay", company=preview.current.company), StayWithPartner()),
            ]
        )
        await reply(
            update,
            texts(
                "invite_move",
                current=preview.current.company,
                company=preview.partner.company,
            ),
            markup,
        )


async def link(update: Update, context: Context, token: str) -> None:
    """Use the invite and welcome the salesperson to the partner's programme."""
    shared = resources(context)
    user = update.effective_user
    assert user is not None
    visitor = visitor_of(user)
    try:
        async with shared.sessions() as session:
            account = await redeem_invite(
                session=session, token=token, visitor=visitor, now=shared.now()
            )
    except InviteInvalid:
        texts = texts_for(update, await account_of(update, context))
        await reply(update, texts("start_invite_invalid"))
        return
    context.account = account
    log.info("salesperson %s linked to partner %s", account.salesperson_id, account.partner_code)
    texts = texts_for(update, account)
    welcome = texts("start_welcome", company=account.company, programme=shared.rules.name)
    notice = texts("privacy_notice", controller=shared.rules.privacy.controller)
    await reply(update, f"{welcome}\n\n{notice}")
    await offer_web_view(context.bot, shared.settings.pai_webapp_url, user.id, texts)


# --- /help, /cancel outside, anything else ------------------------------------------


@linked_only(default=None)
async def show_help(update: Update, context: Context, account: Account, texts: Texts) -> None:
    """Explain the programme and list the commands."""
    if await repeat_if_registering(update, context, texts):
        return
    rules = resources(context).rules
    await reply(
        update,
        texts(
            "help",
            programme=rules.name,
            lookback=rules.lookback_months,
            protection=rules.protection_days,
            level=texts.level(account.level),
        ),
    )
    # People linked before the web view was switched on get its menu button here.
    url = resources(context).settings.pai_webapp_url
    await offer_web_view(context.bot, url, account.telegram_user_id, texts)


# --- /status ---------------------------------------------------------------


def status_text(texts: Texts, rules: Rules, account: Account, page: StatusPage) -> str:
    # Where the partner stands for loyalty comes first: what the next deal would earn.
    standing = texts("loyalty", line=standing_line(texts, rules, page.standing))
    if page.total_count == 0:
        return f"{standing}\n\n{texts('status_empty')}"
    totals = texts(
        "status_totals",
        expected=texts.money(page.totals.expected),
        approved=texts.money(page.totals.approved),
        paid=texts.money(page.totals.paid),
    )
    header = texts.plural("status_header", page.total_count, company=account.company)
    return f"{header}\n{standing}\n\n{totals}\n\n{texts('status_hint')}"


# Characters of a customer's name on a /status button: the line must fit a phone.
NAME_ON_BUTTON = 24


def shortened(text: str, limit: int) -> str:
    """The text, or its first characters and an ellipsis: a cut is shown, never hidden."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def status_buttons(texts: Texts, page: StatusPage) -> InlineKeyboardMarkup | None:
    rows: list[list[Key]] = [
        [
            (
                texts.plain(
                    "status_button",
                    reference=r.reference,
                    customer=shortened(r.customer_name, NAME_ON_BUTTON),
                    status=texts.status(r.status),
                    amount=texts.money(r.quote.amount, r.currency),
                ),
                OpenRegistration(r.reference, page.offset),
            )
        ]
        for r in page.registrations
    ]
    paging: list[Key] = []
    if page.offset > 0:
        paging.append((texts.plain("button_newer"), ShowPage(max(page.offset - PAGE_SIZE, 0))))
    if page.offset + PAGE_SIZE < page.total_count:
        paging.append((texts.plain("button_more"), ShowPage(page.offset + PAGE_SIZE)))
    if paging:
        rows.append(paging)
    return keyboard(*rows) if rows else None


async def load_page(context: Context, account: Account, offset: int) -> StatusPage:
    shared = resources(context)
    async with shared.sessions() as session:
        return await list_registrations(
            session=session, rules=shared.rules, account=account, offset=offset, now=shared.now()
        )


@linked_only(default=None)
async def show_status(update: Update, context: Context, account: Account, texts: Texts) -> None:
    """List the partner's registrations with totals; each opens its detail."""
    if await repeat_if_registering(update, context, texts):
        return
    page = await load_page(context, account, 0)
    rules = resources(context).rules
    await reply(update, status_text(texts, rules, account, page), status_buttons(texts, page))


def detail_buttons(
    texts: Texts, rules: Rules, registration: RegistrationView, offset: int, today: dt.date
) -> InlineKeyboardMarkup:
    rows: list[list[Key]] = []
    # Won / Lost while open; the service still refuses one whose protection lapsed.
    if registration.open_on(today):
        rows.append(
            [
                (texts.plain("button_won"), ReportWon(registration.reference, offset)),
                (texts.plain("button_lost"), AskLost(registration.reference, offset)),
            ]
        )
    if offers_more_time(rules, registration, today):
        rows.append([(texts.plain("button_more_time"), AskMoreTime(registration.reference))])
    rows.append([(texts.plain("button_back"), ShowPage(offset))])
    return keyboard(*rows)


async def show_detail(
    update: Update, context: Context, texts: Texts, registration: RegistrationView, offset: int
) -> None:
    shared = resources(context)
    text = render_registration(texts, shared.rules, registration, shared.today())
    waiting = await waiting_line(context, texts, registration)
    await show_in_place(
        update,
        f"{text}\n{waiting}" if waiting else text,
        detail_buttons(texts, shared.rules, registration, offset, shared.today()),
    )


async def waiting_line(context: Context, texts: Texts, registration: RegistrationView) -> str:
    """ "Waiting for the staff (won deal): answer by …", for each item still open."""
    shared = resources(context)
    async with shared.sessions() as session:
        waiting = await waiting_on_staff(session=session, registration_id=registration.id)
    return "\n".join(
        texts(
            "detail_waiting",
            what=texts.plain(f"item_{kind}"),
            due=texts.moment(due, shared.rules.timezone),
        )
        for kind, due in waiting
    )


async def record_outcome(
    update: Update,
    context: Context,
    account: Account,
    texts: Texts,
    button: ReportWon | ReportLost,
) -> None:
    """Mark the registration won or lost, as the partner reports."""
    outcome = Status.WON if isinstance(button, ReportWon) else Status.LOST
    try:
        registration = await report(context, account, button.reference, outcome)
    except RegistrationNotFound:
        await answer_query(update, texts.plain("registration_not_found"), alert=True)
        return
    except TransitionNotAllowed as refused:
        current = await own_registration(update, context, account, texts, button.reference)
        if current is None:
            return
        await answer_query(
            update,
            texts.plain(
                "transition_not_allowed",
                reference=current.reference,
                status=texts.status(refused.current),
            ),
            alert=True,
        )
        await show_detail(update, context, texts, current, button.offset)
        return
    key = "marked_won" if outcome == Status.WON else "marked_lost"
    await answer_query(update, texts.plain(key, reference=registration.reference), alert=True)
    await show_detail(update, context, texts, registration, button.offset)
    if outcome == Status.WON:
        text, markup = await ask_for_proof(update, context, texts, registration.reference)
        await reply(update, text, markup)


async def ask_lost(
    update: Update, context: Context, account: Account, texts: Texts, button: AskLost
) -> None:
    """Ask before marking lost: it hands the customer to other partners for good."""
    registration = await own_registration(update, context, account, texts, button.reference)
    if registration is None:
        return
    await answer_query(update)
    markup = keyboard(
        [
            (texts.plain("button_lost_yes"), ReportLost(button.reference, button.offset)),
            (texts.plain("button_lost_no"), OpenRegistration(button.reference, button.offset)),
        ]
    )
    await show_in_place(
        update,
        texts(
            "confirm_lost", reference=registration.reference, customer=registration.customer_name
        ),
        markup,
    )


# --- /settings ---------------------------------------------------------------


def settings_view(texts: Texts, account: Account) -> tuple[str, InlineKeyboardMarkup]:
    other_language = next(lang for lang in LANGUAGES if lang != texts.language)
    reminders = texts("reminders_on") if account.reminders_enabled else texts("reminders_off")
    toggle = "off" if account.reminders_enabled else "on"
    markup = keyboard(
        [(texts.plain("button_language"), SetLanguage(other_language))],
        [
            (
                texts.plain(f"button_reminders_{toggle}"),
                SetReminders(not account.reminders_enabled),
            )
        ],
    )
    return texts("settings", language=texts("language_name"), reminders=reminders), markup


@linked_only(default=None)
async def show_settings(update: Update, context: Context, account: Account, texts: Texts) -> None:
    """Show language and reminders, with buttons to change them."""
    if await repeat_if_registering(update, context, texts):
        return
    text, markup = settings_view(texts, account)
    await reply(update, text, markup)


async def change_setting(
    update: Update, context: Context, account: Account, button: SetLanguage | SetReminders
) -> None:
    """Switch the language or the reminders, and show the settings in the new state."""
    async with resources(context).sessions() as session:
        account = await update_preferences(
            session=session,
            telegram_user_id=account.telegram_user_id,
            language=button.language if isinstance(button, SetLanguage) else None,
            reminders_enabled=button.on if isinstance(button, SetReminders) else None,
        )
    texts = texts_for(update, account)
    await answer_query(update, texts.plain("settings_saved"))
    text, markup = settings_view(texts, account)
    await show_in_place(update, text, markup)


# --- the buttons -------------------------------------------------------------------


async def press_partner_button(
    update: Update, context: Context, account: Account, texts: Texts, button: PartnerButton
) -> None:
    """Act on a /status, /settings or invite button."""
    if isinstance(button, ShowPage):
        await answer_query(update)
        page = await load_page(context, account, button.offset)
        rules = resources(context).rules
        await show_in_place(
            update, status_text(texts, rules, account, page), status_buttons(texts, page)
        )
    elif isinstance(button, OpenRegistration):
        registration = await own_registration(update, context, account, texts, button.reference)
        if registration is not None:
            await answer_query(update)
            await show_detail(update, context, texts, registration, button.offset)
    elif isinstance(button, ReportWon | ReportLost):
        await record_outcome(update, context, account, texts, button)
    elif isinstance(button, AskLost):
        await ask_lost(update, context, account, texts, button)
    elif isinstance(button, SetLanguage | SetReminders):
        await change_setting(update, context, account, button)
    elif isinstance(button, MoveToPartner):
        await answer_query(update)
        await remove_buttons(update)
        await link(update, context, button.token)
    else:
        await answer_query(update)
        await remove_buttons(update)
        await reply(update, texts("invite_stay", company=account.company))
