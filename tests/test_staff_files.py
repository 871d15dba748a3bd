"""Staff's files in chat (PRODUCT.md §7), through the fake Bot API: a partner list and a
sales history previewed and imported with the same results as the shell, /export,
/payouts with Mark these paid, and the files that get one sentence."""

from __future__ import annotations

import asyncio
import csv
import io
import itertools
import time

import pytest
from openpyxl import Workbook, load_workbook
from sqlalchemy import select

from bot.app.cli import main
from bot.domain.lifecycle import Status
from bot.services.staff import decide
from handlers import staff_files
from models import Partner, Purchase, Registration
from tests.conftest import BACKENDS, database_url_for, reset_postgresql
from tests.factories import VATS, italian_vat, link_salesperson, register, report
from tests.harness import Harness, buttons, running_bot
from tests.test_conversations import load_programme

STAFF = 900
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@pytest.fixture(params=BACKENDS)
async def bot(request, tmp_path, rules):
    url = database_url_for(request.param, tmp_path)
    if request.param == "postgresql":
        await reset_postgresql(url)
    async with running_bot(tmp_path, database_url=url, pai_admin_ids=frozenset({STAFF})) as harness:
        await load_programme(harness, rules, tmp_path)
        yield harness


def partners_workbook() -> bytes:
    """What staff have: a title above the header, a new partner, a changed one, a bad row."""
    book = Workbook()
    sheet = book.active
    sheet.append(["Partner list, December"])
    sheet.append([])
    sheet.append(["Code", "Company", "Level"])
    sheet.append(["GAMMA", "Gamma Sistemi", "gold"])
    sheet.append(["BETA", "Beta Srl", "gold"])  # was certified
    sheet.append(["ACME", "Acme Informatica & Figli", "gold"])  # as it is
    sheet.append(["DELTA", "Delta", "platinum"])  # no such level
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def purchases_csv(rows: int = 3) -> bytes:
    lines = ["vat;customer_name;purchase_date"]
    lines += [f"{italian_vat(7000 + n)};Cliente {n};2025-03-{1 + n % 28:02d}" for n in range(rows)]
    lines.append("IT00743110158;Typo Srl;2025-01-01")  # a wrong check digit
    return ("\n".join(lines) + "\n").encode()


async def send_file(bot: Harness, user: int, data: bytes, name: str, mime: str):
    chat = bot.chat(user, "en")
    return chat, await chat.send(
        **bot.api.user_file(data, kind="document", file_name=name, mime_type=mime)
    )


async def rows_of(bot: Harness, table) -> list:  # type: ignore[no-untyped-def]
    async with bot.sessions() as session:
        return list((await session.execute(select(table))).scalars())


# --- a file in -------------------------------------------------------------------------


async def test_a_partner_workbook_is_previewed_then_imported_as_the_shell_would(
    bot, tmp_path, monkeypatch, capsys
):
    chat, [preview] = await send_file(bot, STAFF, partners_workbook(), "partners.xlsx", XLSX)
    text = preview["text"]
    assert "partners.xlsx is a partner list." in text
    assert "Rows read: 4 · new: 1 · updated: 1 · unchanged: 1 · rejected: 1" in text
    assert "line 7: level 'platinum' is not one of" in text
    assert [label for label, _ in buttons(preview)] == ["⬆️ Import", "✖ Cancel"]
    assert {p.code for p in await rows_of(bot, Partner)} == {"ACME", "BETA"}  # a preview only
    await chat.press(preview, "Import")
    assert "✅ Imported partners.xlsx." in preview["text"]
    assert "new: 1 · updated: 1 · unchanged: 1 · rejected: 1" in preview["text"]
    [rejected] = [m for m in bot.api.sent_to(STAFF) if "rejected rows" in m.get("caption", "")]
    name, content = bot.api.files[(STAFF, rejected["message_id"])]
    assert name == "rejected-partners.csv"
    [row] = list(csv.DictReader(io.StringIO(content.decode("utf-8-sig"))))
    assert (row["line"], row["code"], row["level"]) == ("7", "DELTA", "platinum")
    assert "is not one of" in row["reason"]
    in_chat = {(p.code, p.company, p.level) for p in await rows_of(bot, Partner)}
    # The shell, on the same file, into a database of its own: the same partners.
    (tmp_path / "shell").mkdir()
    file = tmp_path / "shell" / "partners.xlsx"
    file.write_bytes(partners_workbook())
    first = tmp_path / "shell" / "first.csv"
    first.write_text(
        "code,company,level\nACME,Acme Informatica & Figli,gold\nBETA,Beta Srl,certified\n"
    )
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'shell' / 'pai.db'}")
    monkeypatch.setattr("bot.logs.configure_logging", lambda *_: None)
    assert await asyncio.to_thread(main, ["import-partners", str(first)]) == 0
    assert await asyncio.to_thread(main, ["import-partners", str(file)]) == 1  # a row refused
    out = capsys.readouterr().out
    assert "4 rows read, 1 partner added, 1 updated, 1 unchanged, 1 rejected" in out
    import sqlite3

    with sqlite3.connect(tmp_path / "shell" / "pai.db") as db:
        in_shell = set(db.execute("SELECT code, company, level FROM partner").fetchall())
    assert in_chat == in_shell


