"""End-to-end benchmark: whole `/new` conversations against the real `pai-bot run` process.

Simulated salespeople talk over the project's fake Bot API (bot/app/demo/telegram.py),
served over HTTP on 127.0.0.1 (tests/fake_telegram_server.py), enforcing
`PAI_TELEGRAM_RATE` (30/s by default: sendMessage above it is answered 429), to
`pai-bot run` in long polling, once on SQLite and once on PostgreSQL, each database
seeded first with 10,000 partners (one salesperson each) and 100,000 registrations.
In the same run, the baseline:
python-telegram-bot's bare echo bot (bench/echo_bot.py; polling, same fake, same
PTB, PTB's own HTTP layer) gets the same paced load of text messages; so does the
same echo bot on the bot's HTTP layer (bot/telegram/transport.py), to tell what that layer
saves from what the bot's own work costs. Figures: *CPU per update* is the
process's user+system time (/proc/PID/stat) over the paced phase divided by the
updates it handled, bot against echo bot, and their ratio (goal <= 2x); the same CPU
is also counted from the process's start (start-up spread over the updates, as an
outside `time` counts it) and the part spent idle anyway is said; *message
to answer* runs from the moment the fake queues a user's update to the moment it
receives the bot's call carrying what comes next (the next question, the summary,
the registration; for the echo bot its echo), with 20 salespeople each pausing
2 s between messages: p50 and p95 (goal p95 <= 50 ms; "first reaction" is the
first message or edit of any kind); long polling's getUpdates round trip is in
both. *Saturation*: the same salespeople without pauses: messages sent or edited
per second (what the bot paces) against the limit (goal >= 90%) and the 429s
received (goal 0). *Peak memory* is the bot's VmHWM (/proc/PID/status) at the end
(goal <= 150 MB). *Messages per registration* counts sendMessage, editMessageText
and editMessageReplyMarkup calls to the salespeople's chats over the registrations
completed (goal 7, one per user step). `--quick` shortens every phase and seeds a
tenth; `--profile FILE` runs the bot under cProfile (figures then include its
overhead).

    python -m bench.e2e [--quick] [--databases sqlite,postgresql]
        [--postgres-url postgresql://postgres@127.0.0.1:5432/bench_e2e]
    python -m bench.e2e --memory-updates 100000   # resident memory over 100,000 updates
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import itertools
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import SQLModel

from bench import percentile
from bot.app.demo.telegram import FakeBotApi, User, plain_text
from bot.domain.rules import load_rules
from bot.i18n import catalogue
from bot.storage.database import async_url, make_engine, prepare_sqlite_file, sqlite_file
from bot.storage.schema import create_tables
from tests.factories import italian_vat
from tests.fake_telegram_server import serve_http
from tests.harness import TOKEN, button_data

ROOT = Path(__file__).resolve().parent.parent
SALES_BASE = 9_000_000  # telegram id of the salesperson of partner number n: SALES_BASE + n
ECHO_BASE = 8_000_000
CUSTOMERS = itertools.count(5_000_000)  # serials of the new customers registered
SENT_OR_EDITED = frozenset({"sendMessage", "editMessageText", "editMessageReplyMarkup"})
STEP_TIMEOUT = 60.0
MB = 1024 * 1024


# --- what the fake sees ----------------------------------------------------------


@dataclass(frozen=True)
class Arrival:
    at: float  # time.monotonic() when the call reached the fake
    method: str
    message: dict[str, Any]  # the message as Telegram answers it


class Observer:
    """Every message sent or edited, per chat, with its moment; waiters woken as they come."""

    def __init__(self, api: FakeBotApi, api_url: str) -> None:
        self.api = api
        self.api_url = api_url  # the fake's `…/bot` address, for TELEGRAM_API_BASE_URL
        self._lock = threading.Lock()
        self._chats: dict[int, threading.Condition] = defaultdict(
            lambda: threading.Condition(self._lock)
        )
        self.arrivals: dict[int, list[Arrival]] = defaultdict(list)
        self.polling = threading.Event()
        api.after_call = self.on_call

    def on_call(
        self, method: str, params: dict[str, Any], code: int, body: dict[str, Any], at: float
    ) -> None:
        if method == "getUpdates":
            self.polling.set()
            return
        result = body.get("result")
        chat = params.get("chat_id")
        if code != 200 or method not in SENT_OR_EDITED or chat is None:
            return
        if not isinstance(result, dict):
            return
        with self._lock:
            self.arrivals[int(chat)].append(Arrival(at, method, result))
            self._chats[int(chat)].notify_all()

    def seen(self, chat: int) -> int:
        with self._lock:
            return len(self.arrivals[chat])

    def wait(self, chat: int, since: int, marker: str) -> tuple[Arrival, Arrival]:
        """The first arrival in `chat` after the `since` first ones, and the first with `marker`."""
        deadline = time.monotonic() + STEP_TIMEOUT
        with self._chats[chat]:
            while True:
                new = self.arrivals[chat][since:]
                for arrival in new:
                    if marker in arrival.message.get("text", ""):
                        return new[0], arrival
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    texts = [a.message.get("text", "")[:80] for a in new]
                    raise TimeoutError(f"chat {chat}: no {marker!r} after {texts}")
                self._chats[chat].wait(remaining)

    def between(self, start: float, end: float) -> list[Arrival]:
        with self._lock:
            return [
                a for arrivals in self.arrivals.values() for a in arrivals if start <= a.at < end
            ]


@dataclass
class Steps:
    """Seconds from each update queued to the first reaction and to the answer."""

    first: list[float] = field(default_factory=list)
    answer: list[float] = field(default_factory=list)
    conversations: int = 0

    def add(self, other: Steps) -> None:
        self.first += other.first
        self.answer += other.answer
        self.conversations += other.conversations


def marker(key: str) -> str:
    """What identifies the catalogue's message `key`: its first line, up to a placeholder."""
    first_line = catalogue("en")[key].splitlines()[0]
    return plain_text(first_line).split("{")[0].strip()


