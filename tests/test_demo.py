"""`pai-bot demo`: the real bot in a terminal, driven by a script on its stdin."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from bot.app.demo import EXAMPLE_NEW_VAT, EXAMPLE_RETURNING_VAT
from bot.app.demo.screen import terminal_text
from bot.app.demo.telegram import FakeBotApi, FakeRequest, User
from bot.jobs.leadership import LEADER, instance_name
from tests.harness import running_bot

ROOT = Path(__file__).resolve().parent.parent
REGISTER = [
    "/new",
    EXAMPLE_NEW_VAT,
    "Rossi Impianti S.r.l.",
    "12000",
    "ERP cloud, 20 users",
    "1",  # [1] In 30 days
    "1",  # [1] Confirm
    "/status",
    "/quit",
]
# Any attempt to reach a network, from anywhere in the process, is refused and told.
NO_NETWORK = """
import socket, sys
def refuse(*args, **kwargs):
    sys.stderr.write("NETWORK ATTEMPT\\n")
    raise OSError("networking is disabled in this test")
socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse
from bot.app.cli import main
sys.exit(main(sys.argv[1:]))
"""


def demo(
    tmp_path: Path, lines: list[str], *args: str, prefix: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "PAI_"))}
    env.pop("DATABASE_URL", None)
    env["PYTHONPATH"] = str(ROOT)
    env["MPLCONFIGDIR"] = str(tmp_path / "matplotlib")
    command = [*prefix, sys.executable, "-m", "bot.app.cli", "demo", *args]
    return subprocess.run(
        command,
        input="".join(f"{line}\n" for line in lines),
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def registrations(database: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(database) as connection:
        return connection.execute(
            "SELECT reference, vat, status FROM registration ORDER BY id"
        ).fetchall()


@pytest.mark.slow
def test_a_deal_registered_with_the_numbered_buttons_shows_in_status_and_stays_in_the_database(
    tmp_path,
):
    database = tmp_path / "demo.db"
    run = demo(tmp_path, REGISTER, "--db", str(database))
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "[1] In 30 days   [2] In 60 days   [3] In 90 days" in out
    assert "[1] ✅ Confirm   [2] ✖ Cancel" in out
    assert "pressed [1] ✅ Confirm" in out
    assert "── PAI (edited)" in out  # the summary became the confirmation in place
    reference = re.search(r"Registered: (PAI-[A-Z0-9]{6})", out)
    assert reference is not None, out
    status = out.split("> /status", 1)[1]
    assert f"{reference.group(1)} · Rossi Impianti S.r.l. · open" in status
    assert "\033[" not in out  # not a terminal: no styles
    [mine] = [r for r in registrations(database) if r[1] == EXAMPLE_NEW_VAT]
    assert mine == (reference.group(1), EXAMPLE_NEW_VAT, "qualified")
    assert len(registrations(database)) > 20  # the seeded programme is there too


@pytest.mark.slow
def test_any_recent_messages_buttons_can_be_pressed_and_the_frame_speaks_italian(tmp_path):
    database = tmp_path / "demo.db"
    run = demo(tmp_path, ["/as staff", "/pending", "1", "/quit"], "--db", str(database))
    assert run.returncode == 0, run.stderr
    out = run.stdout.split("> /pending", 1)[1]
    first = re.search(r"(PAI-[A-Z0-9]{6}) · ", out)
    assert first is not None, out
    assert "[1] ✅ Approve   [2] ✖ Reject" in out  # the first item
    assert "[3] ✅ Approve   [4] ✖ Reject" in out  # the second, shown after it
    assert "pressed [1] ✅ Approve" in out  # the first item, not the last message's
    statuses = {reference: status for reference, _, status in registrations(database)}
    assert statuses[first.group(1)] == "approved"
    italian = demo(tmp_path, ["/quit"], "--db", str(tmp_path / "it.db"), "--language", "it")
    assert "Sei Giulia" in italian.stdout  # the banner
    assert "orologio:" in italian.stdout  # the notes
    assert re.search(r"── PAI · (lun|mar|mer|gio|ven|sab|dom) ", italian.stdout)  # the clock


@pytest.mark.slow
def test_the_seeded_programme_has_three_partners_hundreds_of_customers_and_every_state(tmp_path):
    database = tmp_path / "demo.db"
    assert demo(tmp_path, ["/quit"], "--db", str(database)).returncode == 0
    with sqlite3.connect(database) as connection:
        levels = connection.execute("SELECT level FROM partner ORDER BY id").fetchall()
        customers = connection.execute("SELECT count(*) FROM customer").fetchone()[0]
        first, last = connection.execute(
            "SELECT min(purchase_date), max(purchase_date) FROM purchase"
        ).fetchone()
    assert levels == [("gold",), ("certified",), ("registered",)]
    assert customers >= 300
    assert first < last
    states = {status for _, _, status in registrations(database)}
    assert {"qualified", "won", "approved", "paid", "lost", "expired"} <= states


@pytest.mark.slow
def test_staff_stats_save_the_chart_as_a_png_and_three_weeks_bring_the_reminders(tmp_path):
    database = tmp_path / "demo.db"
    script = ["/as staff", "/stats", "/as AURORA", "/time +3w", "/quit"]
    run = demo(tmp_path, script, "--db", str(database))
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "You are Laura Bassi, programme staff" in out
    assert "Incentives expected" in out
    photo = re.search(r"\[photo: (.+\.png)\]", out)
    assert photo is not None, out
    chart = Path(photo.group(1))
    assert chart.parent == tmp_path / "demo-files"
    assert chart.read_bytes().startswith(b"\x89PNG")
    later = out.split("> /time +3w", 1)[1]
    assert "The reminders' tick ran" in later
    assert "How did it go?" in later  # a follow-up on a deal whose close date passed
    assert re.search(r"\[\d+\] 🏆 Won   \[\d+\] Lost   \[\d+\] Still open", later)
    assert re.search(r"new for (Marco|Sara) \((BITLINE|CEDRO)\): /as", later)


@pytest.mark.slow
def test_switching_to_another_partner_shows_what_came_for_them_and_keeps_partners_apart(tmp_path):
    run = demo(tmp_path, ["/time +3w", "/as cedro", "/status", "/as nobody", "/quit"])
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "You are Sara Lodi, salesperson at Cedro Software S.n.c. (CEDRO, registered)" in out
    assert "Cedro Software S.n.c. has registered no deal in" in out  # the nudge waited for her
    status = out.split("Sara > /status", 1)[1]
    assert re.search(r"Cedro Software S\.n\.c\. \W 3 registrations", status)
    assert "Aurora" not in status and "Bitline" not in status
    assert "speak as whom? /as AURORA, /as BITLINE, /as CEDRO, /as staff" in out


@pytest.mark.slow
def test_without_db_the_demo_removes_its_database_and_files_at_exit(tmp_path):
    run = demo(tmp_path, [f"/check {EXAMPLE_RETURNING_VAT}"])  # and then the input ends
    assert run.returncode == 0, run.stderr
    assert "Ferraro Meccanica S.r.l." in run.stdout
    folder = re.search(r"files \(charts, log\): (\S+)", run.stdout)
    assert folder is not None
    assert not Path(folder.group(1)).exists()
    assert "were removed" in run.stdout


@pytest.mark.slow
def test_the_demo_refuses_a_database_it_did_not_make(tmp_path):
    other = tmp_path / "pai.db"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE partner (code TEXT, company TEXT)")
        connection.execute("INSERT INTO partner VALUES ('ACME', 'Acme S.r.l.')")
    before = other.read_bytes()
    run = demo(tmp_path, ["/quit"], "--db", str(other))
    assert run.returncode == 2
    assert "is not a database an earlier demo made" in run.stderr
    assert other.read_bytes() == before


@pytest.mark.slow
def test_a_second_demo_on_the_same_database_says_so_instead_of_waiting(tmp_path):
    database = tmp_path / "demo.db"
    first = demo(tmp_path, ["/quit"], "--db", str(database))
    assert first.returncode == 0, first.stderr
    with sqlite3.connect(database) as connection:  # as a demo still running leaves it
        connection.execute(
            "INSERT INTO lease (name, holder, expires_at) VALUES (?, ?, ?)",
            (LEADER, instance_name(), "2026-11-28 10:00:30.000000"),
        )
    run = demo(tmp_path, ["/quit"], "--db", str(database))
    assert run.returncode == 2
    assert f"another demo is running on {database}" in run.stderr

    with sqlite3.connect(database) as connection:  # that demo crashed: its process is gone
        dead = instance_name().split(":")
        dead[1] = str(_a_dead_pid())
        connection.execute("UPDATE lease SET holder = ?", (":".join(dead),))
    again = demo(tmp_path, ["/quit"], "--db", str(database))
    assert again.returncode == 0, again.stderr


def _a_dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


@pytest.mark.slow
def test_the_demo_reaches_no_network(tmp_path):
    script = [*REGISTER[:-1], "/as staff", "/stats", "/time +2d", "/quit"]
    wrapped = subprocess.run(
        [sys.executable, "-c", NO_NETWORK, "demo", "--db", str(tmp_path / "demo.db")],
        input="".join(f"{line}\n" for line in script),
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "PAI_"))},
            "PYTHONPATH": str(ROOT),
            "MPLCONFIGDIR": str(tmp_path / "matplotlib"),
        },
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert wrapped.returncode == 0, wrapped.stderr
    assert "NETWORK ATTEMPT" not in wrapped.stderr
    assert "Registered: PAI-" in wrapped.stdout
    assert "[photo: " in wrapped.stdout


def _unshare_works() -> bool:
    unshare = shutil.which("unshare")
    if unshare is None:
        return False
    try:
        return subprocess.run([unshare, "-rn", "true"], capture_output=True).returncode == 0
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not _unshare_works(), reason="unshare -rn is not available here")
def test_the_demo_works_in_a_namespace_without_any_network(tmp_path):
    run = demo(tmp_path, REGISTER, "--db", str(tmp_path / "demo.db"), prefix=("unshare", "-rn"))
    assert run.returncode == 0, run.stderr
    assert "Registered: PAI-" in run.stdout


# --- the embedded Bot API, as the demo turns it on -------------------------------------


def test_telegram_answers_chat_not_found_for_a_chat_that_never_talked_to_the_bot():
    api = FakeBotApi(known_chats={5})
    code, body = api.handle("sendMessage", {"chat_id": 6, "text": "hello"})
    assert (code, body["description"]) == (400, "Bad Request: chat not found")
    code, _ = api.handle("sendMessage", {"chat_id": 5, "text": "hello"})
    assert code == 200
    scope = json.dumps({"type": "chat", "chat_id": 6})
    code, body = api.handle("setMyCommands", {"commands": "[]", "scope": scope})
    assert body["description"] == "Bad Request: chat not found"
    api.user_sends(User(6), "/start")  # now they have
    assert api.handle("sendMessage", {"chat_id": 6, "text": "hello"})[0] == 200


def test_by_default_every_chat_is_known_as_the_tests_reach_linked_people():
    assert FakeBotApi().handle("sendMessage", {"chat_id": 6, "text": "hi"})[0] == 200


def test_telegram_refuses_oversized_texts_and_captions_and_a_photo_without_the_photo():
    api = FakeBotApi()
    code, body = api.handle("sendMessage", {"chat_id": 1, "text": "x" * 4097})
    assert (code, body["description"]) == (400, "Bad Request: message is too long")
    upload = {"photo": ("chart.png", b"\x89PNG", "image/png")}
    code, body = api.handle("sendPhoto", {"chat_id": 1, "caption": "x" * 1025}, upload)
    assert body["description"] == "Bad Request: message caption is too long"
    code, body = api.handle("sendPhoto", {"chat_id": 1})
    assert body["description"] == "Bad Request: there is no photo in the request"
    code, body = api.handle("sendPhoto", {"chat_id": 1}, upload)
    assert code == 200
    assert api.files[(1, body["result"]["message_id"])] == ("chart.png", b"\x89PNG")


async def test_a_chart_the_bot_uploads_reaches_the_fake_with_its_bytes(tmp_path):
    api = FakeBotApi()
    async with running_bot(tmp_path, api) as bot:
        await bot.app.bot.send_photo(1, b"\x89PNG-bytes", filename="stats.png")
    [(name, content)] = api.files.values()
    assert (name, content) == ("stats.png", b"\x89PNG-bytes")
    assert isinstance(FakeRequest(api), FakeRequest)


def test_messages_keep_telegram_formatting_as_terminal_styles_only_on_a_terminal():
    text = '<b>Registered</b>: <code>PAI-7K3Q9X</code> &amp; <a href="https://t.me/x">link</a>'
    assert terminal_text(text, styled=False) == "Registered: PAI-7K3Q9X & link (https://t.me/x)"
    styled = terminal_text(text, styled=True)
    assert "\033[1mRegistered\033[0m" in styled
    assert "\033[36mPAI-7K3Q9X\033[0m" in styled


@pytest.mark.slow
def test_the_demo_prints_a_web_view_link_a_desktop_browser_opens_signed_in(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "PAI_"))}
    env.pop("DATABASE_URL", None)
    env.update(PYTHONPATH=str(ROOT), MPLCONFIGDIR=str(tmp_path / "matplotlib"))
    with subprocess.Popen(
        [sys.executable, "-m", "bot.app.cli", "demo"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=tmp_path,
        text=True,
    ) as process:
        assert process.stdout is not None
        assert process.stdin is not None
        link = ""
        for line in process.stdout:
            if "web view, as" in line:
                link = line.split(": ", 1)[1].split()[0]
                break
        assert link.startswith("http://127.0.0.1:") and "#tgWebAppData=" in link
        base, _, fragment = link.partition("/#tgWebAppData=")
        init_data = urllib.parse.unquote(fragment)
        me = urllib.request.Request(base + "/api/me", headers={"Authorization": f"tma {init_data}"})
        with urllib.request.urlopen(me, timeout=10) as answer:
            assert [tab for tab, _ in json.load(answer)["tabs"]] == ["registrations", "loyalty"]
        with urllib.request.urlopen(base + "/", timeout=10) as shell:
            assert "app.js" in shell.read().decode()
        process.stdin.write("/quit\n")
        process.stdin.flush()
        assert process.wait(timeout=60) == 0
