"""`pai-bot` commands run on real files, as staff run them: CSV and Excel workbooks."""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import stat
import subprocess
import sys
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from openpyxl import Workbook, load_workbook

from bot.app.cli import main
from tests.factories import VATS, italian_vat, write_csv

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0"


@pytest.fixture
def shell(tmp_path, monkeypatch):
    """A staff shell in an empty folder with its own SQLite database."""
    monkeypatch.chdir(tmp_path)
    for name in ("TELEGRAM_BOT_TOKEN", "TELEGRAM_BOT_USERNAME", "PAI_RULES_FILE", "PAI_ADMIN_IDS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'pai.db'}")
    return tmp_path


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def partners_and_purchases(shell, capsys) -> None:
    write_csv(shell / "partners.csv", "code,company,level\nACME,Acme,gold\nBETA,Beta,certified\n")
    assert run(capsys, "import-partners", "partners.csv")[0] == 0


def workbook(path, rows, *, title: str | None = None):
    book = Workbook()
    sheet = book.active
    if title:
        sheet.append([title])
        sheet.append([])
    for row in rows:
        sheet.append(row)
    book.save(path)
    return path


# --- help --------------------------------------------------------------------


def test_bare_pai_bot_prints_the_help(capsys):
    code, out, _ = run(capsys)
    assert code == 0
    assert "import-purchases" in out
    assert "salespeople" in out


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("import-purchases", ["vat", "customer_name", "purchase_date", "Example", ".xlsx"]),
        ("import-partners", ["code", "company", "level", "Example"]),
        ("export", ["--excel-csv", "reference", "Example"]),
        ("invite", ["Example"]),
        ("check", ["Example"]),
        ("salespeople", ["Example"]),
        ("unlink", ["Example"]),
        ("run", ["Example", ".env"]),
    ],
)
def test_every_command_explains_its_columns_and_gives_an_example(capsys, command, expected):
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    out, _ = capsys.readouterr()
    assert exited.value.code == 0
    for word in expected:
        assert word in out


# --- imports -------------------------------------------------------------------


def test_importing_partners_and_purchases_reports_counts_and_bad_lines(shell, capsys):
    write_csv(
        shell / "partners.csv", "\ufeffcode;company;level;region\nACME;Acme;gold;Nord\nX;;gold;\n"
    )
    code, out, err = run(capsys, "import-partners", "partners.csv")
    assert code == 1
    assert "1 partner added" in out
    assert "partners.csv:3: company" in err
    assert f"database sqlite:///{shell / 'pai.db'} (new, created now)" in err
    write_csv(
        shell / "purchases.csv", f"vat,customer_name,purchase_date\n{VATS[0]},Rossi,2026-06-01\n"
    )
    code, _, err = run(capsys, "import-purchases", "purchases.csv", "--create")
    assert code == 0
    assert "created now" not in err
    code, out, _ = run(capsys, "import-purchases", "purchases.csv", "--create")
    assert (code, "0 purchases added" in out, "1 unchanged" in out) == (0, True, True)


def test_purchases_and_partners_are_read_from_excel_workbooks_as_staff_have_them(shell, capsys):
    workbook(
        shell / "partners.xlsx",
        [["Code", "Company", "Level", "Note"], ["acme", "Acme Informatica", "Gold", "north"]],
        title="Partner list, November",
    )
    code, out, _ = run(capsys, "import-partners", "partners.xlsx")
    assert (code, "1 partner added" in out) == (0, True)
    workbook(
        shell / "purchases.xlsx",
        [
            ["purchase_date", "VAT", "customer_name"],
            [dt.datetime(2026, 3, 14), VATS[0], "Rossi"],
            ["2025-01-10", 743110157, "Bianchi SpA"],  # a number: Excel dropped the zeros
            [dt.date(2026, 2, 1), "not a vat", "Bad"],
        ],
    )
    code, out, err = run(capsys, "import-purchases", "purchases.xlsx", "--create")
    assert code == 1
    assert "2 purchases added" in out
    assert "purchases.xlsx:4: VAT number 'not a vat'" in err
    code, out, _ = run(capsys, "check", VATS[1])
    assert "IT00743110157 (Bianchi SpA): new customer (last purchase 2025-01-10)" in out


