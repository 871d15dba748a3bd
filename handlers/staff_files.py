"""Staff's files in chat (PRODUCT.md §7): a partner list or a sales history sent as a
document is previewed and imported on Import; /export sends the registrations and
/payouts the incentives to pay, with Mark these paid. Staff only.

What waits for a button (the file to import, the payouts' references) is kept in the
conversations table, so a restart or another instance finds it, and taking it is what
decides: a second press, or two at once, finds nothing left and changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal
from pathlib import Path
from typing import Any

from telegram import Bot, InputFile, Message, Update
from telegram.error import TelegramError

from bot.domain.drafts import new_draft_id
from bot.domain.files import EXPORT_COLUMNS, PAYOUT_COLUMNS
from bot.i18n import Texts
from bot.jobs.imports import (
    PROGRESS_EVERY,
    Progress,
    StaffFile,
    columns_of,
    rejected_rows,
    run_import,
    saved,
    scratch,
    shown_every,
)
from bot.reports import describe_rejection, history_text
from bot.resources import Resources
from bot.services.imports import ImportReport, file_kind
from bot.services.payouts import approved_unpaid, mark_references_paid
from bot.services.privacy import record_access, staff_who
from bot.services.registrations import export_registrations
from bot.sheets import SheetError, table_bytes
from bot.storage.conversations import BROADCAST, IMPORT, PAYOUTS, REJECTION
from bot.telegram.sending import best_effort
from handlers.callbacks import ImportFile, MarkPaid, keyboard
from handlers.common import (
    Context,
    answer_query,
    reply,
    reply_in_parts,
    resources,
    show_in_place,
    user_id_of,
)

log = logging.getLogger(__name__)

MAX_BYTES = 20 * 1024 * 1024  # what the Bot API hands a bot
SHEET_SUFFIXES = (".csv", ".xlsx")
FIRST_REASONS = 5
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def is_sheet(message: Message | None) -> bool:
    document = message.document if message is not None else None
    if document is None:
        return False
    name = (document.file_name or "").lower()
    return name.endswith(SHEET_SUFFIXES) or document.mime_type in ("text/csv", XLSX)


# --- a file in -------------------------------------------------------------------------


async def receive_sheet(update: Update, context: Context, texts: Texts) -> None:
    """Preview a staff member's .csv / .xlsx: what it is, what importing it would do."""
    shared = resources(context)
    message = update.effective_message
    assert message is not None
    document = message.document
    assert document is not None
    user = user_id_of(update)
    if await _writing_something(shared, user):
        await reply(update, texts("files_busy"))
        return
    if (document.file_size or 0) > MAX_BYTES:
        await reply(update, texts("files_too_big"))
        return
    name = document.file_name or "file.csv"
    with scratch() as folder:
        try:
            path = saved(Path(folder), name, await _download(context.bot, document.file_id))
            # Reading a big workbook's header takes seconds: beside the loop.
            file = StaffFile(path, await asyncio.to_thread(file_kind, path))
            report = await run_import(
                shared.settings, shared.rules, file, now=shared.now(), dry_run=True
            )
        except SheetError as refused:
            await reply(update, texts("files_unreadable", reason=_said(refused, folder)))
            return
    token = new_draft_id()
    await shared.conversations.save(
        user,
        IMPORT,
        {"token": token, "file_id": document.file_id, "name": name, "kind": file.kind},
        shared.now(),
    )
    await reply(
        update,
        preview_text(texts, shared, name, file.kind, report),
        keyboard(
            [
                (texts.plain("button_import"), ImportFile(token, go=True)),
                (texts.plain("button_cancel"), ImportFile(token, go=False)),
            ]
        ),
    )


async def _writing_something(shared: Resources, user: int) -> bool:
    """A broadcast being written or a reason asked for: a file now is not its answer."""
    for kind in (BROADCAST, REJECTION):
        if await shared.conversations.load(user, kind) is not None:
            return True
    return False


async def _download(bot: Bot, file_id: str) -> bytes:
    try:
        file = await bot.get_file(file_id)
        return bytes(await file.download_as_bytearray())
    except TelegramError as exc:
        raise SheetError(f"the file could not be fetched from Telegram ({exc.message})") from None


def _said(error: SheetError, folder: str) -> str:
    """The sheet's sentence with the file's name, never the server's scratch folder."""
    return str(error).replace(f"{folder}/", "")


def preview_text(
    texts: Texts, shared: Resources, name: str, kind: str, report: ImportReport
) -> str:
    lines = [
        texts("import_preview", file=name, what=texts(f"import_what_{kind}")),
        counts_text(texts, report),
    ]
    lines += reasons(texts, shared, report)
    return "\n".join(lines)


