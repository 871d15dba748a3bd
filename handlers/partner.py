"""/start, /help, /status, /settings and the answers to everything else."""

from __future__ import annotations

import logging

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest

from bot.errors import InviteInvalid, RegistrationNotFound, TransitionNotAllowed
from bot.i18n import LANGUAGES, Texts
from bot.lifecycle import Status
from bot.services.accounts import redeem_invite, update_preferences
from bot.services.registrations import (
    PAGE_SIZE,
    get_registration,
    list_registrations,
    report_outcome,
)
from bot.services.views import Account, RegistrationView, StatusPage
from handlers.common import (
    Context,
    account_of,
    deps,
    linked_only,
    pressed,
    remove_buttons,
    reply,
    texts_for,
)
from handlers.render import render_registration

log = logging.getLogger(__name__)


async def start(update: Update, context: Context) -> None:
    """Link the account through an invite payload, or say how to get one."""
    if context.args:
        await link_with_invite(update, context, context.args[0])
        return
    account = await account_of(update, context)
    texts = texts_for(update, account)
    if account is None:
        await reply(update, texts("start_no_invite", programme=deps(context).rules.name))
    else:
        await reply(update, texts("start_already_linked", company=account.company))


async def link_with_invite(update: Update, context: Context, token: str) -> None:
    user = update.effective_user
    assert user is not None
    resources = deps(context)
    try:
        async with resources.sessions() as session:
            account = await redeem_invite(session=session, token=token, telegram_user_id=user.id)
    except InviteInvalid:
        texts = texts_for(update, await account_of(update, context))
        await reply(update, texts("start_invite_invalid"))
        return
    log.info("salesperson %s linked to partner %s", account.salesperson_id, account.partner_code)
    texts = texts_for(update, account)
    await reply(
        update, texts("start_welcome", company=account.company, programme=resources.rules.name)
    )


@linked_only(default=None)
async def show_help(update: Update, context: Context, account: Account, texts: Texts) -> None:
    """Explain the programme and list the commands."""
    rules = deps(context).rules
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


@linked_only(default=None)
async def nothing_to_cancel(
    update: Update, context: Context, account: Account, texts: Texts
) -> None:
    """Answer /cancel outside a conversation."""
    await reply(update, texts("nothing_to_cancel"))


@linked_only(default=None)
async def answer_unknown(update: Update, context: Context, account: Account, texts: Texts) -> None:
    """Point a linked user who typed something unexpected to the commands."""
    await reply(update, texts("unknown_message"))


async def answer_stale_button(update: Update, context: Context) -> None:
    """Answer a button from a message whose conversation has ended."""
    query = update.callback_query
    assert query is not None
    texts = texts_for(update, await account_of(update, context))
    await query.answer(texts.plain("stale_button"), show_alert=False)
    await remove_buttons(update)


# --- /status ---------------------------------------------------------------


def status_text(texts: Texts, account: Account, page: StatusPage) -> str:
    if page.total_count == 0:
        return texts("status_empty")
    totals = texts(
        "status_totals",
        expected=texts.money(page.totals.expected),
        approved=texts.money(page.totals.approved),
        paid=texts.money(page.totals.paid),
    )
    header = texts.plural("status_header", page.total_count, company=account.company)
    return f"{header}\n\n{totals}\n\n{texts('status_hint')}"


def status_buttons(texts: Texts, page: StatusPage) -> InlineKeyboardMarkup | None:
    rows = [
        [
            InlineKeyboardButton(
                texts.plain(
                    "status_button",
                    reference=r.reference,
                    customer=r.customer_name[:24],
                    status=texts.status(r.status),
                ),
                callback_data=f"st:open:{r.id}:{page.offset}",
            )
        ]
        for r in page.registrations
    ]
    paging = []
    if page.offset > 0:
        paging.append(
            InlineKeyboardButton(
                texts.plain("button_newer"),
                callback_data=f"st:page:{max(page.offset - PAGE_SIZE, 0)}",
            )
        )
    if page.offset + PAGE_SIZE < page.total_count:
        paging.append(
            InlineKeyboardButton(
                texts.plain("button_more"), callback_data=f"st:page:{page.offset + PAGE_SIZE}"
            )
        )
    if paging:
        rows.append(paging)
    return InlineKeyboardMarkup(rows) if rows else None


async def load_page(context: Context, account: Account, offset: int) -> StatusPage:
    resources = deps(context)
    async with resources.sessions() as session:
        return await list_registrations(
            session=session, rules=resources.rules, account=account, offset=offset
        )


@linked_only(default=None)
async def show_status(update: Update, context: Context, account: Account, texts: Texts) -> None:
    """List the partner's registrations with totals; each opens its detail."""
    page = await load_page(context, account, 0)
    await reply(update, status_text(texts, account, page), reply_markup=status_buttons(texts, page))


@linked_only(default=None)
async def turn_status_page(
    update: Update, context: Context, account: Account, texts: Texts
) -> None:
    """Show older or newer registrations in the same message."""
    query, (_, _, offset) = pressed(update)
    await query.answer()
    page = await load_page(context, account, int(offset))
    await edit(update, status_text(texts, account, page), status_buttons(texts, page))