@pytest.mark.parametrize("suffix", ["csv", "xlsx"])
def test_a_file_with_the_wrong_header_imports_nothing_and_shows_what_it_found(
    shell, capsys, suffix
):
    path = shell / f"purchases.{suffix}"
    if suffix == "csv":
        write_csv(path, "partita_iva,data\nIT12345670587,2026-01-01\n")
    else:
        workbook(path, [["partita_iva", "data"], ["IT12345670587", "2026-01-01"]])
    code, _, err = run(capsys, "import-purchases", path.name, "--create")
    assert code == 2
    assert "vat, customer_name, purchase_date" in err
    assert "found: partita_iva, data" in err


def test_a_file_that_is_not_a_table_is_refused_in_one_sentence(shell, capsys):
    (shell / "photo.csv").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    code, _, err = run(capsys, "import-partners", "photo.csv")
    assert code == 2
    assert "neither CSV nor an Excel .xlsx workbook" in err
    code, _, err = run(capsys, "import-partners", "missing.csv")
    assert (code, "missing.csv" in err) == (2, True)


def test_a_number_or_date_repeated_in_a_history_is_judged_alike_every_time(shell, capsys):
    """Each distinct text is read once per import: its repeats get the same verdict."""
    write_csv(
        shell / "purchases.csv",
        "vat,customer_name,purchase_date\n"
        f"{VATS[0]},Rossi,2026-06-01\n"
        "IT00743110158,Typo,2026-06-01\n"
        f"{VATS[0]},Rossi,2026-06-02\n"
        "IT00743110158,Typo,2026-06-03\n"
        f"{VATS[1]},Bianchi,31/02/2026\n"
        f"{VATS[2]},Verdi,31/02/2026\n",
    )
    code, out, err = run(capsys, "import-purchases", "purchases.csv", "--create")
    assert code == 1
    assert "6 rows read, 2 purchases added" in out and "4 rejected" in out
    assert err.count("check digit") == 2
    assert "purchases.csv:3:" in err and "purchases.csv:5:" in err
    assert "purchases.csv:6:" in err and "purchases.csv:7:" in err


def test_a_purchase_dated_after_today_needs_allow_future(shell, capsys):
    tomorrow = dt.date.today() + dt.timedelta(days=2)
    write_csv(
        shell / "purchases.csv",
        f"vat,customer_name,purchase_date\n{VATS[0]},Rossi,{tomorrow.isoformat()}\n",
    )
    code, out, err = run(capsys, "import-purchases", "purchases.csv", "--create")
    assert (code, "0 purchases added" in out) == (1, True)
    assert "purchases.csv:2: purchase_date" in err
    assert "--allow-future" in err
    code, out, _ = run(capsys, "import-purchases", "purchases.csv", "--allow-future", "--create")
    assert (code, "1 purchase added" in out) == (0, True)


def test_a_code_repeated_in_a_partners_file_is_named_in_the_summary(shell, capsys):
    write_csv(
        shell / "partners.csv",
        "code,company,level\nACME,Old name,gold\nBETA,Beta,gold\nACME,New name,certified\n",
    )
    code, out, _ = run(capsys, "import-partners", "partners.csv")
    assert code == 0
    assert "2 partners added" in out
    assert "lines 4 repeat a code of an earlier line" in out


def test_a_broken_csv_line_is_rejected_with_its_number_and_the_rest_imported(shell, capsys):
    huge = "x" * 200_000
    write_csv(
        shell / "purchases.csv",
        "vat,customer_name,purchase_date\n"
        f'{VATS[0]},"Rossi, unterminated,2026-01-10\n'
        f"{VATS[1]},{huge},2026-01-10\n"
        f"{VATS[2]},Ver\x00di,2026-01-10\n",
    )
    code, out, err = run(capsys, "import-purchases", "purchases.csv", "--create")
    assert code == 1
    assert "purchases.csv:2: unterminated quote" in err
    assert "purchases.csv:3: a field is longer than" in err
    assert "1 purchase added" in out
    assert "Traceback" not in err


# --- check, invite -------------------------------------------------------------


