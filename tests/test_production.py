"""Production: the real process restarted mid-conversation, killed mid-Confirm, in
webhook mode, as two instances — on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import socket
import sqlite3
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import make_url

from bot.app.demo.telegram import FakeBotApi, TelegramError, User
from bot.config import Settings
from bot.domain.clock import ManualClock
from bot.jobs.broadcasts import WORKERS
from bot.jobs.leadership import Leadership, died_here, instance_name
from bot.resources import open_resources
from bot.services.leases import give_up_lease, hold_lease
from bot.storage.database import make_engine, make_sessions
from bot.storage.schema import create_tables
from bot.telegram.budget import SHARED_MARGIN, SharedBudget
from bot.telegram.locks import UserLocks
from tests.conftest import database_url_for, reset_postgresql
from tests.factories import VATS
from tests.harness import button_data
from tests.test_process import api as api  # the fake Bot API, as a fixture
from tests.test_process import (
    environment,
    invite_for_acme,
    link_many,
    pai_bot,
    running,
    wait_for_reply,
)

WEBHOOK_URL = "https://bot.example.com/tg/hook"


@pytest.fixture
async def postgresql_database(tmp_path: Path) -> str:
    """Several instances need PostgreSQL: these tests run on it alone."""
    url = database_url_for("postgresql", tmp_path)
    await reset_postgresql(url)
    return url


@pytest.fixture
async def database(database_url: str) -> str:
    if database_url.startswith("postgresql"):
        await reset_postgresql(database_url)
    return database_url


def env_for(tmp_path: Path, base_url: str, database_url: str, **extra: str) -> dict[str, str]:
    env = environment(tmp_path, base_url)
    env["DATABASE_URL"] = database_url
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def webhook_env(env: dict[str, str], port: int) -> dict[str, str]:
    return {**env, "PAI_WEBHOOK_URL": WEBHOOK_URL, "PAI_WEBHOOK_LISTEN": f"127.0.0.1:{port}"}


def http(
    port: int, path: str, body: dict[str, Any] | None = None, secret: str | None = None
) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers=headers,
        method="GET" if body is None else "POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@contextmanager
def two_instances(
    env: dict[str, str], tmp_path: Path, ports: tuple[int, int]
) -> Iterator[tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]]]:
    """Two instances of the bot in webhook mode, one on each port, both listening."""
    first, second = (webhook_env(env, port) for port in ports)
    with (
        running(first, tmp_path, tmp_path / "one.log") as one,
        running(second, tmp_path, tmp_path / "two.log") as two,
    ):
        wait_for_listener(ports[0], one)
        wait_for_listener(ports[1], two)
        yield one, two


def wait_for_listener(port: int, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the bot stopped"
        try:
            if http(port, "/healthz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError("the webhook listener did not come up")


def webhook_secret(fake: FakeBotApi) -> str:
    calls = [params for method, params in fake.calls if method == "setWebhook"]
    assert calls, "the webhook was not registered"
    return str(calls[-1]["secret_token"])


class Salesperson:
    """A salesperson chatting with the bot through the fake, by polling or by webhook."""

    def __init__(self, fake: FakeBotApi, user: User) -> None:
        self.fake, self.user = fake, user
        self.port: int | None = None  # set: updates are posted to this instance
        self.secret = ""

    def _deliver(self, update: dict[str, Any]) -> None:
        if self.port is None:
            return  # the process polls it
        with self.fake._changed:
            self.fake.pending.remove(update)
        status, _ = http(self.port, "/tg/hook", update, self.secret)
        assert status == 200

    def says(self, text: str) -> None:
        self._deliver(self.fake.user_sends(self.user, text))

    def presses(self, label: str) -> None:
        message = self.message_with_button(label)
        self._deliver(self.fake.user_presses(self.user, message, button_data(message, label)))

    def message_with_button(self, label: str) -> dict[str, Any]:
        found = self._with_button(label)
        if found is None:
            raise AssertionError(f"no message with a {label!r} button")
        return found

    def _with_button(self, label: str) -> dict[str, Any] | None:
        for message in reversed(self.fake.sent_to(self.user.id)):
            keyboard = message.get("reply_markup", {}).get("inline_keyboard", [])
            if any(label in button["text"] for row in keyboard for button in row):
                return message
        return None

    def waits_for_button(self, label: str, timeout: float = 30) -> None:
        self.fake.wait_for(lambda: self._with_button(label) is not None, timeout=timeout)

    def count(self, fragment: str) -> int:
        return sum(fragment in m.get("text", "") for m in self.fake.sent_to(self.user.id))

    def waits_for(self, fragment: str, seen: int = 0, timeout: float = 30) -> None:
        """Wait until more than `seen` of the bot's messages contain `fragment`."""
        try:
            self.fake.wait_for(lambda: self.count(fragment) > seen, timeout=timeout)
        except AssertionError:
            got = [m.get("text", "")[:80] for m in self.fake.sent_to(self.user.id)]
            raise AssertionError(f"no {fragment!r} for {self.user.id}; got {got}") from None