class Talker:
    """One simulated user: sends or presses, then waits for the answer it expects."""

    def __init__(self, observer: Observer, user_id: int, pause: float) -> None:
        self.observer = observer
        self.api = observer.api
        self.user = User(id=user_id, first_name="Giulia", language_code="en")
        self.pause = pause
        self.steps = Steps()

    def converse(self) -> None:
        raise NotImplementedError

    def say(self, text: str, expect: str) -> dict[str, Any]:
        since = self.observer.seen(self.user.id)
        update = self.api.user_sends(self.user, text)
        return self._answered(update, since, expect)

    def press(self, message: dict[str, Any], label: str, expect: str) -> dict[str, Any]:
        since = self.observer.seen(self.user.id)
        update = self.api.user_presses(self.user, message, button_data(message, label))
        return self._answered(update, since, expect)

    def _answered(self, update: dict[str, Any], since: int, expect: str) -> dict[str, Any]:
        first, answer = self.observer.wait(self.user.id, since, expect)
        queued = self.api.queued_at[update["update_id"]]
        self.steps.first.append(first.at - queued)
        self.steps.answer.append(answer.at - queued)
        if self.pause:
            time.sleep(self.pause)
        return answer.message


class Salesperson(Talker):
    ASK_VAT, ASK_COMPANY, ASK_VALUE = marker("ask_vat"), marker("ask_company"), marker("ask_value")
    ASK_PRODUCT, ASK_CLOSE = marker("ask_product"), marker("ask_close")
    SUMMARY, REGISTERED = marker("summary"), marker("registered")

    def converse(self) -> None:
        """Register one new customer, unknown to the vendor: the seven steps of /new."""
        self.say("/new", self.ASK_VAT)
        self.say(italian_vat(next(CUSTOMERS)), self.ASK_COMPANY)
        self.say("Rossi Impianti S.r.l.", self.ASK_VALUE)
        self.say("12500", self.ASK_PRODUCT)
        ask_close = self.say("Accounting suite, 10 users", self.ASK_CLOSE)
        summary = self.press(ask_close, "30 days", self.SUMMARY)
        self.press(summary, "Confirm", self.REGISTERED)
        self.steps.conversations += 1