def test_check_from_the_shell_gives_the_verdict_and_quotes(shell, capsys):
    write_csv(shell / "partners.csv", "code,company,level\nACME,Acme,certified\n")
    run(capsys, "import-partners", "partners.csv")
    write_csv(
        shell / "purchases.csv", f"vat,customer_name,purchase_date\n{VATS[0]},Rossi,2099-01-01\n"
    )
    run(capsys, "import-purchases", "purchases.csv", "--allow-future", "--create")
    code, out, _ = run(capsys, "check", "123.456.705-87")
    assert (code, "not new, last purchase 2099-01-01" in out) == (1, True)
    code, out, _ = run(capsys, "check", VATS[1])
    assert code == 0
    assert "gold: 500.00 EUR" in out
    code, out, _ = run(capsys, "check", VATS[1], "--partner", "ACME")
    assert (code, "€300.00" in out) == (0, True)
    code, out, _ = run(capsys, "check", "12345670588")
    assert (code, "not a valid VAT number" in out) == (2, True)
    code, out, _ = run(capsys, "check", "ciao")
    assert "a VAT number has 11 digits" in out


def test_invite_prints_the_deep_link_last(shell, capsys, monkeypatch):
    write_csv(shell / "partners.csv", "code,company,level\nACME,Acme,gold\n")
    run(capsys, "import-partners", "partners.csv")
    code, _, err = run(capsys, "invite", "ACME")
    assert code == 2
    assert "TELEGRAM_BOT_USERNAME" in err
    monkeypatch.setenv("TELEGRAM_BOT_USERNAME", "@pai_bot")
    code, out, _ = run(capsys, "invite", "acme")
    assert code == 0
    assert out.splitlines()[-1].startswith("https://t.me/pai_bot?start=")
    code, _, err = run(capsys, "invite", "NOPE")
    assert (code, "NOPE" in err) == (2, True)


@pytest.mark.parametrize("command", [["check", VATS[0]], ["invite", "ACME"], ["export", "x.csv"]])
def test_commands_that_only_read_refuse_a_database_file_that_is_not_there(shell, capsys, command):
    code, _, err = run(capsys, *command)
    assert code == 2
    assert f"there is no database at {shell / 'pai.db'}" in err
    assert not (shell / "pai.db").exists()


def test_a_new_database_file_is_readable_by_its_owner_only(shell, capsys):
    partners_and_purchases(shell, capsys)
    assert stat.S_IMODE(os.stat(shell / "pai.db").st_mode) == 0o600


# --- export --------------------------------------------------------------------


def registered(shell, capsys):
    """Two registrations in the database, made through the services."""
    import asyncio

    from bot.config import Settings
    from bot.resources import open_resources
    from tests.factories import NOW, link_salesperson, register

    partners_and_purchases(shell, capsys)

    async def make():
        shared = await open_resources(Settings(_env_file=None))
        try:
            acme = await link_salesperson(shared.sessions, "ACME", 1)
            await register(shared.sessions, shared.rules, acme, VATS[0], now=NOW)
            await register(shared.sessions, shared.rules, acme, italian_vat(3), now=NOW)
        finally:
            await shared.close()

    asyncio.run(make())


def test_export_writes_every_registration_as_csv(shell, capsys):
    registered(shell, capsys)
    code, out, _ = run(capsys, "export", "out.csv")
    assert (code, "2 registrations written" in out) == (0, True)
    with open(shell / "out.csv", newline="", encoding="utf-8") as exported:
        rows = list(csv.DictReader(exported))
    assert [row["incentive_amount"] for row in rows] == ["500.00", "500.00"]
    assert rows[0]["registered_on"] == "2026-11-28"
    assert rows[0]["reference"].startswith("PAI-")
    assert stat.S_IMODE(os.stat(shell / "out.csv").st_mode) == 0o600


def test_export_to_xlsx_keeps_dates_as_dates_and_amounts_as_numbers(shell, capsys):
    registered(shell, capsys)
    code, _, _ = run(capsys, "export", "out.xlsx")
    assert code == 0
    sheet = load_workbook(shell / "out.xlsx").active
    header = [cell.value for cell in sheet[1]]
    first = dict(zip(header, [cell.value for cell in sheet[2]], strict=True))
    assert first["registered_on"] == dt.datetime(2026, 11, 28)
    assert first["incentive_amount"] == 500
    assert isinstance(first["deal_value"], float | int | Decimal)


def test_export_for_italian_excel_has_a_bom_semicolons_and_decimal_commas(shell, capsys):
    registered(shell, capsys)
    code, _, _ = run(capsys, "export", "out.csv", "--excel-csv")
    assert code == 0
    data = (shell / "out.csv").read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    text = data.decode("utf-8-sig")
    assert text.splitlines()[0].startswith("reference;partner_code;")
    assert ";500,00;" in text
    assert "28/11/2026" in text