def registrations(database_url: str) -> list[tuple[str, str]]:
    query = "SELECT vat, product FROM registration ORDER BY id"
    if database_url.startswith("sqlite"):
        with sqlite3.connect(str(make_url(database_url).database)) as connection:
            return [tuple(row) for row in connection.execute(query)]
    import asyncpg

    async def read() -> list[tuple[str, str]]:
        connection = await asyncpg.connect(database_url)
        try:
            return [tuple(row) for row in await connection.fetch(query)]
        finally:
            await connection.close()

    return asyncio.run(read())


def acme_salesperson(
    api: tuple[FakeBotApi, str], tmp_path: Path, database: str, user_id: int
) -> tuple[dict[str, str], str, Salesperson]:
    """The bot's environment, an invite to ACME and the salesperson (on the fake) to use it."""
    fake, base_url = api
    env = env_for(tmp_path, base_url, database)
    payload = invite_for_acme(env, tmp_path)
    return env, payload, Salesperson(fake, User(id=user_id, language_code="en"))


def start_registration(person: Salesperson) -> None:
    """/new, the VAT, the company and the deal value: the bot then asks for the product."""
    person.says(f"/new {VATS[3]}")
    person.waits_for("company name")
    person.says("Rossi Srl")
    person.waits_for("Estimated deal value")
    person.says("2000")
    person.waits_for("What are you selling")


def finish_registration(person: Salesperson) -> None:
    person.says("Gestionale cloud")
    person.waits_for("Expected close date")
    person.presses("In 30 days")
    person.waits_for_button("Confirm")
    person.presses("Confirm")
    person.waits_for("Registered")


@pytest.mark.slow
def test_a_registration_half_typed_survives_a_sigkill(api, tmp_path, database):
    env, payload, person = acme_salesperson(api, tmp_path, database, 501)
    with running(env, tmp_path, tmp_path / "first.log") as process:
        person.says(f"/start {payload}")
        person.waits_for("Acme Informatica")
        start_registration(person)
        process.kill()  # SIGKILL: no chance to save anything on the way out
        process.wait()
    with running(env, tmp_path, tmp_path / "second.log"):
        # The next answer is read as the product, as if nothing had happened.
        finish_registration(person)
    assert registrations(database) == [(VATS[3], "Gestionale cloud")]
    assert person.count("Which customer") == 0  # never asked to start over
    assert person.count("Something went wrong") == 0