async def test_a_sales_history_is_recognised_by_its_header_and_cancel_imports_nothing(bot):
    chat, [preview] = await send_file(bot, STAFF, purchases_csv(), "vendite.csv", "text/csv")
    assert "vendite.csv is a sales history." in preview["text"]
    assert "Rows read: 4 · new: 3 · updated: 0 · unchanged: 0 · rejected: 1" in preview["text"]
    before = len(await rows_of(bot, Purchase))
    await chat.press(preview, "Cancel")
    assert "Nothing imported from vendite.csv." in preview["text"]
    assert len(await rows_of(bot, Purchase)) == before
    # The Import button of that preview is gone for good: pressed anyway, nothing.
    answered = len(bot.api.answers())
    await chat.press_data(preview, staff_files.ImportFile("x" * 8, go=True).data)
    assert "already" in bot.api.answers()[answered]["text"]
    assert len(await rows_of(bot, Purchase)) == before


async def test_import_pressed_twice_imports_once(bot):
    chat, [preview] = await send_file(bot, STAFF, purchases_csv(), "h.csv", "text/csv")
    data = next(d for label, d in buttons(preview) if "Import" in label)
    bot.api.user_presses(chat.user, preview, data)
    bot.api.user_presses(chat.user, preview, data)
    await bot.deliver()
    assert len([m for m in bot.api.sent_to(STAFF) if "Imported h.csv" in m["text"]]) == 1
    assert len(await rows_of(bot, Purchase)) == 2 + 3


async def test_the_progress_message_is_edited_at_most_every_interval(bot, monkeypatch):
    monkeypatch.setattr(staff_files, "PROGRESS_EVERY", 0.2)
    edits: list[float] = []

    def note(method, params):  # type: ignore[no-untyped-def]
        if method == "editMessageText" and "Importing" in str(params.get("text")):
            edits.append(time.monotonic())

    chat, [preview] = await send_file(bot, STAFF, purchases_csv(30_000), "big.csv", "text/csv")
    bot.api.before_call = note
    await chat.press(preview, "Import")
    assert "✅ Imported big.csv." in preview["text"]
    assert edits, "the progress was never shown"
    assert all(b - a >= 0.18 for a, b in itertools.pairwise(edits))
    assert len(await rows_of(bot, Purchase)) == 2 + 30_000