@pytest.mark.parametrize("target", ["/", ".", "no/such/folder/out.csv"])
def test_export_to_a_place_it_cannot_write_is_one_sentence(shell, capsys, target):
    registered(shell, capsys)
    code, _, err = run(capsys, "export", target)
    assert code == 2
    lines = [line for line in err.splitlines() if not line.startswith("pai-bot: database")]
    assert len(lines) == 1
    assert "tmp" not in lines[0]
    assert "partial" not in lines[0]


# --- people ---------------------------------------------------------------------


def test_staff_list_who_is_linked_and_unlink_someone_who_left(shell, capsys):
    registered(shell, capsys)
    code, out, _ = run(capsys, "salespeople")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split("\t") == [
        "telegram_id",
        "partner",
        "name",
        "username",
        "joined",
        "last_seen",
    ]
    assert lines[1].startswith("1\tACME\t")
    assert lines[1].split("\t")[3] == "-"  # no username: the bot's "-", shown as it is
    code, out, _ = run(capsys, "salespeople", "BETA")
    assert "nobody is linked to BETA" in out
    code, out, _ = run(capsys, "unlink", "1")
    assert code == 0
    assert "no longer works for ACME" in out
    assert "stay with ACME" in out
    code, out, _ = run(capsys, "salespeople")
    assert "nobody is linked" in out
    code, _, err = run(capsys, "unlink", "1")
    assert code == 2
    assert "nobody with Telegram id 1 is linked" in err


# --- the database and the run command --------------------------------------------


def test_an_unreachable_database_is_one_sentence_without_the_password(shell, capsys, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://pai:s3cret@127.0.0.1:9/pai")
    code, _, err = run(capsys, "check", VATS[0])
    assert code == 2
    assert "pai-bot: database postgresql://pai:***@127.0.0.1:9/pai" in err
    assert "pai-bot: cannot use the database postgresql://pai:***@127.0.0.1:9/pai" in err
    assert "s3cret" not in err
    assert len(err.strip().splitlines()) == 2


def pai_bot_process(shell, **env):
    environment = {k: v for k, v in os.environ.items() if k != "TELEGRAM_BOT_TOKEN"}
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-m", "bot.app.cli", "run"],
        capture_output=True,
        text=True,
        env=environment,
        cwd=shell,
        timeout=60,
        check=False,
    )


@pytest.mark.slow
def test_run_without_a_token_stops_with_one_sentence(shell):
    result = pai_bot_process(shell)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "pai-bot: TELEGRAM_BOT_TOKEN is not set: ask @BotFather for a token and put it in .env."
    )


@pytest.mark.slow
def test_run_with_an_unreadable_database_url_stops_with_one_sentence(shell):
    result = pai_bot_process(shell, TELEGRAM_BOT_TOKEN=TOKEN, DATABASE_URL="not a url")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "pai-bot: DATABASE_URL is not a database URL such as sqlite:///pai.db"
    )


@pytest.mark.slow
def test_run_with_the_bot_api_unreachable_stops_with_one_sentence(shell):
    result = pai_bot_process(
        shell, TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_API_BASE_URL="http://127.0.0.1:9/bot"
    )
    assert result.returncode == 2
    assert "pai-bot: cannot reach the Bot API at http://127.0.0.1:9/bot" in result.stderr
    assert "Traceback" not in result.stderr
    assert "Unclosed" not in result.stderr  # its connections closed although it never ran
    assert TOKEN.split(":")[1] not in result.stderr


@pytest.mark.slow
def test_run_against_a_bot_api_that_answers_getme_with_no_bot_stops_with_one_sentence(shell):
    class NotABot(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = b'{"ok": true, "result": {}}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), NotABot)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        result = pai_bot_process(
            shell,
            TELEGRAM_BOT_TOKEN=TOKEN,
            TELEGRAM_API_BASE_URL=f"http://127.0.0.1:{server.server_port}/bot",
        )
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 2
    line = result.stderr.strip().splitlines()[-1]  # after "starting; database …"
    assert line.startswith("pai-bot: the Bot API at http://127.0.0.1:")
    assert "did not answer getMe with a bot" in line
    assert "Traceback" not in result.stderr
    assert "Unclosed" not in result.stderr
    assert TOKEN.split(":")[1] not in result.stderr