@pytest.mark.slow
def test_webhook_mode_registers_a_secret_refuses_strangers_and_answers_healthz(api, tmp_path):
    fake, base_url = api
    port = free_port()
    env = webhook_env(environment(tmp_path, base_url), port)
    payload = invite_for_acme(env, tmp_path)
    person = Salesperson(fake, User(id=502, language_code="en"))
    with running(env, tmp_path, tmp_path / "bot.log") as process:
        wait_for_listener(port, process)
        fake.wait_for(lambda: any(m == "setWebhook" for m, _ in fake.calls), timeout=30)
        registered = next(p for m, p in fake.calls if m == "setWebhook")
        assert registered["url"] == WEBHOOK_URL
        secret = webhook_secret(fake)
        assert len(secret) >= 32  # generated, since PAI_WEBHOOK_SECRET is not set
        update = fake.user_sends(person.user, f"/start {payload}")
        with fake._changed:
            fake.pending.remove(update)
        # Without the secret, or with a wrong one: refused, and nothing handled.
        assert http(port, "/tg/hook", update)[0] == 403
        assert http(port, "/tg/hook", update, secret[:-1] + "x")[0] == 403
        assert http(port, "/elsewhere", update, secret)[0] == 404
        time.sleep(0.5)
        assert person.count("Acme Informatica") == 0
        assert http(port, "/tg/hook", update, secret)[0] == 200
        person.waits_for("Acme Informatica")
        status, body = http(port, "/healthz")
        assert status == 200
        assert json.loads(body) == {"database": "ok", "leader": True}
    # The secret was stored: a restart registers the same one, and Telegram's
    # retries of updates sent before the restart still get in.
    with running(env, tmp_path, tmp_path / "again.log") as process:
        wait_for_listener(port, process)
        fake.wait_for(lambda: sum(m == "setWebhook" for m, _ in fake.calls) == 2, timeout=30)
        assert webhook_secret(fake) == secret
    log = (tmp_path / "bot.log").read_text()
    assert secret not in log and "Traceback" not in log


@pytest.mark.slow
def test_one_users_registration_alternating_between_two_instances(api, tmp_path, database):
    """Each update goes to the other instance, as a load balancer may send them."""
    fake, base_url = api
    ports = free_port(), free_port()
    env = env_for(tmp_path, base_url, database, PAI_WEBHOOK_SECRET="s3cret-for-the-test")
    payload = invite_for_acme(env, tmp_path)
    person = Salesperson(fake, User(id=503, language_code="en"))
    person.secret = "s3cret-for-the-test"
    with two_instances(env, tmp_path, ports):
        turns = iter(ports * 10)

        def next_instance(_person: Salesperson = person) -> None:
            _person.port = next(turns)

        for step in (
            lambda: person.says(f"/start {payload}"),
            lambda: person.says(f"/new {VATS[4]}"),
            lambda: person.says("Verdi Snc"),
            lambda: person.says("2000"),
            lambda: person.says("Gestionale cloud"),
            lambda: person.presses("In 30 days"),
            lambda: person.presses("Confirm"),
        ):
            next_instance()
            before = len(fake.calls)
            step()
            fake.wait_for(
                lambda b=before: any(  # type: ignore[misc]
                    m in {"sendMessage", "editMessageText"} for m, _ in fake.calls[b:]
                )
            )
            time.sleep(0.2)  # let the step finish writing before the other instance reads
        person.waits_for("Registered")
    assert registrations(database) == [(VATS[4], "Gestionale cloud")]
    assert person.count("Which customer") == 0
    assert person.count("Something went wrong") == 0
    assert person.count("Registered") == 1


