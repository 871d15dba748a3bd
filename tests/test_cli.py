"""`pai-bot` commands run on real files, as staff run them."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import pytest

from bot.cli import main
from tests.factories import VATS, italian_vat, write_csv


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


def test_importing_partners_and_purchases_reports_counts_and_bad_lines(shell, capsys):
    write_csv(
        shell / "partners.csv", "\ufeffcode;company;level;region\nACME;Acme;gold;Nord\nX;;gold;\n"
    )
    code, out, err = run(capsys, "import-partners", "partners.csv")
    assert code == 1
    assert "1 partners added" in out
    assert "partners.csv:3: company" in err
    write_csv(
        shell / "purchases.csv", f"vat,customer_name,purchase_date\n{VATS[0]},Rossi,2026-06-01\n"
    )
    assert run(capsys, "import-purchases", "purchases.csv")[0] == 0
    code, out, _ = run(capsys, "import-purchases", "purchases.csv")
    assert (code, "0 purchases added" in out, "1 unchanged" in out) == (0, True, True)


def test_import_with_a_wrong_header_imports_nothing(shell, capsys):
    write_csv(shell / "purchases.csv", "partita_iva,data\nIT12345670587,2026-01-01\n")
    code, _, err = run(capsys, "import-purchases", "purchases.csv")
    assert code == 1
    assert "lacks vat" in err


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


def test_check_from_the_shell_gives_the_verdict_and_quotes(shell, capsys):
    write_csv(shell / "partners.csv", "code,company,level\nACME,Acme,certified\n")
    run(capsys, "import-partners", "partners.csv")
    write_csv(
        shell / "purchases.csv", f"vat,customer_name,purchase_date\n{VATS[0]},Rossi,2099-01-01\n"
    )
    run(capsys, "import-purchases", "purchases.csv")
    code, out, _ = run(capsys, "check", "123.456.705-87")
    assert (code, "not new, last purchase 2099-01-01" in out) == (1, True)
    code, out, _ = run(capsys, "check", VATS[1])
    assert code == 0
    assert "gold: 500.00 EUR" in out
    code, out, _ = run(capsys, "check", VATS[1], "--partner", "ACME")
    assert (code, "€300.00" in out) == (0, True)
    code, out, _ = run(capsys, "check", "12345670588")
    assert (code, "not a valid VAT number" in out) == (2, True)


def test_export_writes_every_registration(shell, capsys):
    code, _out, _ = run(capsys, "export", "out.csv")
    assert code == 0
    with open(shell / "out.csv", newline="", encoding="utf-8") as exported:
        assert next(csv.reader(exported))[:3] == ["reference", "partner_code", "partner_company"]


def test_run_without_a_token_stops_with_one_sentence(shell):
    env = {k: v for k, v in os.environ.items() if k != "TELEGRAM_BOT_TOKEN"}
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "run"],
        capture_output=True,
        text=True,
        env=env,
        cwd=shell,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "pai-bot: TELEGRAM_BOT_TOKEN is not set: ask @BotFather for a token and put it in .env."
    )


def test_hundred_thousand_purchases_import_in_one_run(shell, capsys):
    rows = "".join(
        f"{italian_vat(i)},Cliente {i},2025-{i % 12 + 1:02d}-15\n" for i in range(100_000)
    )
    write_csv(shell / "big.csv", "vat,customer_name,purchase_date\n" + rows)
    code, out, _ = run(capsys, "import-purchases", "big.csv")
    assert code == 0
    assert "100000 purchases added" in out


def test_an_unreachable_database_is_one_sentence_without_the_password(shell, capsys, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://pai:s3cret@127.0.0.1:9/pai")
    code, _, err = run(capsys, "check", VATS[0])
    assert code == 2
    assert err.startswith("pai-bot: cannot use the database postgresql://pai:***@127.0.0.1:9/pai")
    assert "s3cret" not in err
    assert len(err.strip().splitlines()) == 1


def test_export_to_a_folder_that_does_not_exist_says_so(shell, capsys):
    code, _, err = run(capsys, "export", "no/such/folder/out.csv")
    assert code == 2
    assert "No such file or directory" in err


def test_run_with_an_unreadable_database_url_stops_with_one_sentence(shell):
    env = {
        **os.environ,
        "TELEGRAM_BOT_TOKEN": "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0",
        "DATABASE_URL": "not a url",
    }
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "run"],
        capture_output=True,
        text=True,
        env=env,
        cwd=shell,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "pai-bot: DATABASE_URL is not a database URL such as sqlite:///pai.db"
    )