class EchoUser(Talker):
    serial = itertools.count()

    def converse(self) -> None:
        """Seven messages, as many as the steps of /new, each waiting for its echo."""
        for _ in range(7):
            words = f"Echo {next(self.serial)}"
            self.say(words, words)
        self.steps.conversations += 1


def talk(
    make: Callable[[int], Talker],
    users: list[int],
    *,
    conversations: int = 0,
    until: float = 0.0,
    pause: float = 0.0,
) -> Steps:
    """Every user at once: `conversations` each, or as many as start before `until`."""

    def one(user: int) -> Steps:
        talker = make(user)
        if pause:  # users do not all type at the same instant
            time.sleep(random.uniform(0, pause))
        done = 0
        while done < conversations if conversations else time.monotonic() < until:
            talker.converse()
            done += 1
        return talker.steps

    total = Steps()
    with ThreadPoolExecutor(max_workers=len(users)) as pool:
        for steps in pool.map(one, users):
            total.add(steps)
    return total


# --- the processes ---------------------------------------------------------------


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def settle(pid: int, within: float = 60.0) -> None:
    """Wait until the process is idle: under 2% of a CPU over half a second."""
    deadline = time.monotonic() + within
    used = cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = cpu_seconds(pid)
        if now - used <= 0.01:
            return
        used = now


def busiest_second(moments: list[float]) -> int:
    """The most moments in any one second (a window sliding over them)."""
    ordered = sorted(moments)
    most, first = 0, 0
    for last, moment in enumerate(ordered):
        while moment - ordered[first] >= 1.0:
            first += 1
        most = max(most, last - first + 1)
    return most


def peak_memory(pid: int) -> int:
    """The process's peak resident memory (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc: not Linux?")


def resident_memory(pid: int) -> int:
    """The process's resident memory now (VmRSS), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc: not Linux?")


@contextmanager
def served() -> Iterator[Observer]:
    api = FakeBotApi()
    server, api_url = serve_http(api, TOKEN, keep_alive=True)  # as Telegram keeps them
    try:
        yield Observer(api, api_url)
    finally:
        server.shutdown()
        server.server_close()


def environment(api_url: str, database_url: str, rate: float) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "PAI_"))}
    # As deploy/ and the Dockerfile run the bot (unless the caller says otherwise).
    env.setdefault("MALLOC_ARENA_MAX", "2")
    env.update(
        TELEGRAM_BOT_TOKEN=TOKEN,
        TELEGRAM_API_BASE_URL=api_url,
        DATABASE_URL=database_url,
        PAI_TELEGRAM_RATE=f"{rate:g}",
        PYTHONPATH=str(ROOT),
    )
    return env


@contextmanager
def running(
    command: list[str], env: dict[str, str], folder: Path, observer: Observer, name: str
) -> Iterator[subprocess.Popen[bytes]]:
    """Start `command`, wait until it polls the fake, stop it with SIGINT at the end."""
    log = folder / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=env, cwd=folder, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        if not observer.polling.wait(timeout=120) or process.poll() is not None:
            raise RuntimeError(f"{name} did not start:\n{log.read_text()[-3000:]}")
        settle(process.pid)  # start-up work (the reminders tick at start) is over
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# --- the database ----------------------------------------------------------------


async def fresh_database(url: str) -> None:
    """An empty database at `url`: the SQLite file removed, the PostgreSQL one recreated."""
    path = sqlite_file(url)
    if path is not None:
        for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            leftover.unlink(missing_ok=True)
        prepare_sqlite_file(url, must_exist=False)
        return
    name = make_url(url).database
    admin = create_async_engine(
        async_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT"
    )
    async with admin.connect() as connection:
        await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()