@contextmanager
def write_lock_held(database_url: str, seconds: float) -> Iterator[None]:
    """Hold the registration table's write lock for `seconds`, from outside the bot."""
    if database_url.startswith("sqlite"):
        taken = threading.Event()

        def hold() -> None:
            with sqlite3.connect(str(make_url(database_url).database), isolation_level=None) as c:
                c.execute("BEGIN IMMEDIATE")
                taken.set()
                time.sleep(seconds)
                c.execute("ROLLBACK")

        holder = threading.Thread(target=hold)
        holder.start()
        assert taken.wait(10)
        yield
        holder.join()
        return
    script = (
        "BEGIN; LOCK TABLE registration IN EXCLUSIVE MODE; \\echo locked\n"
        f"SELECT pg_sleep({seconds}); ROLLBACK;\n"
    )
    with subprocess.Popen(
        ["psql", "-X", "-q", database_url], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as psql:
        assert psql.stdin is not None and psql.stdout is not None
        psql.stdin.write(script)
        psql.stdin.close()
        assert psql.stdout.readline().strip() == "locked"
        yield
        psql.wait(timeout=seconds + 10)


def wait_for_query_answer(fake: FakeBotApi, update: dict[str, Any]) -> None:
    """Until the bot took the button press in hand (it answers the press first)."""
    query_id = update["callback_query"]["id"]
    fake.wait_for(
        lambda: any(p.get("callback_query_id") == query_id for p in fake.answers()), timeout=30
    )


def reach_confirm(person: Salesperson, payload: str) -> None:
    person.says(f"/start {payload}")
    person.waits_for("Acme Informatica")
    start_registration(person)
    person.says("Gestionale cloud")
    person.waits_for("Expected close date")
    person.presses("In 30 days")
    person.waits_for_button("Confirm")


def press_confirm(person: Salesperson) -> dict[str, Any]:
    message = person.message_with_button("Confirm")
    return person.fake.user_presses(person.user, message, button_data(message, "Confirm"))


@pytest.mark.slow
def test_a_confirm_killed_before_its_commit_registers_once_on_the_next_tap(api, tmp_path, database):
    env, payload, person = acme_salesperson(api, tmp_path, database, 504)
    fake = person.fake
    with running(env, tmp_path, tmp_path / "first.log") as process:
        reach_confirm(person, payload)
        with write_lock_held(database, seconds=3):
            wait_for_query_answer(fake, press_confirm(person))
            time.sleep(0.5)  # the registration now waits for the lock
            process.kill()
            process.wait()
    assert registrations(database) == []
    with running(env, tmp_path, tmp_path / "second.log"):
        # The same button, tapped again: the conversation is where it was.
        person.presses("Confirm")
        person.waits_for("Registered")
        time.sleep(1)
    assert registrations(database) == [(VATS[3], "Gestionale cloud")]
    assert person.count("Registered") == 1


@pytest.mark.slow
def test_sigterm_finishes_the_confirm_in_flight_then_stops(api, tmp_path, database):
    env, payload, person = acme_salesperson(api, tmp_path, database, 505)
    fake = person.fake
    with running(env, tmp_path, tmp_path / "bot.log") as process:
        reach_confirm(person, payload)
        with write_lock_held(database, seconds=2):
            wait_for_query_answer(fake, press_confirm(person))
            process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    # Stopped only once the registration was saved and its confirmation sent.
    assert registrations(database) == [(VATS[3], "Gestionale cloud")]
    assert person.count("Registered") == 1
    assert "Traceback" not in (tmp_path / "bot.log").read_text()


@pytest.mark.slow
def test_a_second_poller_waits_and_takes_over_when_the_first_dies(api, tmp_path, database):
    env, payload, person = acme_salesperson(api, tmp_path, database, 506)
    fake = person.fake
    with running(env, tmp_path, tmp_path / "first.log") as first:
        person.says(f"/start {payload}")
        person.waits_for("Acme Informatica")
        with running(env, tmp_path, tmp_path / "second.log"):
            second_log = tmp_path / "second.log"
            fake.wait_for(lambda: "waiting to take over" in second_log.read_text(), timeout=30)
            first.kill()
            first.wait()
            taken_at = time.monotonic()
            seen = person.count("/new")
            person.says("/help")
            person.waits_for("/new", seen=seen, timeout=60)
            assert time.monotonic() - taken_at < 60
            assert "leads" in second_log.read_text()


async def test_a_lease_moves_only_when_it_ran_out_or_its_holder_gave_it_up(sessions):
    now = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)
    ttl = dt.timedelta(seconds=30)

    async def take(holder: str, at: dt.datetime, replacing: str | None = None) -> bool:
        async with sessions() as session:
            return await hold_lease(
                session=session, name="leader", holder=holder, now=at, ttl=ttl, replacing=replacing
            )

    assert await take("a", now)
    assert not await take("b", now + dt.timedelta(seconds=10))
    assert await take("a", now + dt.timedelta(seconds=20))  # renewed: until +50 s
    assert not await take("b", now + dt.timedelta(seconds=45))
    assert await take("b", now + dt.timedelta(seconds=51))  # ran out: another takes it
    assert not await take("a", now + dt.timedelta(seconds=52))
    assert await take("c", now + dt.timedelta(seconds=53), replacing="b")  # b is known dead
    async with sessions() as session:
        await give_up_lease(session=session, name="leader", holder="c")
    assert await take("a", now + dt.timedelta(seconds=54))
    # Two instances racing for a free lease: exactly one gets it.
    async with sessions() as one, sessions() as two:
        later = now + dt.timedelta(minutes=5)
        results = await asyncio.gather(
            hold_lease(session=one, name="other", holder="x", now=later, ttl=ttl),
            hold_lease(session=two, name="other", holder="y", now=later, ttl=ttl),
        )
    assert sorted(results) == [False, True]


