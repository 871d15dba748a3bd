"""The real `pai-bot run` process against a fake Bot API served on 127.0.0.1."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from bot.app.demo.telegram import BOT_USERNAME, FakeBotApi, User
from bot.jobs.broadcasts import WORKERS
from tests.factories import VATS, write_csv
from tests.fake_telegram_server import serve_http
from tests.harness import TOKEN, button_data

# Every test here starts the real process.
pytestmark = pytest.mark.slow


@pytest.fixture
def api() -> Iterator[tuple[FakeBotApi, str]]:
    fake = FakeBotApi()
    server, base_url = serve_http(fake, TOKEN)
    yield fake, base_url
    server.shutdown()
    server.server_close()


def environment(tmp_path: Path, base_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "PAI_"))}
    env.update(
        TELEGRAM_BOT_TOKEN=TOKEN,
        TELEGRAM_API_BASE_URL=base_url,
        DATABASE_URL=f"sqlite:///{tmp_path / 'pai.db'}",
        PAI_VIES="off",  # tests never reach the EU
    )
    return env


def pai_bot(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.app.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@contextmanager
def running(
    env: dict[str, str], cwd: Path, log: Path, prefix: tuple[str, ...] = ()
) -> Iterator[subprocess.Popen[bytes]]:
    # A group of its own: faketime runs the bot as its child and does not pass signals
    # on, so the stop goes to the whole group and waits until the bot itself is gone.
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*prefix, sys.executable, "-m", "bot.app.cli", "run"],
            env=env,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        stop_group(process)


def stop_group(process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """SIGINT to the process and its children, then SIGKILL to what is left after `timeout`."""
    for sig in (signal.SIGINT, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            process.poll()  # reap the leader, or the group never empties
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                process.wait()
                return
            time.sleep(0.05)
    process.wait()


def invite_for_acme(env: dict[str, str], cwd: Path) -> str:
    """Load partner ACME with the CLI and return the payload of an invite for it."""
    env["TELEGRAM_BOT_USERNAME"] = BOT_USERNAME
    write_csv(cwd / "partners.csv", "code,company,level\nACME,Acme Informatica,gold\n")
    pai_bot(env, cwd, "import-partners", "partners.csv")
    link = pai_bot(env, cwd, "invite", "ACME").stdout.splitlines()[-1]
    return link.split("start=")[1]


def wait_for_reply(api: FakeBotApi, user: User, count: int) -> list[dict]:
    api.wait_for(lambda: len(api.sent_to(user.id)) >= count)
    return api.sent_to(user.id)


def test_salesperson_joins_and_registers_a_deal_with_the_real_process(api, tmp_path):
    fake, base_url = api
    env = environment(tmp_path, base_url)
    write_csv(tmp_path / "partners.csv", "code,company,level\nACME,Acme Informatica,gold\n")
    write_csv(
        tmp_path / "purchases.csv",
        f"vat,customer_name,purchase_date\n{VATS[1]},Bianchi SpA,2020-01-01\n",
    )
    assert pai_bot(env, tmp_path, "import-partners", "partners.csv").returncode == 0
    assert pai_bot(env, tmp_path, "import-purchases", "purchases.csv").returncode == 0
    assert pai_bot(env, tmp_path, "invite", "ACME").returncode == 2  # username not known yet
    log = tmp_path / "bot.log"
    user = User(id=4242, language_code="en")
    with running(env, tmp_path, log) as process:
        fake.wait_for(lambda: any(m == "getUpdates" for m, _ in fake.calls), timeout=60)
        # Once started, the bot remembers its username: invites work without the variable.
        invite = pai_bot(env, tmp_path, "invite", "ACME")
        assert invite.returncode == 0, invite.stderr
        link = invite.stdout.splitlines()[-1]
        assert link.startswith(f"https://t.me/{BOT_USERNAME}?start=")
        fake.user_sends(user, "/start " + link.split("start=")[1])
        assert "Acme Informatica" in wait_for_reply(fake, user, 1)[-1]["text"]
        fake.user_sends(user, f"/new {VATS[1]}")
        verdict = wait_for_reply(fake, user, 2)[-1]  # the verdict carries the next question
        assert "new customer" in verdict["text"]
        fake.user_sends(user, "2,000")
        which = wait_for_reply(fake, user, 3)[-1]
        fake.user_presses(user, which, button_data(which, "€2,000.00"))
        # A pressed button's message becomes the next step.
        fake.wait_for(lambda: "What are you selling" in which["text"])
        fake.user_sends(user, "Firewall")
        ask_close = wait_for_reply(fake, user, 4)[-1]
        fake.user_presses(user, ask_close, button_data(ask_close, "30 days"))
        fake.wait_for(lambda: "Confirm" in str(ask_close.get("reply_markup")))
        summary = ask_close
        fake.user_presses(user, summary, button_data(summary, "Confirm"))
        fake.wait_for(lambda: "Registered" in summary["text"])
        done = summary
        assert len(fake.sent_to(user.id)) == 4  # one message a step, the rest edits
        assert process.poll() is None
    assert process.returncode == 0
    with sqlite3.connect(tmp_path / "pai.db") as db:
        [(reference, vat, status, value)] = db.execute(
            "SELECT reference, vat, status, deal_value FROM registration"
        ).fetchall()
    assert (vat, status, value) == (VATS[1], "qualified", 200000)
    assert reference in done["text"]
    text = log.read_text()
    assert TOKEN not in text
    assert TOKEN.split(":")[1] not in text
    assert "Traceback" not in text


def test_a_restart_keeps_registrations_and_answers_where_it_left(api, tmp_path):
    fake, base_url = api
    env = environment(tmp_path, base_url)
    payload = invite_for_acme(env, tmp_path)
    user = User(id=77, language_code="it")
    with running(env, tmp_path, tmp_path / "first.log"):
        fake.user_sends(user, f"/start {payload}")
        wait_for_reply(fake, user, 1)
        fake.user_sends(user, f"/check {VATS[0]}")
        assert "cliente nuovo" in wait_for_reply(fake, user, 2)[-1]["text"]
    sent_before = len(fake.sent_to(user.id))
    with running(env, tmp_path, tmp_path / "second.log"):
        fake.user_sends(user, "/status")
        answer = wait_for_reply(fake, user, sent_before + 1)
        assert "Non hai ancora registrazioni" in answer[-1]["text"]
    # Every update was answered once: none lost, none handled twice across the restart.
    assert len(fake.sent_to(user.id)) == sent_before + 1


def test_a_token_telegram_refuses_stops_the_bot_with_one_sentence(api, tmp_path):
    _fake, base_url = api
    env = environment(tmp_path, base_url)
    env["TELEGRAM_BOT_TOKEN"] = "987654321:ZZHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw9"
    result = pai_bot(env, tmp_path, "run")
    assert result.returncode == 2
    assert (
        "pai-bot: Telegram refused TELEGRAM_BOT_TOKEN: check it with @BotFather." in result.stderr
    )
    assert "Traceback" not in result.stderr
    assert "Unclosed" not in result.stderr  # its connections closed although it never ran
    assert "ZZHdqTcv" not in result.stderr


def test_updates_telegram_should_never_send_are_skipped_by_the_real_process(api, tmp_path):
    fake, base_url = api
    env = environment(tmp_path, base_url)
    payload = invite_for_acme(env, tmp_path)
    user = User(id=88, language_code="en")
    log = tmp_path / "bot.log"
    with running(env, tmp_path, log):
        fake.user_sends(user, f"/start {payload}")
        wait_for_reply(fake, user, 1)
        # No date: PTB cannot read it; without the check the batch would be fetched forever.
        fake.queue_raw({"message": {"message_id": 5, "chat": {"id": 88}, "text": "IT-SECRET"}})
        fake.user_sends(user, "/help")
        assert "/new" in wait_for_reply(fake, user, 2)[-1]["text"]
    text = log.read_text()
    assert "skipped: unreadable" in text
    assert "SECRET" not in text
    assert len(text) < 20_000  # one line for it, not a flood


def test_run_warns_when_the_env_file_can_be_read_by_others(api, tmp_path):
    fake, base_url = api
    env = environment(tmp_path, base_url)
    env_file = tmp_path / ".env"
    env_file.write_text(f"TELEGRAM_BOT_USERNAME={BOT_USERNAME}\n")
    env_file.chmod(0o644)
    log = tmp_path / "bot.log"
    with running(env, tmp_path, log):
        fake.wait_for(lambda: any(m == "getUpdates" for m, _ in fake.calls), timeout=60)
    assert ".env can be read by other users" in log.read_text()


def test_run_says_once_at_start_that_photos_cannot_be_read_without_tesseract(api, tmp_path):
    fake, base_url = api
    env = environment(tmp_path, base_url)
    env["PATH"] = str(tmp_path / "no-tesseract-here")  # the bot itself needs nothing on PATH
    log = tmp_path / "bot.log"
    with running(env, tmp_path, log):
        fake.wait_for(lambda: any(m == "getUpdates" for m, _ in fake.calls), timeout=60)
    assert log.read_text().count("photos cannot be read here") == 1


FAKETIME = shutil.which("faketime")


def link_salesperson_on(env: dict[str, str], telegram_user_id: int, day: dt.datetime) -> None:
    """Link a salesperson to ACME at a moment in the past, through the services."""
    import asyncio

    from bot.config import Settings
    from bot.resources import open_resources
    from tests.factories import link_salesperson

    async def link() -> None:
        shared = await open_resources(
            Settings(_env_file=None, database_url=env["DATABASE_URL"])  # type: ignore[call-arg]
        )
        try:
            await link_salesperson(shared.sessions, "ACME", telegram_user_id, now=day)
        finally:
            await shared.close()

    asyncio.run(link())


@pytest.mark.skipif(FAKETIME is None, reason="faketime (Debian package faketime) is missing")
def test_the_real_process_started_weeks_ahead_sends_the_due_nudge_once(api, tmp_path):
    fake, base_url = api
    env = environment(tmp_path, base_url)
    invite_for_acme(env, tmp_path)
    link_salesperson_on(env, 31, dt.datetime(2026, 11, 24, 9, 0, tzinfo=dt.UTC))
    env["TZ"] = "UTC"  # faketime reads the moment below in this zone
    weeks_ahead = (str(FAKETIME), "-f", "@2026-12-15 09:00:00")  # a Tuesday, 10:00 in Rome
    user = User(id=31, language_code="en")
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    with running(env, tmp_path, first_log, weeks_ahead):
        [nudge] = wait_for_reply(fake, user, 1)
        assert "has registered no deal in 21 days" in nudge["text"]
        fake.wait_for(lambda: "action=reminders" in first_log.read_text(), timeout=30)
    with running(env, tmp_path, second_log, weeks_ahead):
        # The tick at start has run when it says so; it found the nudge already sent.
        fake.wait_for(lambda: "action=reminders" in second_log.read_text(), timeout=30)
    assert len(fake.sent_to(user.id)) == 1
    assert "sent=0" in second_log.read_text()
    with sqlite3.connect(tmp_path / "pai.db") as db:
        assert db.execute("SELECT kind, status FROM reminder").fetchall() == [("nudge", "sent")]


def won_deal_reported_on(env: dict[str, str], telegram_user_id: int, day: dt.datetime) -> None:
    """The salesperson registers a deal and reports it won on `day`: before staff from then."""
    import asyncio

    from bot.config import Settings
    from bot.domain.lifecycle import Status
    from bot.resources import open_resources
    from tests.factories import VATS, link_salesperson, register, report

    async def won() -> None:
        shared = await open_resources(
            Settings(_env_file=None, database_url=env["DATABASE_URL"])  # type: ignore[call-arg]
        )
        try:
            account = await link_salesperson(shared.sessions, "ACME", telegram_user_id, now=day)
            made = await register(shared.sessions, shared.rules, account, VATS[1], now=day)
            await report(shared.sessions, shared.rules, account, made, Status.WON, now=day)
        finally:
            await shared.close()

    asyncio.run(won())


@pytest.mark.skipif(FAKETIME is None, reason="faketime (Debian package faketime) is missing")
def test_the_overdue_digest_goes_once_a_day_across_a_restart(api, tmp_path):
    fake, base_url = api
    env = environment(tmp_path, base_url)
    invite_for_acme(env, tmp_path)
    won_deal_reported_on(env, 31, dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC))
    env.update(TZ="UTC", PAI_ADMIN_IDS="900", PAI_ESCALATION_IDS="950")
    # Due 48 hours after it was reported: twelve days late on this Tuesday at 10:00 in Rome.
    late = (str(FAKETIME), "-f", "@2026-12-15 09:00:00")
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    with running(env, tmp_path, first_log, late):
        for staff in (900, 950):
            [digest] = wait_for_reply(fake, User(id=staff, language_code="en"), 1)
            assert "PAI-" in digest["text"]
        fake.wait_for(lambda: "digests=2" in first_log.read_text(), timeout=30)
    with running(env, tmp_path, second_log, late):
        fake.wait_for(lambda: "action=reminders" in second_log.read_text(), timeout=30)
    assert "digests=0" in second_log.read_text()
    assert [len(fake.sent_to(staff)) for staff in (900, 950)] == [1, 1]
    with sqlite3.connect(tmp_path / "pai.db") as db:
        assert db.execute("SELECT day, chat_id FROM staffdigest ORDER BY chat_id").fetchall() == [
            ("2026-12-15", 900),
            ("2026-12-15", 950),
        ]


def link_many(env: dict[str, str], first_id: int, count: int) -> None:
    """Link `count` salespeople to ACME, through the services."""
    import asyncio

    from bot.config import Settings
    from bot.resources import open_resources
    from tests.factories import link_salesperson

    async def link() -> None:
        shared = await open_resources(
            Settings(_env_file=None, database_url=env["DATABASE_URL"])  # type: ignore[call-arg]
        )
        try:
            for index in range(count):
                await link_salesperson(shared.sessions, "ACME", first_id + index)
        finally:
            await shared.close()

    asyncio.run(link())


def test_a_broadcast_killed_halfway_resumes_and_nobody_gets_it_twice(api, tmp_path):
    fake, base_url = api
    env = environment(tmp_path, base_url)
    invite_for_acme(env, tmp_path)
    recipients = [7000 + i for i in range(40)]
    link_many(env, recipients[0], len(recipients))
    env["PAI_ADMIN_IDS"] = "900"
    staff = User(id=900, language_code="en")
    text = "Programme news for everyone"

    def copies(user_id: int) -> int:
        return len([m for m in fake.sent_to(user_id) if text in m["text"]])

    processes: list[subprocess.Popen[bytes]] = []
    sent = {"n": 0}

    def kill_halfway(method: str, params: dict) -> None:
        if method == "sendMessage" and text in str(params.get("text")):
            sent["n"] += 1
            if sent["n"] == len(recipients) // 2:  # Telegram has it; the bot never hears back
                os.kill(processes[0].pid, signal.SIGKILL)

    with running(env, tmp_path, tmp_path / "first.log") as first:
        processes.append(first)
        fake.user_sends(staff, "/broadcast")
        wait_for_reply(fake, staff, 1)
        fake.user_sends(staff, text)
        audience = wait_for_reply(fake, staff, 2)[-1]
        fake.user_presses(staff, audience, button_data(audience, "All partners"))
        confirm = wait_for_reply(fake, staff, 4)[-1]
        fake.before_call = kill_halfway
        fake.user_presses(staff, confirm, button_data(confirm, "Send to"))
        first.wait(timeout=60)
    assert first.returncode == -signal.SIGKILL
    fake.before_call = None
    assert 0 < sum(copies(u) for u in recipients) < len(recipients)
    with running(env, tmp_path, tmp_path / "second.log"):
        fake.wait_for(lambda: "recipients:" in fake.sent_to(staff.id)[-1]["text"], timeout=60)
    counts = [copies(u) for u in recipients]
    assert max(counts) == 1  # nobody twice
    # The report: the ones in flight at the kill (one per worker at most) are
    # not sent again, since Telegram may have them; the rest went exactly once.
    report = fake.sent_to(staff.id)[-1]["text"]
    delivered = int(report.split("recipients: ")[1].split(" delivered")[0])
    unconfirmed = int(report.split("failed, ")[1].split(" without")[0])
    assert delivered + unconfirmed == len(recipients)
    assert 1 <= unconfirmed <= WORKERS
    assert counts.count(0) <= unconfirmed - 1  # the one Telegram had is among them
    assert "0 blocked the bot, 0 failed" in report


LIBFAKETIME = next(iter(sorted(Path("/usr/lib").glob("*/faketime/libfaketimeMT.so.1"))), None)


def lease_ends(database: Path) -> dt.datetime:
    with sqlite3.connect(database) as db:
        [(until,)] = db.execute("SELECT expires_at FROM lease WHERE name = 'leader'").fetchall()
    return dt.datetime.fromisoformat(until).replace(tzinfo=dt.UTC)


@pytest.mark.skipif(LIBFAKETIME is None, reason="libfaketime (Debian package faketime) is missing")
@pytest.mark.parametrize("step", ["-1h", "+1h"])
def test_a_step_of_the_system_clock_stops_neither_the_lease_nor_the_answers(api, tmp_path, step):
    """NTP or a resumed virtual machine steps the wall clock; the monotonic clock does not
    step. The lease is renewed every 10 s whatever the wall clock says, and users are
    answered. (On the wall clock, as APScheduler keeps time, a step back of an hour
    stopped both the lease and the reminders for an hour.)"""
    fake, base_url = api
    env = environment(tmp_path, base_url)
    payload = invite_for_acme(env, tmp_path)
    clock = tmp_path / "faketime"
    clock.write_text("+0\n")
    env.update(
        LD_PRELOAD=str(LIBFAKETIME),
        FAKETIME_TIMESTAMP_FILE=str(clock),
        FAKETIME_NO_CACHE="1",
        FAKETIME_DONT_FAKE_MONOTONIC="1",  # as in life: a step moves the wall clock only
    )
    user = User(id=41, language_code="en")
    database = tmp_path / "pai.db"
    with running(env, tmp_path, tmp_path / "bot.log"):
        fake.user_sends(user, f"/start {payload}")
        wait_for_reply(fake, user, 1)
        before = lease_ends(database)
        clock.write_text(f"{step}\n")
        shifted = dt.timedelta(hours=-1 if step.startswith("-") else 1)
        # The next renewals come on time and write the stepped clock's moment.
        fake.wait_for(
            lambda: abs(lease_ends(database) - (before + shifted)) < dt.timedelta(seconds=25),
            timeout=30,
        )
        renewed = lease_ends(database)
        fake.wait_for(lambda: lease_ends(database) > renewed, timeout=15)
        fake.user_sends(user, "/help")
        assert "/new" in wait_for_reply(fake, user, 2)[-1]["text"]


@contextmanager
def small_disk(folder: Path, size: str = "4m") -> Iterator[Path]:
    """A filesystem of its own, `size` big (a tmpfs; the test needs root to mount it)."""
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(folder)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small disk here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(disk: Path) -> Path:
    """Take every free byte of the disk; the file returned gives them back when removed."""
    filler = disk / "filler"
    # The suppress outermost: closing the file flushes what the last write left in its
    # buffer, and that fails for want of space too.
    with contextlib.suppress(OSError), filler.open("wb") as out:
        while True:
            out.write(b"\0" * 65536)
            out.flush()
    return filler


def test_a_full_disk_is_said_to_the_user_and_in_the_log_and_the_bot_recovers(api, tmp_path):
    fake, base_url = api
    with small_disk(tmp_path / "disk") as disk:
        env = environment(tmp_path, base_url)
        env["DATABASE_URL"] = f"sqlite:///{disk / 'pai.db'}"
        payload = invite_for_acme(env, tmp_path)
        user = User(id=61, language_code="en")
        log = tmp_path / "bot.log"
        with running(env, tmp_path, log):
            fake.user_sends(user, f"/start {payload}")
            wait_for_reply(fake, user, 1)
            fake.user_sends(user, f"/new {VATS[1]}")
            assert "company" in wait_for_reply(fake, user, 2)[-1]["text"]
            filler = fill(disk)
            fake.user_sends(user, "Bianchi SpA")  # its draft cannot be saved
            apology = wait_for_reply(fake, user, 3)[-1]["text"]
            assert "cannot save anything right now" in apology
            filler.unlink()  # space again
            fake.user_sends(user, "Bianchi SpA")  # the same answer, again
            assert "deal value" in wait_for_reply(fake, user, 4)[-1]["text"]
        text = log.read_text()
    assert "the disk is full" in text
    assert "Traceback" not in text