def test_hundred_thousand_purchases_import_in_one_run(shell, capsys):
    rows = "".join(
        f"{italian_vat(i)},Cliente {i},2025-{i % 12 + 1:02d}-15\n" for i in range(100_000)
    )
    write_csv(shell / "big.csv", "vat,customer_name,purchase_date\n" + rows)
    code, out, _ = run(capsys, "import-purchases", "big.csv", "--create")
    assert code == 0
    assert "100000 purchases added" in out


def test_dates_saved_as_text_by_italian_excel_are_read_day_first(shell, capsys):
    write_csv(
        shell / "purchases.csv",
        f"vat;customer_name;purchase_date\n{VATS[0]};Rossi;14/03/2026\n{VATS[1]};Bianchi;3.1.2025\n",
    )
    code, out, _ = run(capsys, "import-purchases", "purchases.csv", "--create")
    assert (code, "2 purchases added" in out) == (0, True)
    code, out, _ = run(capsys, "check", VATS[0])
    assert "last purchase 2026-03-14" in out


def test_staff_checking_a_protected_customer_see_the_holder_and_the_name_it_typed(shell, capsys):
    registered(shell, capsys)  # ACME registered VATS[0] as "Rossi S.r.l."
    code, out, _ = run(capsys, "check", VATS[0])
    assert code == 1
    assert "by ACME (Acme)" in out
    assert "registered as 'Rossi S.r.l.'" in out


def test_reminders_dry_run_shows_what_would_go_and_to_whom_sending_nothing(shell, capsys):
    import asyncio
    import sqlite3

    from bot.config import Settings
    from bot.resources import open_resources
    from tests.factories import NOW, link_salesperson, register

    partners_and_purchases(shell, capsys)

    async def make():
        shared = await open_resources(Settings(_env_file=None))
        try:
            await link_salesperson(shared.sessions, "ACME", 4242, now=NOW - dt.timedelta(days=5))
            beta = await link_salesperson(shared.sessions, "BETA", 5151, now=NOW)
            await register(shared.sessions, shared.rules, beta, VATS[0], now=NOW)
        finally:
            await shared.close()

    asyncio.run(make())  # ACME's person joined on 23 Nov 2026; BETA registered on 28 Nov
    code, out, _ = run(capsys, "reminders", "--dry-run", "--at", "2026-12-18T10:00")
    assert code == 0
    assert "2026-12-18 10:00 (Europe/Rome): 0 registrations would expire" in out
    assert "nudge     to - (4242, ACME): no registration since 2026-11-23" in out
    assert "5151" not in out  # BETA registered 20 days before: not idle long enough
    code, out, _ = run(capsys, "reminders", "--dry-run", "--at", "2027-02-27T10:00")
    assert "quiet hours (19:00-09:00, weekdays only)" in out  # a Saturday
    assert "the next allowed moment is 2027-03-01 09:00" in out
    assert "1 registration would expire" in out
    assert "expiry    to - (5151, BETA): PAI-" in out
    with sqlite3.connect(shell / "pai.db") as db:
        assert db.execute("SELECT count(*) FROM reminder").fetchone() == (0,)
        assert db.execute("SELECT status FROM registration").fetchall() == [("qualified",)]
    code, _, err = run_exit(capsys, "reminders")
    assert code == 2
    assert "--dry-run" in err


def run_exit(capsys, *argv):
    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    out, err = capsys.readouterr()
    return exited.value.code, out, err


def approve_all_won(shell) -> None:
    """Staff approve every won deal, through the service the chat uses."""
    import asyncio

    from bot.config import Settings
    from bot.resources import open_resources
    from bot.services.staff import decide, pending_decisions
    from tests.factories import NOW

    async def approve():
        shared = await open_resources(Settings(_env_file=None))
        try:
            async with shared.sessions() as session:
                _count, deals = await pending_decisions(session=session)
            for deal in deals:
                async with shared.sessions() as session:
                    await decide(
                        session=session,
                        reference=deal.registration.reference,
                        approve=True,
                        staff_id=900,
                        now=NOW,
                    )
        finally:
            await shared.close()

    asyncio.run(approve())


def report_won(shell, reference: str) -> None:
    import asyncio

    from bot.config import Settings
    from bot.domain.lifecycle import Status
    from bot.resources import open_resources
    from bot.services.accounts import find_account
    from bot.services.registrations import report_outcome
    from tests.factories import NOW

    async def won():
        shared = await open_resources(Settings(_env_file=None))
        try:
            async with shared.sessions() as session:
                account = await find_account(session=session, telegram_user_id=1)
                await report_outcome(
                    session=session,
                    rules=shared.rules,
                    account=account,
                    reference=reference,
                    outcome=Status.WON,
                    now=NOW,
                )
        finally:
            await shared.close()

    asyncio.run(won())