def make_schema(url: str, env: dict[str, str], folder: Path) -> str:
    """The current schema, by `pai-bot migrate` where the CLI has it; say which way."""
    done = subprocess.run(
        [sys.executable, "-m", "bot.app.cli", "migrate"],
        env=env,
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode == 0:
        return "pai-bot migrate"
    if "invalid choice" not in done.stderr:
        raise RuntimeError(f"pai-bot migrate failed:\n{done.stderr[-3000:]}")

    async def create() -> None:
        engine = make_engine(url)
        await create_tables(engine)
        await engine.dispose()

    asyncio.run(create())
    return "create_tables"


async def seed(url: str, partners: int, registrations: int) -> None:
    """Partners with one salesperson each, and their recent registrations, in bulk.

    Every partner registered within the last 20 days and every deal closes later:
    no reminder is due, so nothing but the conversations reaches the chats.
    """
    rules = load_rules()
    now = dt.datetime.now(dt.UTC)
    today = rules.today(now)
    linked = now - dt.timedelta(days=200)
    tables = SQLModel.metadata.tables
    partner, salesperson = tables["partner"], tables["salesperson"]
    engine = make_engine(url)
    async with engine.begin() as connection:
        await connection.execute(
            insert(partner),
            [
                {
                    "code": f"P{n:05d}",
                    "company": f"Partner {n} S.r.l.",
                    "level": "gold",
                    "created_at": linked,
                    "updated_at": linked,
                }
                for n in range(partners)
            ],
        )
        partner_ids = list(
            (await connection.execute(select(partner.c.id).order_by(partner.c.code))).scalars()
        )
        await connection.execute(
            insert(salesperson),
            [
                {
                    "telegram_user_id": SALES_BASE + n,
                    "partner_id": partner_id,
                    "telegram_language": "en",
                    "display_name": f"Seller {n}",
                    "reminders_enabled": True,
                    "linked_at": linked,
                }
                for n, partner_id in enumerate(partner_ids)
            ],
        )
        people = list(
            (
                await connection.execute(
                    select(salesperson.c.id, salesperson.c.partner_id).order_by(
                        salesperson.c.telegram_user_id
                    )
                )
            ).all()
        )
        for start in range(0, registrations, 10_000):
            rows = []
            for index in range(start, min(start + 10_000, registrations)):
                person_id, partner_id = people[index % len(people)]
                day = today - dt.timedelta(days=index % 20)
                vat = italian_vat(index)
                rows.append(
                    {
                        "reference": f"PAI-{index:06d}",
                        "partner_id": partner_id,
                        "salesperson_id": person_id,
                        "vat": vat,
                        "customer_name": f"Cliente {index} S.r.l.",
                        "registered_on": day,
                        "created_at": now - dt.timedelta(days=index % 20),
                        "updated_at": now - dt.timedelta(days=index % 20),
                        "protected_until": day + dt.timedelta(days=90),
                        "protection_key": vat,
                        "status": "qualified",
                        "deal_value": Decimal("12500.00"),
                        "product": "Accounting suite",
                        "expected_close": today + dt.timedelta(days=30 + index % 60),
                        "incentive_amount": Decimal("500.00"),
                        "currency": "EUR",
                        "incentive_version": dt.date(2025, 7, 1),
                        "level": "gold",
                        "loyalty_count": 0,
                    }
                )
            await connection.execute(insert(tables["registration"]), rows)
    async with engine.connect() as connection:
        await connection.execute(text("ANALYZE"))
        await connection.commit()
    await engine.dispose()


# --- the runs --------------------------------------------------------------------


@dataclass
class Figures:
    name: str
    cpu_per_update: float = 0.0
    cpu: CpuAccount = field(default_factory=lambda: CpuAccount())
    paced: Steps = field(default_factory=Steps)
    saturated: Steps = field(default_factory=Steps)
    cpu_per_update_saturated: float = 0.0
    rate: float = 0.0  # messages sent or edited a second at saturation
    send_rate: float = 0.0  # of which sendMessage
    busiest: tuple[int, int] = (0, 0)  # the most sent or edited, sendMessage, in one second
    too_many: int = 0
    peak: int = 0
    messages: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Plan:
    salespeople: int
    pause: float
    paced_conversations: int
    saturation_seconds: float
    partners: int
    registrations: int
    rate: float
    profile: Path | None


@dataclass
class CpuAccount:
    """Where a process's CPU went, to tell the ways of counting it per update apart."""

    startup: float = 0.0  # seconds of CPU from the process's start until it was idle
    idle_per_second: float = 0.0  # CPU a second with nobody writing (polling, leases, ticks)
    phase: float = 0.0  # seconds of CPU over the paced phase
    phase_seconds: float = 0.0  # its length
    updates: int = 0  # updates the paced phase brought

    def per_update(self) -> float:
        """The paced phase's CPU over its updates: what the goal is judged on."""
        return self.phase / self.updates

    def from_start(self) -> float:
        """Counted from the process's start, as `time` or `ps` outside would count it."""
        return (self.startup + self.phase) / self.updates

    def background(self) -> float:
        """The part of `per_update` the process spends idle anyway, while users pause."""
        return self.idle_per_second * self.phase_seconds / self.updates


IDLE_SECONDS = 5.0


def measure_paced(
    observer: Observer, pid: int, make: Callable[[int], Talker], users: list[int], plan: Plan
) -> tuple[Steps, CpuAccount]:
    """The paced phase: its steps and where the process's CPU went."""
    account = CpuAccount(startup=cpu_seconds(pid))
    time.sleep(IDLE_SECONDS)  # nobody writes: what runs by itself
    account.idle_per_second = (cpu_seconds(pid) - account.startup) / IDLE_SECONDS
    queued = len(observer.api.queued_at)
    cpu, started = cpu_seconds(pid), time.monotonic()
    steps = talk(make, users, conversations=plan.paced_conversations, pause=plan.pause)
    account.updates = len(observer.api.queued_at) - queued
    account.phase = cpu_seconds(pid) - cpu
    account.phase_seconds = time.monotonic() - started
    return steps, account


def run_echo(plan: Plan, folder: Path, transport: str = "httpx") -> Figures:
    figures = Figures(f"echo bot ({transport})")
    with served() as observer:
        env = environment(observer.api_url, "sqlite://", plan.rate) | {"ECHO_TRANSPORT": transport}
        observer.api.rate_limit = plan.rate
        command = [sys.executable, "-m", "bench.echo_bot"]
        with running(command, env, folder, observer, "echo") as process:
            users = [ECHO_BASE + n for n in range(plan.salespeople)]
            figures.paced, figures.cpu = measure_paced(
                observer,
                process.pid,
                lambda user: EchoUser(observer, user, plan.pause),
                users,
                plan,
            )
            figures.cpu_per_update = figures.cpu.per_update()
            figures.peak = peak_memory(process.pid)
    return figures


def run_bot(name: str, url: str, plan: Plan, folder: Path) -> Figures:
    figures = Figures(name)
    with served() as observer:
        api = observer.api
        env = environment(observer.api_url, url, plan.rate)
        started = time.perf_counter()
        asyncio.run(fresh_database(url))
        how = make_schema(url, env, folder)
        asyncio.run(seed(url, plan.partners, plan.registrations))
        figures.notes.append(
            f"schema by {how}; seeded {plan.partners:,} partners (one salesperson each) and "
            f"{plan.registrations:,} registrations in {time.perf_counter() - started:.1f} s"
        )
        api.rate_limit = plan.rate
        command = [sys.executable, "-m", "bot.app.cli", "run"]
        if plan.profile is not None:
            profile = plan.profile.with_suffix(f".{name}{plan.profile.suffix}")
            command[1:1] = ["-m", "cProfile", "-o", str(profile.resolve())]
            figures.notes.append(f"under cProfile: {profile}")
        users = [SALES_BASE + n for n in range(plan.salespeople)]
        with running(command, env, folder, observer, name) as process:
            figures.paced, figures.cpu = measure_paced(
                observer,
                process.pid,
                lambda user: Salesperson(observer, user, plan.pause),
                users,
                plan,
            )
            figures.cpu_per_update = figures.cpu.per_update()
            too_many = api.too_many
            queued = len(api.queued_at)
            cpu = cpu_seconds(process.pid)
            start = time.monotonic()
            until = start + plan.saturation_seconds
            figures.saturated = talk(
                lambda user: Salesperson(observer, user, 0.0), users, until=until
            )
            figures.cpu_per_update_saturated = (cpu_seconds(process.pid) - cpu) / (
                len(api.queued_at) - queued
            )
            figures.too_many = api.too_many - too_many
            warm = start + min(2.0, plan.saturation_seconds / 4)
            window = observer.between(warm, until)
            figures.rate = len(window) / (until - warm)
            figures.send_rate = sum(a.method == "sendMessage" for a in window) / (until - warm)
            figures.busiest = (
                busiest_second([a.at for a in window]),
                busiest_second([a.at for a in window if a.method == "sendMessage"]),
            )
            figures.peak = peak_memory(process.pid)
        log = (folder / f"{name}.log").read_text(errors="replace")
        if "Traceback" in log or " ERROR " in log:
            figures.notes.append(f"the bot's log has errors: {log[-1500:]}")
        counts: dict[str, int] = defaultdict(int)
        for user in users:
            for arrival in observer.arrivals[user]:
                counts[arrival.method] += 1
        figures.messages = dict(counts)
    return figures


def run_memory(name: str, url: str, plan: Plan, folder: Path, updates: int) -> str:
    """`updates` updates of whole conversations without pauses and without a rate limit:
    the bot's resident memory after the first half and at the end."""
    with served() as observer:
        api = observer.api
        env = environment(observer.api_url, url, 1e6)
        asyncio.run(fresh_database(url))
        make_schema(url, env, folder)
        asyncio.run(seed(url, plan.partners, plan.registrations))
        users = [SALES_BASE + n for n in range(plan.salespeople)]
        command = [sys.executable, "-m", "bot.app.cli", "run"]
        with running(command, env, folder, observer, f"{name}-memory") as process:
            start, started = resident_memory(process.pid), time.monotonic()
            first = len(api.queued_at)
            half = 0
            while (done := len(api.queued_at) - first) < updates:
                if not half and done >= updates // 2:
                    half = resident_memory(process.pid)
                talk(lambda user: Salesperson(observer, user, 0.0), users, conversations=1)
            end = resident_memory(process.pid)
            seconds = time.monotonic() - started
    growth = (end - half) / half
    return (
        f"== memory on {name}: {done:,} updates in {seconds:.0f} s; resident memory "
        f"{start / MB:.0f} MB at the start, {half / MB:.0f} MB after half, {end / MB:.0f} MB "
        f"at the end (goal <= 150 MB), {growth:+.1%} over the second half (goal <= 10 %)"
    )


# --- the report ------------------------------------------------------------------


def ms(samples: list[float], fraction: float) -> str:
    return f"{percentile(samples, fraction) * 1000:.0f} ms"


def report_echo(echo: Figures, plan: Plan) -> None:
    steps = echo.paced
    print("== echo bot (baseline): python-telegram-bot echo, same fake, same PTB, polling")
    print(
        f"  {len(steps.answer)} messages from {plan.salespeople} users pausing "
        f"{plan.pause:g} s: message to echo p50 {ms(steps.answer, 0.5)}, "
        f"p95 {ms(steps.answer, 0.95)}"
    )
    print(f"  CPU per update: {echo.cpu_per_update * 1000:.2f} ms")
    print(f"  {cpu_counted(echo.cpu)}")
    print(f"  peak memory: {echo.peak / MB:.0f} MB")


def report_echo_on_aiohttp(echo: Figures) -> None:
    print(
        "== the same echo bot on the bot's HTTP layer (bot/telegram/transport.py, aiohttp): "
        f"CPU per update {echo.cpu_per_update * 1000:.2f} ms"
    )
    print(f"  {cpu_counted(echo.cpu)}")


def cpu_counted(cpu: CpuAccount) -> str:
    """The same CPU counted the other ways: from the process's start (start-up spread
    over the updates), and the share that runs whether anyone writes or not."""
    return (
        f"counted from the process's start: {cpu.from_start() * 1000:.2f} ms an update "
        f"({cpu.startup:.2f} s of start-up over {cpu.updates} updates); idle it spends "
        f"{cpu.idle_per_second * 1000:.1f} ms a second, {cpu.background() * 1000:.2f} ms "
        f"of each update's figure over the {cpu.phase_seconds:.0f} s phase"
    )


def report_bot(bot: Figures, echo: Figures, echo_aiohttp: Figures, plan: Plan) -> None:
    print(f"== pai-bot run on {bot.name}")
    for note in bot.notes:
        print(f"  {note}")
    paced, saturated = bot.paced, bot.saturated
    ratio = bot.cpu_per_update / echo.cpu_per_update
    print(
        f"  CPU per update: {bot.cpu_per_update * 1000:.2f} ms against the echo bot's "
        f"{echo.cpu_per_update * 1000:.2f} ms: {ratio:.1f}x (goal <= 2x); "
        f"at saturation {bot.cpu_per_update_saturated * 1000:.2f} ms; "
        f"{bot.cpu_per_update / echo_aiohttp.cpu_per_update:.1f}x the echo bot on the same "
        "HTTP layer"
    )
    print(f"  {cpu_counted(bot.cpu)}")
    print(
        "  counted from each process's start, the ratio to the echo bot on the same HTTP "
        f"layer is {bot.cpu.from_start() / echo_aiohttp.cpu.from_start():.1f}x"
    )
    print(
        f"  {paced.conversations} registrations, {plan.salespeople} salespeople pausing "
        f"{plan.pause:g} s: message to answer p50 {ms(paced.answer, 0.5)}, "
        f"p95 {ms(paced.answer, 0.95)} (goal <= 50 ms; echo bot p95 "
        f"{ms(echo.paced.answer, 0.95)}); to the first reaction p95 {ms(paced.first, 0.95)}"
    )
    print(
        f"  saturation, {plan.salespeople} salespeople without pauses for "
        f"{plan.saturation_seconds:g} s: {bot.rate:.1f} messages sent or edited/s = "
        f"{bot.rate / plan.rate:.0%} of the {plan.rate:g}/s limit (goal >= 90%), "
        f"{bot.send_rate:.1f}/s of them sendMessage; busiest second {bot.busiest[0]} sent or "
        f"edited, {bot.busiest[1]} sendMessage; 429s received: {bot.too_many} (goal 0); "
        f"{saturated.conversations} registrations, message to answer p95 "
        f"{ms(saturated.answer, 0.95)}"
    )
    print(
        f"  peak memory (VmHWM) with {plan.partners:,} partners and "
        f"{plan.registrations:,} registrations: {bot.peak / MB:.0f} MB (goal <= 150 MB; "
        f"echo bot {echo.peak / MB:.0f} MB)"
    )
    registrations = paced.conversations + saturated.conversations
    total = sum(bot.messages.values())
    kinds = ", ".join(f"{n} {method}" for method, n in sorted(bot.messages.items()))
    print(
        f"  messages sent or edited per registration: {total / registrations:.2f} "
        f"(goal 7, one per user step; {kinds} for {registrations} registrations)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="short phases, a tenth of the data")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/bench_e2e")
    parser.add_argument("--salespeople", type=int, default=20)
    parser.add_argument("--pause", type=float, default=2.0)
    parser.add_argument("--rate", type=float, default=30.0, help="PAI_TELEGRAM_RATE")
    parser.add_argument("--profile", type=Path, help="run the bot under cProfile, to FILE")
    parser.add_argument(
        "--memory-updates",
        type=int,
        default=0,
        metavar="N",
        help="only the memory figure: the bot's resident memory over N updates (100000)",
    )
    args = parser.parse_args()
    plan = Plan(
        salespeople=args.salespeople,
        pause=args.pause,
        paced_conversations=1 if args.quick else 2,
        saturation_seconds=10.0 if args.quick else 25.0,
        partners=1_000 if args.quick else 10_000,
        registrations=10_000 if args.quick else 100_000,
        rate=args.rate,
        profile=args.profile,
    )
    random.seed(7)
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        if args.memory_updates:
            for database in args.databases.split(","):
                url = (
                    args.postgres_url if database == "postgresql" else f"sqlite:///{folder}/e2e.db"
                )
                print(run_memory(database, url, plan, folder, args.memory_updates), flush=True)
            return
        echo = run_echo(plan, folder)
        report_echo(echo, plan)
        echo_aiohttp = run_echo(plan, folder, transport="aiohttp")
        report_echo_on_aiohttp(echo_aiohttp)
        for database in args.databases.split(","):
            url = args.postgres_url if database == "postgresql" else f"sqlite:///{folder}/e2e.db"
            figures = run_bot(database, url, plan, folder)
            report_bot(figures, echo, echo_aiohttp, plan)


if __name__ == "__main__":
    main()