def test_an_instance_knows_a_dead_process_of_its_own_machine():
    here, space = socket.gethostname(), instance_name().split(":")[2]
    dead = subprocess.Popen(["true"])
    dead.wait()
    assert died_here(f"{here}:{dead.pid}:{space}:abcdef")
    assert not died_here(f"{here}:1:{space}:abcdef")  # alive (init): not taken early
    assert not died_here(f"{here}:{os.getpid()}:{space}:abcdef")  # that is us
    # Another machine, a clone with the same hostname, or another container sharing
    # the host's name: its process ids mean nothing here, so the lease runs out first.
    assert not died_here(f"elsewhere:{dead.pid}:{space}:abcdef")
    assert not died_here(f"{here}:{dead.pid}:0badc0de:abcdef")
    assert not died_here(f"{here}:{dead.pid}:abcdef")  # a holder from before this rule


async def test_instances_sharing_the_send_budget_keep_to_one_overall_rate():
    """Two instances (two engines) sending as fast as they can: 30 a second together."""
    if not os.environ.get("TEST_DATABASE_URL"):
        pytest.skip("TEST_DATABASE_URL is not set: PostgreSQL tests skipped")
    url = os.environ["TEST_DATABASE_URL"]
    await reset_postgresql(url)
    engines = [make_engine(url) for _ in range(2)]
    try:
        await create_tables(engines[0])
        rate = 30 * SHARED_MARGIN
        budgets = [SharedBudget(make_sessions(engine), per_second=30) for engine in engines]
        sent: list[float] = []

        async def sender(budget: SharedBudget) -> None:
            for _ in range(45):
                await budget.take()
                sent.append(time.monotonic())

        started = time.monotonic()
        await asyncio.gather(*(sender(b) for b in budgets for _ in range(3)))
        took = time.monotonic() - started
    finally:
        for engine in engines:
            await engine.dispose()
    sent.sort()
    busiest = max(sum(1 for t in sent if s <= t < s + 1.0) for s in sent)
    # In any second, as Telegram counts: 30, and one more when this (loaded) test machine
    # wakes a sender late; two instances pacing themselves apart would send ~57.
    assert busiest <= 31
    assert 270 / 30 - 1 < took < 270 / rate + 1  # and not slower than the rate either