@pytest.mark.parametrize("name", ["pay.csv", "pay.xlsx"])
def test_payouts_export_the_approved_and_mark_them_paid_once(shell, capsys, name):
    import sqlite3

    registered(shell, capsys)
    with sqlite3.connect(shell / "pai.db") as db:
        references = [r for (r,) in db.execute("SELECT reference FROM registration ORDER BY id")]
    report_won(shell, references[0])
    approve_all_won(shell)
    code, out, _ = run(capsys, "payouts", "export", name)
    assert code == 0
    assert "ACME: €500.00" in out
    assert "1 approved incentive to pay written" in out
    code, out, _ = run(capsys, "payouts", "mark-paid", name, "--date", "2027-01-31")
    assert (code, "1 marked paid, 0 paid already, 0 refused" in out) == (0, True)
    code, out, _ = run(capsys, "payouts", "mark-paid", name)
    assert "0 marked paid, 1 paid already" in out
    with sqlite3.connect(shell / "pai.db") as db:
        assert db.execute("SELECT status FROM registration ORDER BY id").fetchall() == [
            ("paid",),
            ("qualified",),
        ]
        assert db.execute(
            "SELECT changed_by, note FROM statuschange WHERE to_status = 'paid'"
        ).fetchall() == [("staff:payouts", "paid on 2027-01-31")]
    code, out, _ = run(capsys, "payouts", "export", name)
    assert "0 approved incentives to pay" in out


def test_marking_paid_refuses_what_is_not_approved_and_names_the_line(shell, capsys):
    import sqlite3

    registered(shell, capsys)
    with sqlite3.connect(shell / "pai.db") as db:
        [first, _] = [r for (r,) in db.execute("SELECT reference FROM registration ORDER BY id")]
    write_csv(shell / "pay.csv", f"reference\n{first}\nPAI-ZZZZZZ\nnonsense\n")
    code, _out, err = run(capsys, "payouts", "mark-paid", "pay.csv")
    assert code == 1
    assert f"pay.csv:2: {first} is qualified, not approved: not paid" in err
    assert "pay.csv:3: PAI-ZZZZZZ is not a registration" in err
    assert "pay.csv:4: 'nonsense' is not a reference" in err


def test_the_export_carries_each_registrations_history(shell, capsys):
    import sqlite3

    registered(shell, capsys)
    with sqlite3.connect(shell / "pai.db") as db:
        first = db.execute("SELECT reference FROM registration ORDER BY id").fetchone()[0]
    report_won(shell, first)
    run(capsys, "export", "out.csv")
    with open(shell / "out.csv", newline="", encoding="utf-8") as exported:
        rows = list(csv.DictReader(exported))
    # People by name where the bot knows one (this salesperson never showed one), never by id.
    assert rows[0]["history"] == (
        "2026-11-28 10:00Z qualified by a salesperson; 2026-11-28 10:00Z won by a salesperson"
    )


def test_stats_in_the_shell_prints_the_numbers_and_draws_the_chart(shell, capsys):
    registered(shell, capsys)
    code, out, _ = run(capsys, "stats", "--chart", "stats.png")
    assert code == 0
    assert "Registrations:" in out
    assert "<b>" not in out
    assert "ACME (Acme): 2" in out
    assert (shell / "stats.png").read_bytes().startswith(b"\x89PNG")


# --- the first hour at a shell --------------------------------------------------------