@pytest.mark.parametrize(
    ("data", "name", "mime", "said"),
    [
        (b"code,company\nX,Y\n", "wrong.csv", "text/csv", "the header must be a sales history's"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1old", "old.xlsx", XLSX, "old Excel .xls format"),
        (b"PK\x03\x04broken", "broken.xlsx", XLSX, "neither CSV nor an Excel"),
    ],
)
async def test_a_file_that_is_not_a_known_table_is_one_sentence(bot, data, name, mime, said):
    _chat, [answer] = await send_file(bot, STAFF, data, name, mime)
    assert answer["text"].startswith("Nothing imported: ")
    assert said in answer["text"]
    assert "/tmp" not in answer["text"] and "pai-import" not in answer["text"]
    assert buttons(answer) == []


async def test_files_from_others_too_big_or_mid_conversation_get_one_sentence(bot, rules):
    # Not staff: a partner's salesperson's CSV is not imported.
    await link_salesperson(bot.sessions, "ACME", 11)
    _chat, [answer] = await send_file(bot, 11, purchases_csv(), "p.csv", "text/csv")
    assert "Import" not in str(buttons(answer))
    # Too big for the Bot API: refused before any download.
    staff = bot.chat(STAFF, "en")
    [big] = await staff.send(
        **bot.api.user_file(
            b"x", kind="document", file_name="h.csv", mime_type="text/csv", size=21 * 1024 * 1024
        )
    )
    assert "larger than 20 MB" in big["text"]
    # While a broadcast is being written, a file is not its text.
    await staff.send("/broadcast")
    [busy] = await staff.send(
        **bot.api.user_file(
            purchases_csv(), kind="document", file_name="h.csv", mime_type="text/csv"
        )
    )
    assert "Finish what you are writing first" in busy["text"]
    assert len(await rows_of(bot, Purchase)) == 2


# --- /export and /payouts ----------------------------------------------------------------


async def approved(bot: Harness, rules, count: int) -> list[str]:
    account = await link_salesperson(bot.sessions, "ACME", 11, now=bot.clock.now())
    references = []
    for n in range(count):
        made = await register(
            bot.sessions, rules, account, italian_vat(9000 + n), now=bot.clock.now()
        )
        await report(bot.sessions, rules, account, made, Status.WON, now=bot.clock.now())
        async with bot.sessions() as session:
            await decide(
                session=session,
                reference=made.reference,
                approve=True,
                staff_id=STAFF,
                now=bot.clock.now(),
            )
        references.append(made.reference)
    await bot.deliver()  # staff hear of each won deal and its decision
    return references


async def test_export_sends_every_registration_as_an_excel_file(bot, rules):
    await approved(bot, rules, 2)
    [sent] = await bot.chat(STAFF, "en").send("/export")
    name, content = bot.api.files[(STAFF, sent["message_id"])]
    assert name.startswith("registrations-") and name.endswith(".xlsx")
    sheet = load_workbook(io.BytesIO(content)).active
    header = [c.value for c in sheet[1]]
    assert header[0] == "reference" and "history" in header
    assert sheet.max_row == 3
    history = sheet.cell(row=2, column=header.index("history") + 1).value
    assert "qualified" in history and "approved" in history
    assert "2 registrations" in sent["caption"]


async def test_payouts_mark_exactly_the_rows_of_the_file_and_only_once(bot, rules):
    first = await approved(bot, rules, 2)
    staff = bot.chat(STAFF, "en")
    totals, sent = await staff.send("/payouts")
    assert "To pay, by partner" in totals["text"] and "ACME: €" in totals["text"]
    assert "2 approved incentives to pay" in sent["caption"] and "€" in sent["caption"]
    _name, content = bot.api.files[(STAFF, sent["message_id"])]
    sheet = load_workbook(io.BytesIO(content)).active
    assert sorted(row[2] for row in sheet.iter_rows(min_row=2, values_only=True)) == sorted(first)
    # Approved after the file was sent: not in it, so not marked by it.
    async with bot.sessions() as session:
        [later] = await _approve_one_more(bot, rules, session)
    await bot.deliver()  # staff hear of that deal first
    [confirm] = await staff.press(sent, "Mark these paid")
    assert "Mark the 2 registrations of this file paid" in confirm["text"]
    await staff.press(confirm, "Yes, mark them paid")
    assert "Marked paid: 2 · paid already: 0" in confirm["text"]
    statuses = {r.reference: r.status for r in await rows_of(bot, Registration)}
    assert [statuses[r] for r in first] == ["paid", "paid"]
    assert statuses[later] == "approved"
    answered = len(bot.api.answers())
    await staff.press_data(
        confirm,
        staff_files.MarkPaid(next(d for _, d in buttons(sent)).split(":")[3], confirmed=True).data,
    )
    assert "already" in bot.api.answers()[answered]["text"]


async def _approve_one_more(bot: Harness, rules, session) -> list[str]:  # type: ignore[no-untyped-def]
    account = await link_salesperson(bot.sessions, "ACME", 12, now=bot.clock.now())
    made = await register(bot.sessions, rules, account, VATS[3], now=bot.clock.now())
    await report(bot.sessions, rules, account, made, Status.WON, now=bot.clock.now())
    await decide(
        session=session, reference=made.reference, approve=True, staff_id=STAFF, now=bot.clock.now()
    )
    return [made.reference]


async def test_export_and_payouts_answer_only_staff(bot, rules):
    await approved(bot, rules, 1)
    salesperson = bot.chat(11, "en")
    for command in ("/export", "/payouts"):
        [answer] = await salesperson.send(command)
        assert (STAFF, answer["message_id"]) not in bot.api.files
        assert not [k for k in bot.api.files if k[0] == 11]