def counts_text(texts: Texts, report: ImportReport) -> str:
    return texts(
        "import_counts",
        read=report.read,
        added=report.added,
        updated=report.updated,
        unchanged=report.unchanged,
        rejected=len(report.rejected),
    )


def reasons(texts: Texts, shared: Resources, report: ImportReport) -> list[str]:
    """The first rejected rows and why, as the CLI words them."""
    if not report.rejected:
        return []
    country = shared.rules.country
    return [texts("import_first_reasons")] + [
        texts(
            "import_reason_line", line=r.line, reason=describe_rejection(texts, r, country=country)
        )
        for r in report.rejected[:FIRST_REASONS]
    ]


# --- Import / Cancel ---------------------------------------------------------------------


async def press_import(update: Update, context: Context, texts: Texts, button: ImportFile) -> None:
    shared = resources(context)
    user = user_id_of(update)
    pending = await shared.conversations.load(user, IMPORT)
    if pending is None or pending.get("token") != button.token:
        await answer_query(update, texts.plain("import_stale"), alert=True)
        return
    # Taking it decides: of two presses (or instances), one imports.
    if await shared.conversations.take(user, IMPORT) is None:
        await answer_query(update, texts.plain("import_stale"), alert=True)
        return
    await answer_query(update)
    if not button.go:
        await show_in_place(update, texts("import_cancelled", file=pending["name"]), None)
        return
    query = update.callback_query
    assert query is not None
    assert query.message is not None
    await show_in_place(update, texts("import_running", file=pending["name"], read=0), None)
    shared.run_in_background(
        import_and_report(
            context.bot, shared, texts, query.message.chat.id, query.message.message_id, pending
        ),
        "importing a staff member's file",
    )


async def import_and_report(
    bot: Bot,
    shared: Resources,
    texts: Texts,
    chat_id: int,
    message_id: int,
    pending: dict[str, Any],
) -> None:
    """The import itself, beside the bot: the preview's message says how far it got (at
    most every 2 s), then the summary; the rejected rows follow as a file."""
    name = pending["name"]

    async def show(text: str) -> None:
        await best_effort(
            "showing an import's progress",
            bot.edit_message_text(text, chat_id=chat_id, message_id=message_id, parse_mode="HTML"),
        )

    progress = Progress()
    with scratch() as folder:
        try:
            path = saved(Path(folder), name, await _download(bot, pending["file_id"]))
            file = StaffFile(path, pending["kind"])
            ticker = asyncio.create_task(
                shown_every(
                    PROGRESS_EVERY,
                    progress,
                    lambda read: show(texts("import_running", file=name, read=read)),
                )
            )
            try:
                report = await run_import(
                    shared.settings,
                    shared.rules,
                    file,
                    now=shared.now(),
                    dry_run=False,
                    progress=progress,
                )
            finally:
                ticker.cancel()
            rejected = (
                await asyncio.to_thread(rejected_rows, file, report) if report.rejected else []
            )
        except SheetError as refused:
            await show(texts("import_failed", file=name, reason=_said(refused, folder)))
            return
        except Exception:
            log.exception("an import from chat failed")
            await show(
                texts("import_failed", file=name, reason=texts.plain("import_failed_unknown"))
            )
            return
    await show("\n".join([texts("import_done", file=name), counts_text(texts, report)]))
    if rejected:
        for row, rejection in zip(rejected, report.rejected, strict=True):
            row["reason"] = describe_rejection(texts, rejection, country=shared.rules.country)
        columns = ["line", *columns_of(file.kind), "reason"]
        document = table_bytes(columns, rejected, style="csv")
        await best_effort(
            "sending the rejected rows",
            bot.send_document(
                chat_id,
                InputFile(document, filename=f"rejected-{Path(name).stem}.csv"),
                caption=texts.plain("import_rejected_file"),
            ),
        )


# --- /export and /payouts ------------------------------------------------------------------


async def send_export(update: Update, context: Context, texts: Texts) -> None:
    """/export: every registration with its history, as .xlsx."""
    shared = resources(context)
    async with shared.sessions() as session:
        rows = [
            {**row, "history": history_text(texts, row["history"])}  # type: ignore[arg-type]
            async for row in export_registrations(session=session)
        ]
    await _record(shared, update, f"export registrations ({len(rows)} rows, chat)")
    if not rows:
        await reply(update, texts("export_empty"))
        return
    day = shared.today().isoformat()
    await _send_table(
        update,
        EXPORT_COLUMNS,
        rows,
        f"registrations-{day}.xlsx",
        texts("export_caption", count=len(rows)),
    )