def test_version_and_a_mistyped_command_get_one_line_each(shell, capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip().startswith("pai-bot ")
    with pytest.raises(SystemExit) as refused:
        main(["improt-partners", "partners.csv"])
    assert refused.value.code == 2
    err = capsys.readouterr().err
    assert "unknown command 'improt-partners': did you mean 'import-partners'?" in err
    with pytest.raises(SystemExit):
        main(["payouts", "mark-piad", "pay.csv"])
    assert "did you mean 'mark-paid'?" in capsys.readouterr().err


def test_a_wrong_setting_is_one_sentence_without_pydantics_words(shell, capsys, monkeypatch):
    monkeypatch.setenv("PAI_ADMIN_IDS", "abc")
    code, _out, err = run(capsys, "check", "IT12345670587")
    assert code == 2
    assert err.strip() == "pai-bot: PAI_ADMIN_IDS must be Telegram user ids separated by commas"


def test_summaries_count_in_good_english(shell, capsys):
    write_csv(shell / "partners.csv", "code,company,level\nACME,Acme,gold\n")
    _code, out, _err = run(capsys, "import-partners", "partners.csv")
    assert out.strip() == "1 row read, 1 partner added, 0 updated, 0 unchanged, 0 rejected"


class Terminal(io.StringIO):
    """A stream that says it is a terminal, as a staff member's shell is."""

    def isatty(self) -> bool:
        return True


def test_a_long_import_shows_its_progress_on_a_terminal_and_nothing_when_piped(
    shell, capsys, monkeypatch
):
    rows = "".join(f"{italian_vat(n)},Cliente {n},2024-01-15\n" for n in range(1, 3001))
    write_csv(shell / "purchases.csv", "vat,customer_name,purchase_date\n" + rows)
    code, _out, piped = run(capsys, "import-purchases", "purchases.csv", "--create")
    assert code == 0
    assert "rows/s" not in piped and "%|" not in piped  # a file or a pipe gets no bar
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["import-purchases", "purchases.csv", "--create"]) == 0
    shown = terminal.getvalue()
    assert "rows/s" in shown  # how fast
    assert "/3.00k" in shown  # how far: the lines the file has
    assert "%|" in shown  # a bar


def test_the_sample_files_of_the_readme_import_as_it_says(shell, capsys):
    samples = Path(__file__).parent.parent / "docs" / "samples"
    code, out, _ = run(capsys, "import-partners", str(samples / "partners.csv"))
    assert (code, out.strip()) == (
        0,
        "4 rows read, 4 partners added, 0 updated, 0 unchanged, 0 rejected",
    )
    code, out, err = run(capsys, "import-purchases", str(samples / "purchases.xlsx"))
    assert code == 1  # one row has a typo: said, and the rest imported
    assert "4 purchases added, 1 unchanged, 1 rejected" in out
    assert "purchases.xlsx:8: VAT number 'IT12345670588': the check digit is wrong" in err
    code, out, _ = run(capsys, "check", "00743110157")  # a number Excel stripped of zeros
    assert "IT00743110157 (Bianchi Arredamenti S.p.A.): not new" in out


def test_every_file_and_table_the_command_line_writes_defuses_formulas(shell, capsys):
    import sqlite3

    registered(shell, capsys)
    formula = '=HYPERLINK("http://evil.example","x")'
    with sqlite3.connect(shell / "pai.db") as db:
        db.execute("UPDATE registration SET customer_name = ?", (formula,))
        db.execute("UPDATE salesperson SET display_name = ?", (formula,))
        first = db.execute("SELECT reference FROM registration ORDER BY id").fetchone()[0]
    report_won(shell, first)
    approve_all_won(shell)
    for command in (["export", "out.csv"], ["payouts", "export", "pay.csv"]):
        assert run(capsys, *command)[0] == 0
        text = (shell / command[-1]).read_text(encoding="utf-8")
        assert f"'{formula}" in text.replace('""', '"') and f",{formula}" not in text
    for command in (["export", "out.xlsx"], ["payouts", "export", "pay.xlsx"]):
        assert run(capsys, *command)[0] == 0
        cells = [c for row in load_workbook(shell / command[-1]).active.iter_rows() for c in row]
        named = [c for c in cells if c.value == formula]
        assert named
        assert all(c.data_type == "s" for c in named)  # text, never a formula
    _code, out, _err = run(capsys, "salespeople")
    assert f"\t'{formula}\t" in out


def test_purchases_into_a_folder_without_a_database_are_refused_unless_create(shell, capsys):
    write_csv(shell / "p.csv", f"vat,customer_name,purchase_date\n{VATS[1]},Bianchi,2025-01-10\n")
    code, out, err = run(capsys, "import-purchases", "p.csv")
    assert code == 2
    assert err.strip() == (
        f"pai-bot: there is no database at {shell / 'pai.db'}: check DATABASE_URL, "
        "or give --create to make a new one"
    )
    assert not (shell / "pai.db").exists()
    code, out, err = run(capsys, "import-purchases", "p.csv", "--create")
    assert code == 0
    assert "(new, created now)" in err
    assert "1 purchase added" in out