@pytest.mark.slow
def test_two_instances_chat_while_a_broadcast_runs_under_one_send_budget(
    api, tmp_path, postgresql_database
):
    """Against a fake that answers 429 above 30 messages a second, as Telegram does for
    the bot as a whole: no 429, nobody gets the broadcast twice, every answer arrives."""
    database = postgresql_database
    fake, base_url = api
    fake.rate_limit = 30
    staff_id, first_recipient, recipients = 900, 10_000, 400
    env = env_for(
        tmp_path,
        base_url,
        database,
        PAI_WEBHOOK_SECRET="s3cret-for-the-test",
        PAI_ADMIN_IDS=str(staff_id),
    )
    payloads = [invite_for_acme(env, tmp_path) for _ in range(2)]  # one use each
    link_many(env, first_recipient, recipients)
    ports = free_port(), free_port()
    staff = Salesperson(fake, User(id=staff_id, language_code="en"))
    people = [Salesperson(fake, User(id=600 + n, language_code="en")) for n in range(2)]
    for person in (staff, *people):
        person.secret = "s3cret-for-the-test"
    with two_instances(env, tmp_path, ports):
        staff.port = ports[1]
        staff.says("/broadcast")
        staff.waits_for("Send the message for partners")
        staff.says("Programme update: double points in December")
        staff.waits_for_button("All partners")
        staff.presses("All partners")
        staff.waits_for_button("Send to")
        staff.presses("Send to")
        received = [
            lambda r=r: any("double points" in m.get("text", "") for m in fake.sent_to(r))
            for r in range(first_recipient, first_recipient + recipients)
        ]
        fake.wait_for(lambda: any(got() for got in received), timeout=30)
        # Meanwhile two salespeople register, each on both instances in turn.
        for index, person in enumerate(people):
            person.port = ports[index]
            person.says(f"/start {payloads[index]}")
            person.waits_for("Acme Informatica")
            person.port = ports[1 - index]
            person.says(f"/new {VATS[5 + index]}")
            person.waits_for("company name")
        # And a crowd asks for /help at the instance that does not send the broadcast:
        # on its own it would pace itself to 30 a second beside the broadcast's 25.
        leader = [json.loads(http(port, "/healthz")[1])["leader"] for port in ports]
        assert sorted(leader) == [False, True]
        crowd = [Salesperson(fake, User(id=700 + n, language_code="en")) for n in range(20)]
        for person in crowd:
            person.port, person.secret = ports[leader.index(False)], "s3cret-for-the-test"
        for _ in range(5):
            for person in crowd:
                person.says("/help")
        for person in crowd:
            person.waits_for("only for partners", seen=4, timeout=60)  # strangers get this
        fake.wait_for(lambda: all(got() for got in received), timeout=90)
        time.sleep(1)
    assert fake.too_many == 0
    for recipient in range(first_recipient, first_recipient + recipients):
        texts = [m.get("text", "") for m in fake.sent_to(recipient)]
        assert sum("double points" in text for text in texts) == 1
    assert all(p.count("Something went wrong") == 0 for p in people)


@pytest.mark.slow
def test_when_the_leader_dies_mid_broadcast_the_other_instance_finishes_it_once(
    api, tmp_path, postgresql_database
):
    database = postgresql_database
    fake, base_url = api
    staff_id, first_recipient, recipients = 900, 20_000, 60
    env = env_for(
        tmp_path,
        base_url,
        database,
        PAI_WEBHOOK_SECRET="s3cret-for-the-test",
        PAI_ADMIN_IDS=str(staff_id),
        PAI_BROADCAST_RATE="20",
    )
    invite_for_acme(env, tmp_path)
    link_many(env, first_recipient, recipients)
    ports = free_port(), free_port()
    staff = Salesperson(fake, User(id=staff_id, language_code="en"))
    staff.secret = "s3cret-for-the-test"
    text = "Programme news for everyone"
    processes: dict[int, subprocess.Popen[bytes]] = {}
    sent = {"n": 0}

    def kill_the_leader_halfway(method: str, params: dict[str, Any]) -> None:
        if method == "sendMessage" and text in str(params.get("text")):
            sent["n"] += 1
            if sent["n"] == recipients // 2:  # Telegram has it; the leader never hears back
                processes[leader].kill()

    with two_instances(env, tmp_path, ports) as (one, two):
        processes.update({ports[0]: one, ports[1]: two})
        leads = {port: json.loads(http(port, "/healthz")[1])["leader"] for port in ports}
        leader = next(port for port, yes in leads.items() if yes)
        survivor = next(port for port in ports if port != leader)
        staff.port = survivor
        staff.says("/broadcast")
        staff.waits_for("Send the message for partners")
        staff.says(text)
        staff.waits_for_button("All partners")
        staff.presses("All partners")
        staff.waits_for_button("Send to")
        fake.before_call = kill_the_leader_halfway
        staff.presses("Send to")
        processes[leader].wait(timeout=60)
        killed_at = time.monotonic()
        staff.waits_for("recipients:", timeout=60)
        assert time.monotonic() - killed_at < 60  # taken over within a minute
        assert json.loads(http(survivor, "/healthz")[1])["leader"] is True
        time.sleep(1)
    counts = [
        sum(text in m.get("text", "") for m in fake.sent_to(r))
        for r in range(first_recipient, first_recipient + recipients)
    ]
    assert max(counts) == 1  # nobody twice
    assert staff.count("recipients:") == 1  # one report
    report = next(m["text"] for m in fake.sent_to(staff_id) if "recipients:" in m["text"])
    delivered = int(report.split("recipients: ")[1].split(" delivered")[0])
    unconfirmed = int(report.split("failed, ")[1].split(" without")[0])
    assert delivered + unconfirmed == recipients
    assert 1 <= unconfirmed <= WORKERS  # in flight at the kill: never sent again