async def own_registration(
    update: Update, context: Context, account: Account, texts: Texts, registration_id: int
) -> RegistrationView | None:
    """The partner's registration behind a button; anyone else's is "not among yours"."""
    try:
        async with deps(context).sessions() as session:
            return await get_registration(
                session=session, account=account, registration_id=registration_id
            )
    except RegistrationNotFound:
        query, _ = pressed(update)
        await query.answer(texts.plain("registration_not_found"), show_alert=True)
        return None


def detail_buttons(
    texts: Texts, registration: RegistrationView, offset: int, open_for_outcome: bool
) -> InlineKeyboardMarkup:
    rows = []
    if open_for_outcome:
        rows.append(
            [
                InlineKeyboardButton(
                    texts.plain("button_won"), callback_data=f"st:won:{registration.id}:{offset}"
                ),
                InlineKeyboardButton(
                    texts.plain("button_lost"), callback_data=f"st:lost:{registration.id}:{offset}"
                ),
            ]
        )
    rows.append(
        [InlineKeyboardButton(texts.plain("button_back"), callback_data=f"st:page:{offset}")]
    )
    return InlineKeyboardMarkup(rows)


@linked_only(default=None)
async def open_registration(
    update: Update, context: Context, account: Account, texts: Texts
) -> None:
    """Show one registration, with Won / Lost while it is open."""
    query, (_, _, registration_id, offset) = pressed(update)
    registration = await own_registration(update, context, account, texts, int(registration_id))
    if registration is None:
        return
    await query.answer()
    await show_detail(update, context, texts, registration, int(offset))


async def show_detail(
    update: Update, context: Context, texts: Texts, registration: RegistrationView, offset: int
) -> None:
    await edit(
        update,
        render_registration(texts, deps(context).rules, registration),
        # Won / Lost while open; one whose protection lapsed since is refused when pressed.
        detail_buttons(texts, registration, offset, registration.status == Status.QUALIFIED),
    )


@linked_only(default=None)
async def record_outcome(update: Update, context: Context, account: Account, texts: Texts) -> None:
    """Mark the registration won or lost, as the partner reports."""
    query, (_, action, registration_id, offset) = pressed(update)
    outcome = Status.WON if action == "won" else Status.LOST  # "lostok": Lost, confirmed
    resources = deps(context)
    try:
        async with resources.sessions() as session:
            registration = await report_outcome(
                session=session,
                rules=resources.rules,
                account=account,
                registration_id=int(registration_id),
                outcome=outcome,
            )
    except RegistrationNotFound:
        await query.answer(texts.plain("registration_not_found"), show_alert=True)
        return
    except TransitionNotAllowed as refused:
        async with resources.sessions() as session:
            current = await get_registration(
                session=session, account=account, registration_id=int(registration_id)
            )
        await query.answer(
            texts.plain(
                "transition_not_allowed",
                reference=current.reference,
                status=texts.status(refused.current),
            ),
            show_alert=True,
        )
        await show_detail(update, context, texts, current, int(offset))
        return
    key = "marked_won" if outcome == Status.WON else "marked_lost"
    await query.answer(texts.plain(key, reference=registration.reference), show_alert=True)
    await show_detail(update, context, texts, registration, int(offset))


@linked_only(default=None)
async def confirm_lost(update: Update, context: Context, account: Account, texts: Texts) -> None:
    """Ask before marking lost: it hands the customer to other partners for good."""
    query, (_, _, registration_id, offset) = pressed(update)
    registration = await own_registration(update, context, account, texts, int(registration_id))
    if registration is None:
        return
    await query.answer()
    markup = InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(
                    texts.plain("button_lost_yes"),
                    callback_data=f"st:lostok:{registration_id}:{offset}",
                ),
                InlineKeyboardButton(
                    texts.plain("button_lost_no"),
                    callback_data=f"st:open:{registration_id}:{offset}",
                ),
            ]
        ]
    )
    await edit(
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
    markup = InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(
                    texts.plain("button_language"), callback_data=f"set:lang:{other_language}"
                )
            ],
            [
                InlineKeyboardButton(
                    texts.plain(f"button_reminders_{toggle}"), callback_data=f"set:rem:{toggle}"
                )
            ],
        ]
    )
    return texts("settings", language=texts("language_name"), reminders=reminders), markup


@linked_only(default=None)
async def show_settings(update: Update, context: Context, account: Account, texts: Texts) -> None:
    """Show language and reminders, with buttons to change them."""
    text, markup = settings_view(texts, account)
    await reply(update, text, reply_markup=markup)


@linked_only(default=None)
async def change_setting(update: Update, context: Context, account: Account, texts: Texts) -> None:
    """Switch the language or the reminders, and show the settings in the new state."""
    query, (_, what, value) = pressed(update)
    async with deps(context).sessions() as session:
        account = await update_preferences(
            session=session,
            telegram_user_id=account.telegram_user_id,
            language=value if what == "lang" and value in LANGUAGES else None,
            reminders_enabled=(value == "on") if what == "rem" else None,
        )
    texts = texts_for(update, account)
    await query.answer(texts.plain("settings_saved"))
    text, markup = settings_view(texts, account)
    await edit(update, text, markup)


# --- helpers -------------------------------------------------------------------


async def edit(update: Update, text: str, markup: InlineKeyboardMarkup | None) -> None:
    """Replace the message behind the pressed button; an unchanged view is not an error."""
    query = update.callback_query
    assert query is not None
    try:
        await query.edit_message_text(text, parse_mode="HTML", reply_markup=markup)
    except BadRequest as exc:
        if "not modified" not in str(exc).lower():
            raise