async def send_payouts(update: Update, context: Context, texts: Texts) -> None:
    """/payouts: the approved, unpaid incentives as .xlsx, totals per partner, and
    Mark these paid for exactly the file's rows."""
    shared = resources(context)
    async with shared.sessions() as session:
        rows = await approved_unpaid(session=session, rules=shared.rules)
    await _record(shared, update, f"export payouts ({len(rows)} rows, chat)")
    if not rows:
        await reply(update, texts("payouts_none"))
        return
    totals: dict[str, Decimal] = {}
    for row in rows:
        amount = row["incentive_amount"]
        assert isinstance(amount, Decimal)
        totals[str(row["partner_code"])] = totals.get(str(row["partner_code"]), Decimal(0)) + amount
    token = new_draft_id()
    references = [str(row["reference"]) for row in rows]
    await shared.conversations.save(
        user_id_of(update),
        PAYOUTS,
        {"token": token, "references": references, "total": str(sum(totals.values()))},
        shared.now(),
    )
    # Totals per partner in messages of their own: a caption holds 1,024 characters, and
    # a programme pays hundreds of partners in one run.
    await reply_in_parts(
        update,
        [texts("payouts_totals_head")]
        + [
            texts("payouts_total_line", code=code, amount=texts.money(total))
            for code, total in totals.items()
        ],
    )
    caption = texts(
        "payouts_caption", count=len(rows), total=texts.money(sum(totals.values(), Decimal(0)))
    )
    day = shared.today().isoformat()
    await _send_table(
        update,
        PAYOUT_COLUMNS,
        rows,
        f"payouts-{day}.xlsx",
        caption,
        keyboard([(texts.plain("button_mark_paid"), MarkPaid(token))]),
    )


async def _record(shared: Resources, update: Update, what: str) -> None:
    """Staff's look-ups of partners' data are recorded (PRODUCT.md §8)."""
    async with shared.sessions() as session:
        await record_access(
            session=session, who=staff_who(user_id_of(update)), what=what, now=shared.now()
        )


async def _send_table(
    update: Update,
    columns: Any,
    rows: list[dict[str, object]],
    name: str,
    caption: str,
    markup: Any = None,
) -> None:
    chat = update.effective_chat
    assert chat is not None
    # openpyxl writes some thousand rows a second: beside the loop, or nobody is answered.
    document = await asyncio.to_thread(table_bytes, columns, rows, style="xlsx")
    await chat.send_document(
        InputFile(document, filename=name), caption=caption, parse_mode="HTML", reply_markup=markup
    )


async def press_mark_paid(update: Update, context: Context, texts: Texts, button: MarkPaid) -> None:
    """Mark these paid: asked once more, then exactly the file's rows; once."""
    shared = resources(context)
    user = user_id_of(update)
    pending = await shared.conversations.load(user, PAYOUTS)
    if pending is None or pending.get("token") != button.token:
        await answer_query(update, texts.plain("payouts_stale"), alert=True)
        return
    query = update.callback_query
    assert query is not None
    if button.cancel:
        await answer_query(update, texts.plain("payouts_kept"))
        await best_effort(
            "taking the buttons off",
            query.edit_message_reply_markup(
                reply_markup=keyboard([(texts.plain("button_mark_paid"), MarkPaid(button.token))])
            ),
        )
        return
    if not button.confirmed:
        await answer_query(update)
        total = texts.money(Decimal(pending["total"]))
        await reply(
            update,
            texts("payouts_confirm", count=len(pending["references"]), total=total),
            keyboard(
                [
                    (texts.plain("button_yes_paid"), MarkPaid(button.token, confirmed=True)),
                    (texts.plain("button_cancel"), MarkPaid(button.token, cancel=True)),
                ]
            ),
        )
        return
    if await shared.conversations.take(user, PAYOUTS) is None:
        await answer_query(update, texts.plain("payouts_stale"), alert=True)
        return
    await answer_query(update)
    listed = list(enumerate(pending["references"], start=2))  # the file's rows, under its header
    async with shared.sessions() as session:
        report = await mark_references_paid(
            session=session, listed=listed, now=shared.now(), paid_on=shared.today()
        )
    await show_in_place(
        update,
        texts(
            "payouts_marked",
            paid=len(report.paid),
            already=len(report.already),
            refused=len(report.refused),
        ),
        None,
    )