async def test_a_database_away_for_a_moment_does_not_end_the_lead_until_the_lease_would(
    tmp_path,
):
    clock = ManualClock(dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC))
    shared = await open_resources(
        Settings(_env_file=None, database_url=f"sqlite:///{tmp_path / 'pai.db'}"),  # type: ignore[call-arg]
        clock=clock,
    )
    try:
        leadership = Leadership(shared)
        assert await leadership.renew()
        working = shared.sessions

        def unreachable() -> Any:
            raise OSError("connection refused")

        shared.sessions = unreachable  # type: ignore[assignment]
        clock.advance(dt.timedelta(seconds=10))
        assert await leadership.renew()  # the lease still runs: nobody else can have it
        clock.advance(dt.timedelta(seconds=15))
        assert not await leadership.renew()  # close to its end: stop leading first
        shared.sessions = working
        assert await leadership.renew()
    finally:
        await shared.close()


@pytest.mark.slow
def test_a_webhook_telegram_refuses_stops_run_in_one_sentence(api, tmp_path):
    fake, base_url = api
    fake.failures["setWebhook"] = [
        TelegramError(400, "Bad Request: bad webhook: Failed to resolve host")
    ]
    env = webhook_env(environment(tmp_path, base_url), free_port())
    done = pai_bot(env, tmp_path, "run")
    assert done.returncode == 2
    assert "Telegram refused the webhook: Bad webhook: failed to resolve host" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


async def test_one_users_updates_take_turns_across_instances(postgresql_database):
    """Two instances' locks: the same user's second update waits for the first; another
    user's does not."""
    one, two = UserLocks(postgresql_database), UserLocks(postgresql_database)
    order: list[str] = []
    try:
        first_in = asyncio.Event()

        async def first() -> None:
            async with one.turn(77):
                first_in.set()
                order.append("first in")
                await asyncio.sleep(0.3)
                order.append("first out")

        async def second(user: int) -> None:
            await first_in.wait()
            async with two.turn(user):
                order.append(f"{user} in")

        await asyncio.gather(first(), second(77))
        assert order == ["first in", "first out", "77 in"]
        order.clear()
        first_in.clear()
        await asyncio.gather(first(), second(78))
        assert order == ["first in", "78 in", "first out"]
    finally:
        await one.close()
        await two.close()


@pytest.mark.slow
def test_a_database_restart_gets_users_an_apology_that_needs_no_database(
    api, tmp_path, postgresql_database
):
    """PostgreSQL restarting (every connection dropped, new ones refused for 3 s): users
    writing meanwhile are told the bot cannot save right now, from Telegram's language
    alone; each failure is one log line, no traceback; answers come back after."""
    from tests.tcp_proxy import proxy_to

    fake, base_url = api
    server = make_url(postgresql_database)
    with proxy_to(server.host or "127.0.0.1", server.port or 5432) as proxy:
        through = server.set(port=proxy.port).render_as_string(hide_password=False)
        env = env_for(tmp_path, base_url, through)
        payload = invite_for_acme(env, tmp_path)
        user = User(id=51, language_code="it")
        log = tmp_path / "bot.log"
        with running(env, tmp_path, log):
            fake.user_sends(user, f"/start {payload}")
            wait_for_reply(fake, user, 1)
            down = threading.Thread(target=proxy.restart, args=(3.0,))
            down.start()
            time.sleep(0.3)  # the restart under way
            fake.user_sends(user, "/status")
            [apology] = wait_for_reply(fake, user, 2)[1:]
            assert "non riesce a salvare" in apology["text"]  # Italian: Telegram's word
            down.join()
            fake.user_sends(user, "/help")
            assert "/new" in wait_for_reply(fake, user, 3)[-1]["text"]
        text = log.read_text()
    assert "Traceback" not in text
    assert "Failed to restore" not in text
    failures = [line for line in text.splitlines() if "failed: the database" in line]
    assert len(failures) == 1  # one update failed: one line
