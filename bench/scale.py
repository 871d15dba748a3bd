r"""Scale benchmark: a hundred times the seed programme, on PostgreSQL (PRODUCT.md §9).

Builds the data set in the database pai_scale: 45,000 partners, 90,000 salespeople,
1,000,000 customers, 10,000,000 purchases and 200,000 registrations (each times
--fraction), saying how each part was built:
- partners: a CSV file through the real CLI, `pai-bot import-partners`, after
  `pai-bot migrate`;
- purchases: a CSV file in date order, as an ERP exports it, each row a customer drawn
  at random (valid Italian VAT numbers; Italian-looking names from bench/similar.py's
  generator, 3% of them near-duplicates of others), through `pai-bot import-purchases`:
  that import is the first figure;
- salespeople (two a partner) and registrations (half for customers in the history, half
  of those under the name typed with a slip; half for new customers): COPY straight
  into the tables.
The files stay in --folder and are reused while they have the right number of lines.

Then prints each figure beside its floor, measured in the same run:
- `import-purchases` of the purchases file: wall time and peak RSS of the CLI process
  (from wait4) against `psql \copy` of the same file into a bare table of three text
  columns, timed the same way (goal <= 60 s and <= 2x the floor, RSS <= 300 MB); and the
  same file imported again, every row unchanged;
- similar names (`similar_customers`) by bench/similar.py's method: one session a
  look-up, a quarter of them for planted near-duplicates, in runs alternating with the
  floor, the exact-VAT look-up (goal p95 <= 20 ms);
- reminders as bench/reminders.py measures them, on a weekday morning: computing what
  is due for every salesperson (`due_reminders`, goal <= 2 s), the first tick sending
  all of it to the fake Bot API in process, then a tick with nothing new (goal <= 1 s).
  The reminder rows of an earlier run are deleted first, so a rerun sees the same;
- the `/check` answer through the fake Bot API in process (tests/harness.py: the update
  queue, the handler, the service and the sendMessage call, timed from the update
  queued to the call reaching the fake; no HTTP and no polling, which bench/e2e.py
  has), at full size against the same bot on pai_scale_small, the seed programme with
  1,000 purchases (goal p95 <= 2x the small one and <= 50 ms).
It ends with a table: figure | measured | floor | ratio | goal | met?

Then runs the benches that measure the rest, each as its own process, echoes their
output and reads their figures back into the table:
- bench/broadcast.py: a paid broadcast to every salesperson (90,000) against a fake
  that allows 1,000 a second, on PostgreSQL (pai_scale_broadcast), while 20 salespeople
  register: the rate against the fake's limit (goal >= 90 %), duplicates (0), the
  answers' p95 during it against without it (goal <= 1 s);
- bench/e2e.py --quick on PostgreSQL: CPU per update against the echo bot on the same
  HTTP layer (goal <= 2x), the answer's p95 with 20 salespeople pausing 2 s against the
  echo bot's (goal <= 50 ms);
- bench/e2e.py --memory-updates on SQLite: resident memory after 100,000 updates
  (times --fraction; goal <= 150 MB, growth <= 10 % over the second half).

    python -m bench.scale [--fraction 1.0] [--skip-build] [--skip-others] [--folder /tmp/scale]

--fraction multiplies every size (0.01 runs in a minute; the full size takes 10-20
minutes). --skip-build reuses the data set and files of an earlier run with the same
fraction: the first import is then not measured. The databases are left for a rerun.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import itertools
import os
import random
import re
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bench import percentile
from bench.e2e import ROOT, SALES_BASE, environment, fresh_database, make_schema
from bench.reminders import reference_of
from bench.similar import NameMaker, Names, make_names, plain_url, timed_lookups
from bot.app.demo.telegram import FakeBotApi
from bot.domain.names import name_block
from bot.domain.rules import load_rules
from bot.jobs.reminders import run_tick
from bot.services.reminders import due_reminders
from models import NAME_LENGTH
from tests.factories import italian_vat
from tests.harness import START, Harness, running_bot

SCALE_URL = "postgresql://postgres@127.0.0.1:5432/pai_scale"
SMALL_URL = "postgresql://postgres@127.0.0.1:5432/pai_scale_small"
# The tests' moment, a Tuesday morning in Rome (reminders may go out), is the data set's
# today: the history ends on it, the registrations lead up to it.
TODAY = START.date()
HISTORY_STARTS = dt.date(2019, 1, 1)
MB = 1024 * 1024
SIMILAR_LOOKUPS = 200
CHECKS = 1000
WARM_UP = 100
# The amounts of rules.toml's version of 2025-07-01, in cents, by level.
INCENTIVE_CENTS = {"gold": 50_000, "certified": 30_000, "registered": 15_000}


@dataclass(frozen=True)
class Sizes:
    partners: int
    salespeople: int
    customers: int
    purchases: int
    registrations: int

    def scaled(self, fraction: float) -> Sizes:
        def times(count: int) -> int:
            return max(1, round(count * fraction))

        return Sizes(
            partners=times(self.partners),
            salespeople=times(self.salespeople),
            customers=times(self.customers),
            purchases=times(self.purchases),
            registrations=times(self.registrations),
        )

    def described(self) -> str:
        return (
            f"{self.partners:,} partners, {self.salespeople:,} salespeople, "
            f"{self.customers:,} customers, {self.purchases:,} purchases, "
            f"{self.registrations:,} registrations"
        )


FULL = Sizes(45_000, 90_000, 1_000_000, 10_000_000, 200_000)
# The small database the /check answer is compared with: the seed programme (450
# partners, 2,000 deals) with 1,000 purchases.
SEED_PROGRAMME = Sizes(450, 900, 1_000, 1_000, 2_000)


@dataclass(frozen=True)
class Figure:
    """One row of the closing table."""

    name: str
    measured: str
    floor: str = "-"
    ratio: str = "-"
    goal: str = "-"
    met: bool | None = None


def say(line: str) -> None:
    print(line, flush=True)


# --- the files ---------------------------------------------------------------------


def has_lines(path: Path, lines: int) -> bool:
    """Whether `path` exists with `lines` lines: a complete file from an earlier run."""
    if not path.exists():
        return False
    count = 0
    with path.open("rb") as data:
        while chunk := data.read(1 << 20):
            count += chunk.count(b"\n")
    return count == lines


def write_whole(path: Path, chunks: Iterable[str]) -> None:
    """Write beside the place, then move there: the cache never holds half a file."""
    part = path.with_suffix(".part")
    with part.open("w", encoding="utf-8", newline="") as out:
        out.writelines(chunks)
    part.replace(path)


def csv_cell(value: str) -> str:
    """The value as a CSV cell: quoted only when it holds a comma, a quote or a newline."""
    if any(mark in value for mark in ',"\n\r'):
        return '"' + value.replace('"', '""') + '"'
    return value


def partner_file(folder: Path, sizes: Sizes, levels: Sequence[str]) -> tuple[Path, str]:
    """The partner list (code, company, level in turn); the file and whether it was reused."""
    path = folder / f"partners-{sizes.partners}.csv"
    if has_lines(path, sizes.partners + 1):
        return path, "reused"
    maker = NameMaker(3)
    rows = (
        f"P{number:05d},{csv_cell(maker.name())},{levels[number % len(levels)]}\n"
        for number in range(sizes.partners)
    )
    write_whole(path, itertools.chain(["code,company,level\n"], rows))
    return path, "written"


def purchase_file(folder: Path, sizes: Sizes, names: Names) -> tuple[Path, str]:
    """The sales history; the file and whether it was reused."""
    path = folder / f"purchases-{sizes.purchases}-of-{sizes.customers}.csv"
    if has_lines(path, sizes.purchases + 1):
        return path, "reused"
    write_whole(path, purchase_lines(sizes, names))
    return path, "written"


def purchase_lines(sizes: Sizes, names: Names) -> Iterator[str]:
    """The header, then the purchases day by day from HISTORY_STARTS to TODAY, as an ERP
    exports them, each by a customer drawn at random: its VAT number, name and the day."""
    rng = random.Random(23)
    starts = [f"{italian_vat(serial)},{csv_cell(name)}," for serial, name in enumerate(names.rows)]
    customers = range(len(starts))
    days = (TODAY - HISTORY_STARTS).days + 1
    yield "vat,customer_name,purchase_date\n"
    for day in range(days):
        count = sizes.purchases * (day + 1) // days - sizes.purchases * day // days
        date = f"{HISTORY_STARTS + dt.timedelta(days=day)}\n"
        yield "".join(starts[customer] + date for customer in rng.choices(customers, k=count))


# --- the processes -----------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """A command run to its end: wall seconds, peak resident memory, what it printed."""

    seconds: float
    peak_rss: int  # bytes
    output: str

    @property
    def summary(self) -> str:
        lines = self.output.strip().splitlines()
        return lines[-1] if lines else ""


def run_measured(command: Sequence[str], env: dict[str, str], folder: Path) -> Run:
    """Run `command` to its end, timed, its peak RSS as GNU time reads it from the kernel.

    Not wait4 from here: a child's peak counts the memory it had before exec, a copy of
    this process's (hundreds of MB of names); GNU time's child is forked from a small one.
    """
    log, peak = folder / "command.log", folder / "command.peak"
    with log.open("wb") as out:
        started = time.perf_counter()
        done = subprocess.run(
            ["/usr/bin/time", "-f", "%M", "-o", str(peak), *command],
            env=env,
            cwd=folder,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
        seconds = time.perf_counter() - started
    output = log.read_text(errors="replace")
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}:\n{output[-3000:]}")
    kib = int(peak.read_text().split()[-1])  # the last line: time says more when it fails
    return Run(seconds, kib * 1024, output)


def pai_bot(*arguments: str) -> list[str]:
    """The installed `pai-bot` command, as staff run it."""
    installed = Path(sys.executable).with_name("pai-bot")
    if installed.exists():
        return [str(installed), *arguments]
    return [sys.executable, "-m", "bot.app.cli", *arguments]


def cli_environment(url: str) -> dict[str, str]:
    # The imports call no Bot API: the address is never used.
    return environment("http://127.0.0.1:9/bot", url, 30.0)


def psql(url: str, command: str) -> list[str]:
    database = make_url(url).database or ""
    connection = ["-h", "127.0.0.1", "-U", "postgres", "-X", "-q", "-v", "ON_ERROR_STOP=1"]
    return ["psql", *connection, database, "-c", command]


def import_purchases(url: str, path: Path, folder: Path) -> Run:
    return run_measured(pai_bot("import-purchases", str(path)), cli_environment(url), folder)


# --- building the data set ---------------------------------------------------------


def build(url: str, sizes: Sizes, names: Names, folder: Path) -> Run:
    """The data set at `url`, from an empty database, each part said as it is built;
    the first import of the purchases."""
    rules = load_rules()
    env = cli_environment(url)
    asyncio.run(fresh_database(url))
    say(f"  schema: {make_schema(url, env, folder)}")
    path, how = partner_file(folder, sizes, rules.levels)
    run = run_measured(pai_bot("import-partners", str(path)), env, folder)
    say(
        f"  partners: {path.name} ({how}) through `pai-bot import-partners` in "
        f"{run.seconds:.1f} s: {run.summary}"
    )
    started = time.perf_counter()
    asyncio.run(add_salespeople(url, sizes))
    say(
        f"  salespeople: {sizes.salespeople:,} COPYed into the table in "
        f"{time.perf_counter() - started:.1f} s"
    )
    started = time.perf_counter()
    path, how = purchase_file(folder, sizes, names)
    say(
        f"  purchases: {path.name} ({how} in {time.perf_counter() - started:.1f} s, "
        f"{path.stat().st_size / MB:,.0f} MB), in date order"
    )
    first = import_purchases(url, path, folder)
    say(
        f"    through `pai-bot import-purchases` in {first.seconds:.1f} s, peak RSS "
        f"{first.peak_rss / MB:.0f} MB: {first.summary}"
    )
    started = time.perf_counter()
    asyncio.run(add_registrations(url, sizes, names))
    say(
        f"  registrations: {sizes.registrations:,} COPYed into the table, then ANALYZE, in "
        f"{time.perf_counter() - started:.1f} s"
    )
    return first


async def add_salespeople(url: str, sizes: Sizes) -> None:
    """Salespeople spread over the partners in turn, linked 300 days ago."""
    linked = START - dt.timedelta(days=300)
    connection = await asyncpg.connect(plain_url(url))
    try:
        partners = [
            row["id"] for row in await connection.fetch("SELECT id FROM partner ORDER BY code")
        ]
        await connection.copy_records_to_table(
            "salesperson",
            records=[
                (
                    SALES_BASE + number,
                    partners[number % len(partners)],
                    ("it", "en")[number % 2],
                    f"Venditore {number}",
                    True,
                    linked,
                )
                for number in range(sizes.salespeople)
            ],
            columns=[
                "telegram_user_id",
                "partner_id",
                "telegram_language",
                "display_name",
                "reminders_enabled",
                "linked_at",
            ],
        )
    finally:
        await connection.close()


REGISTRATION_COLUMNS = [
    "reference",
    "partner_id",
    "salesperson_id",
    "vat",
    "customer_name",
    "name_block",
    "registered_on",
    "created_at",
    "updated_at",
    "protected_until",
    "protection_key",
    "status",
    "deal_value",
    "product",
    "expected_close",
    "incentive_amount",
    "currency",
    "incentive_version",
    "level",
    "loyalty_count",
]


async def add_registrations(url: str, sizes: Sizes, names: Names) -> None:
    connection = await asyncpg.connect(plain_url(url))
    try:
        partners = [
            (row["id"], row["level"])
            for row in await connection.fetch("SELECT id, level FROM partner")
        ]
        people: dict[int, list[int]] = {}
        for row in await connection.fetch("SELECT id, partner_id FROM salesperson"):
            people.setdefault(row["partner_id"], []).append(row["id"])
        await connection.copy_records_to_table(
            "registration",
            records=registration_rows(sizes, names, partners, people),
            columns=REGISTRATION_COLUMNS,
        )
        await connection.execute("ANALYZE")
    finally:
        await connection.close()


def registration_rows(
    sizes: Sizes, names: Names, partners: list[tuple[int, str]], people: dict[int, list[int]]
) -> Iterator[tuple[Any, ...]]:
    """Registrations over the last 400 days, statuses as bench/reminders.py draws them:
    the first half for customers of the history (half of those under the name typed
    with a slip), the rest for new customers."""
    rng = random.Random(5)
    maker = NameMaker(17)
    known = rng.sample(range(sizes.customers), min(sizes.registrations // 2, sizes.customers))
    for serial in range(sizes.registrations):
        if serial < len(known):
            vat, name = italian_vat(known[serial]), names.rows[known[serial]]
            if rng.random() < 0.5:
                name = maker.near_duplicate(name)[0]
        else:
            vat, name = italian_vat(sizes.customers + serial), maker.name()
        name = name[:NAME_LENGTH]
        registered = TODAY - dt.timedelta(days=rng.randrange(400))
        until = registered + dt.timedelta(days=90)
        open_ = until >= TODAY and rng.random() < 0.7
        status = "qualified" if open_ else rng.choice(["won", "lost", "expired"])
        protects = status in ("qualified", "won") and until >= TODAY
        partner, level = rng.choice(partners)
        stamp = dt.datetime.combine(registered, dt.time(10), tzinfo=dt.UTC)
        yield (
            reference_of(serial),
            partner,
            rng.choice(people[partner]) if partner in people else None,
            vat,
            name,
            name_block(name),
            registered,
            stamp,
            stamp,
            until,
            vat if protects else None,
            status,
            1_250_000,  # cents
            "Accounting suite",
            registered + dt.timedelta(days=rng.randrange(20, 120)),
            INCENTIVE_CENTS.get(level, 50_000),
            "EUR",
            dt.date(2025, 7, 1),
            level,
            0,
        )


async def counted_rows(url: str) -> dict[str, int]:
    connection = await asyncpg.connect(plain_url(url))
    try:
        return {
            table: int(await connection.fetchval(f"SELECT count(*) FROM {table}"))
            for table in ("partner", "salesperson", "customer", "purchase", "registration")
        }
    finally:
        await connection.close()


# --- the figures -------------------------------------------------------------------


def ratio(measured: float, floor: float) -> str:
    return f"{measured / floor:.2f}x" if floor > 0 else "-"


def import_figures(
    url: str, path: Path, folder: Path, rows: int, first: Run | None
) -> list[Figure]:
    """The floor, `psql \\copy` into a bare table, then the file imported again."""
    for command in (
        "DROP TABLE IF EXISTS bare",
        "CREATE TABLE bare (vat text, customer_name text, purchase_date text)",
    ):
        run_measured(psql(url, command), dict(os.environ), folder)
    try:
        floor = run_measured(
            psql(url, f"\\copy bare FROM '{path}' csv header"), dict(os.environ), folder
        )
    finally:
        run_measured(psql(url, "DROP TABLE bare"), dict(os.environ), folder)
    say(
        f"  floor, psql \\copy into a bare table: {floor.seconds:.1f} s, peak RSS "
        f"{floor.peak_rss / MB:.0f} MB"
    )
    again = import_purchases(url, path, folder)
    say(
        f"  the same file again: {again.seconds:.1f} s, peak RSS {again.peak_rss / MB:.0f} MB: "
        f"{again.summary}"
    )
    figures = []
    if first is None:
        say("  the first import was not measured (--skip-build)")
    else:
        figures += [
            Figure(
                f"import-purchases, {rows:,} rows: time",
                f"{first.seconds:.1f} s",
                f"{floor.seconds:.1f} s",
                ratio(first.seconds, floor.seconds),
                "<= 60 s, <= 2x",
                first.seconds <= 60 and first.seconds <= 2 * floor.seconds,
            ),
            Figure(
                "import-purchases: peak RSS",
                f"{first.peak_rss / MB:.0f} MB",
                f"{floor.peak_rss / MB:.0f} MB",
                ratio(first.peak_rss, floor.peak_rss),
                "<= 300 MB",
                first.peak_rss <= 300 * MB,
            ),
        ]
    figures.append(
        Figure(
            "import-purchases again (unchanged): time",
            f"{again.seconds:.1f} s",
            f"{floor.seconds:.1f} s",
            ratio(again.seconds, floor.seconds),
        )
    )
    return figures


async def similar_lookups(url: str, names: Names, lookups: int) -> tuple[list[float], list[float]]:
    """bench/similar.py's measure on this data set: seconds of `similar_customers` and of
    the exact-VAT look-up, one session each, in alternating runs. A customer drawn for no
    purchase has no row: the floor may find none."""
    timed = await timed_lookups(url, names, lookups, all_known=False)
    return timed.similar, timed.floor


def similar_figures(url: str, names: Names) -> list[Figure]:
    similar, floor = asyncio.run(similar_lookups(url, names, SIMILAR_LOOKUPS))
    figures = []
    for label, fraction in (("p50", 0.5), ("p95", 0.95)):
        measured, exact = percentile(similar, fraction) * 1e3, percentile(floor, fraction) * 1e3
        figures.append(
            Figure(
                f"similar names, {len(names.rows):,} customers: {label}",
                f"{measured:.2f} ms",
                f"{exact:.2f} ms",
                ratio(measured, exact),
                "<= 20 ms" if label == "p95" else "-",
                measured <= 20 if label == "p95" else None,
            )
        )
    say(f"  {len(similar)} look-ups of each, the floor the exact-VAT look-up")
    return figures


@dataclass(frozen=True)
class Reminders:
    due: int
    computing: float
    first_tick: float
    sent: int
    expired: int
    next_tick: float
    sent_next: int


async def measure_reminders(harness: Harness) -> Reminders:
    shared = harness.resources
    async with shared.sessions() as session:
        await session.execute(
            text("DELETE FROM reminder")
        )  # an earlier run's: a rerun sees the same
        await session.commit()
    now = shared.now()
    started = time.perf_counter()
    async with shared.sessions() as session:
        due = await due_reminders(session=session, rules=shared.rules, now=now)
    computing = time.perf_counter() - started
    started = time.perf_counter()
    first = await run_tick(harness.app)
    first_tick = time.perf_counter() - started
    started = time.perf_counter()
    second = await run_tick(harness.app)
    next_tick = time.perf_counter() - started
    return Reminders(
        len(due), computing, first_tick, first.sent, first.expired, next_tick, second.sent
    )


def typed_vat(rng: random.Random, customers: int, index: int) -> str:
    """A VAT number as bench/eligibility.py types it: a tenth unknown to the history, a
    third spaced out without the country prefix."""
    vat = italian_vat(rng.randrange(customers + customers // 10))
    return vat[2:].replace("", " ").strip() if index % 3 == 0 else vat


async def check_answers(harness: Harness, customers: int, checks: int) -> list[float]:
    """Seconds from each `/check VAT` queued to the answer reaching the fake Bot API,
    one salesperson asking after another, after WARM_UP unmeasured ones."""
    api = harness.api
    asker = SALES_BASE  # the first salesperson, linked
    answers: list[float] = []

    def note(
        method: str, params: dict[str, Any], code: int, body: dict[str, Any], at: float
    ) -> None:
        if method == "sendMessage" and str(params.get("chat_id")) == str(asker):
            answers.append(at)

    api.after_call = note
    chat = harness.chat(asker, "en")
    rng = random.Random(11)
    samples: list[float] = []
    for index in range(WARM_UP + checks):
        answered = len(answers)
        await chat.send(f"/check {typed_vat(rng, customers, index)}")
        if chat.said is None or len(answers) == answered:
            raise RuntimeError(f"no answer to /check: {chat.messages()[-1:]}")
        if index >= WARM_UP:
            samples.append(answers[answered] - api.queued_at[chat.said["update_id"]])
    api.after_call = None
    return samples


async def next_update_id(url: str) -> int:
    """Past every update an earlier run handled: the bot handles an update id once."""
    connection = await asyncpg.connect(plain_url(url))
    try:
        return (
            int(await connection.fetchval("SELECT coalesce(max(update_id), 0) FROM handledupdate"))
            + 1
        )
    finally:
        await connection.close()


async def running_on(url: str, folder: Path) -> AbstractAsyncContextManager[Harness]:
    api = FakeBotApi(first_update_id=await next_update_id(url))
    # No pace on sends: the code's own cost is measured, as in bench/reminders.py.
    return running_bot(folder, api, database_url=url, pai_telegram_rate=1e9, pai_broadcast_rate=1e9)


async def reminders_on(url: str, folder: Path) -> Reminders:
    async with await running_on(url, folder) as harness:
        return await measure_reminders(harness)


async def check_answers_on(url: str, folder: Path, sizes: Sizes) -> list[float]:
    """On a bot of its own: a fake Bot API that holds no reminders sent, on either database."""
    async with await running_on(url, folder) as harness:
        return await check_answers(harness, sizes.customers, CHECKS)


def reminder_figures(reminders: Reminders, sizes: Sizes) -> list[Figure]:
    say(
        f"  {reminders.due:,} reminders due for {sizes.salespeople:,} salespeople; first tick "
        f"{reminders.first_tick:.1f} s ({reminders.expired:,} expired, {reminders.sent:,} sent, "
        f"{reminders.first_tick / max(reminders.sent, 1) * 1e3:.2f} ms a message); next tick "
        f"{reminders.sent_next} sent"
    )
    return [
        Figure(
            f"reminders: what is due, {sizes.salespeople:,} salespeople",
            f"{reminders.computing:.2f} s",
            goal="<= 2 s",
            met=reminders.computing <= 2,
        ),
        Figure(
            f"reminders: first tick, {reminders.sent:,} sent",
            f"{reminders.first_tick:.1f} s",
        ),
        Figure(
            "reminders: a tick with nothing new",
            f"{reminders.next_tick:.2f} s",
            goal="<= 1 s",
            met=reminders.next_tick <= 1,
        ),
    ]


def check_figures(full: list[float], small: list[float], sizes: Sizes) -> list[Figure]:
    figures = []
    for label, fraction in (("p50", 0.5), ("p95", 0.95)):
        measured, baseline = percentile(full, fraction) * 1e3, percentile(small, fraction) * 1e3
        p95 = label == "p95"
        figures.append(
            Figure(
                f"/check answer, {sizes.purchases:,} purchases: {label}",
                f"{measured:.1f} ms",
                f"{baseline:.1f} ms",
                ratio(measured, baseline),
                "<= 2x, <= 50 ms" if p95 else "-",
                measured <= 2 * baseline and measured <= 50 if p95 else None,
            )
        )
    return figures


# --- the figures other benches measure, run here and read back ------------------------

BROADCAST_URL = "postgresql://postgres@127.0.0.1:5432/pai_scale_broadcast"
MEMORY_UPDATES = 100_000


def run_bench(*arguments: str) -> str:
    """Another bench as its own process, its output echoed and returned."""
    command = [sys.executable, "-m", *arguments]
    say(f"  $ python -m {' '.join(arguments)}")
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    for line in done.stdout.splitlines():
        say(f"    {line}")
    if done.returncode != 0:
        say(f"    (exit {done.returncode}) {done.stderr[-2000:]}")
    return done.stdout


def found(pattern: str, text: str) -> tuple[str, ...] | None:
    match = re.search(pattern, text)
    return match.groups() if match else None


def missing(name: str) -> Figure:
    return Figure(name, "not measured (see above)", met=False)


def broadcast_figures(sizes: Sizes) -> list[Figure]:
    """bench/broadcast.py: a paid broadcast to every salesperson against a fake that allows
    1,000 a second, on PostgreSQL, while 20 salespeople register."""
    out = run_bench(
        "bench.broadcast",
        f"--partners={sizes.salespeople}",
        "--limit=30",
        "--paid=1000",
        f"--database={BROADCAST_URL}",
    )
    name = f"paid broadcast to {sizes.salespeople:,}: rate"
    rate = found(r"(\d+) messages/s, (\d+)% of the (\d+)/s limit", out)
    sent = found(r"429s received: (\d+).*duplicates: (\d+)", out)
    answers = found(r"p95 (\d+) ms during the broadcast.*without it p50 \d+ ms, p95 (\d+) ms", out)
    if rate is None or sent is None or answers is None:
        return [missing(name)]
    during, without = int(answers[0]), int(answers[1])
    return [
        Figure(
            name,
            f"{rate[0]}/s",
            f"{rate[2]}/s",
            f"{int(rate[1]) / 100:.2f}x",
            ">= 90 %",
            int(rate[1]) >= 90,
        ),
        Figure(
            "paid broadcast: duplicates (429s)",
            f"{sent[1]} ({sent[0]})",
            goal="0",
            met=sent[1] == "0",
        ),
        Figure(
            "paid broadcast: answers p95 during it",
            f"{during} ms",
            f"{without} ms",
            ratio(during, without),
            "<= 1 s",
            during <= 1000,
        ),
    ]


def update_figures() -> list[Figure]:
    """bench/e2e.py --quick on PostgreSQL: CPU per update against an echo bot on the same
    HTTP layer, and the answer's p95 with 20 salespeople pausing 2 s."""
    out = run_bench("bench.e2e", "--quick", "--databases=postgresql")
    cpu = found(r"pai-bot run on postgresql\n\s+.*\n\s+CPU per update: ([\d.]+) ms", out)
    echo = found(r"on the bot's HTTP layer .*: CPU per update ([\d.]+) ms", out)
    answer = found(
        r"pausing 2 s: message to answer p50 \d+ ms, p95 (\d+) ms .*echo bot p95 (\d+) ms", out
    )
    figures = []
    if cpu is None or echo is None:
        figures.append(missing("CPU per update"))
    else:
        measured, floor = float(cpu[0]), float(echo[0])
        figures.append(
            Figure(
                "CPU per update",
                f"{measured:.2f} ms",
                f"{floor:.2f} ms",
                ratio(measured, floor),
                "<= 2x",
                measured <= 2 * floor,
            )
        )
    if answer is None:
        figures.append(missing("answer p95, 20 salespeople pausing 2 s"))
    else:
        measured_ms, floor_ms = int(answer[0]), int(answer[1])
        figures.append(
            Figure(
                "answer p95, 20 salespeople pausing 2 s",
                f"{measured_ms} ms",
                f"{floor_ms} ms",
                ratio(measured_ms, floor_ms),
                "<= 50 ms",
                measured_ms <= 50,
            )
        )
    return figures


def memory_figures(updates: int) -> list[Figure]:
    """bench/e2e.py --memory-updates on SQLite: the bot's resident memory at the end."""
    out = run_bench("bench.e2e", "--quick", "--databases=sqlite", f"--memory-updates={updates}")
    memory = found(
        r"(\d+) MB after half, (\d+) MB at the end .*?([+-][\d.]+)% over the second half", out
    )
    name = f"RSS after {updates:,} updates"
    if memory is None:
        return [missing(name)]
    end, growth = int(memory[1]), float(memory[2])
    return [
        Figure(name, f"{end} MB", goal="<= 150 MB", met=end <= 150),
        Figure(
            "RSS growth over the second half", f"{growth:+.1f} %", goal="<= 10 %", met=growth <= 10
        ),
    ]


def print_table(figures: list[Figure]) -> None:
    met = {True: "yes", False: "NO", None: "-"}
    header: tuple[str, ...] = ("figure", "measured", "floor", "ratio", "goal", "met?")
    rows = [header, *((f.name, f.measured, f.floor, f.ratio, f.goal, met[f.met]) for f in figures)]
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    rows.insert(1, tuple("-" * width for width in widths))
    for row in rows:
        say(" | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


# --- the run -----------------------------------------------------------------------


def reuse_data_set(url: str, sizes: Sizes, folder: Path, names: Names) -> Path:
    """The data set and purchases file of an earlier run, checked and counted."""
    counts = asyncio.run(counted_rows(url))
    if counts["purchase"] == 0 or counts["salesperson"] != sizes.salespeople:
        raise SystemExit(
            f"no data set of these sizes in {url} ({counts}): run without --skip-build"
        )
    say("  reused: " + ", ".join(f"{count:,} {table}" for table, count in counts.items()))
    path, how = purchase_file(folder, sizes, names)
    say(f"  purchases file: {path.name} ({how})")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--fraction", type=float, default=1.0, help="multiplies every size")
    parser.add_argument("--skip-build", action="store_true", help="reuse the data set")
    parser.add_argument("--folder", type=Path, default=Path("/tmp/scale"), help="files kept")
    parser.add_argument(
        "--skip-others",
        action="store_true",
        help="leave out the figures bench/broadcast.py and bench/e2e.py measure (15 minutes)",
    )
    args = parser.parse_args()
    folder: Path = args.folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    sizes = FULL.scaled(args.fraction)
    started = time.perf_counter()
    names = make_names(sizes.customers)
    say(f"== data set in pai_scale: {sizes.described()}")
    say(f"  {len(names.rows):,} customer names made in {time.perf_counter() - started:.1f} s")
    if args.skip_build:
        first, path = None, reuse_data_set(SCALE_URL, sizes, folder, names)
    else:
        first = build(SCALE_URL, sizes, names, folder)
        path = folder / f"purchases-{sizes.purchases}-of-{sizes.customers}.csv"
    figures: list[Figure] = []
    say("== import-purchases against psql \\copy of the same file")
    figures += import_figures(SCALE_URL, path, folder, sizes.purchases, first)
    say("== similar names (bench/similar.py's measure)")
    figures += similar_figures(SCALE_URL, names)
    # The generator's names are the benchmark's, not the bot's: out of the heap that the
    # in-process bot's garbage collector walks.
    del names
    gc.collect()
    say("== reminders, through the fake Bot API in process (tests/harness.py)")
    figures += reminder_figures(asyncio.run(reminders_on(SCALE_URL, folder)), sizes)
    say("== /check, through the fake Bot API in process (tests/harness.py)")
    full = asyncio.run(check_answers_on(SCALE_URL, folder, sizes))
    say(f"  the small database, pai_scale_small: {SEED_PROGRAMME.described()}")
    build(SMALL_URL, SEED_PROGRAMME, make_names(SEED_PROGRAMME.customers), folder)
    small = asyncio.run(check_answers_on(SMALL_URL, folder, SEED_PROGRAMME))
    say(f"  /check: {len(full)} answers measured on each database, after {WARM_UP} unmeasured")
    figures += check_figures(full, small, sizes)
    if not args.skip_others:
        say("== the other benches' figures, each run as its own process")
        figures += broadcast_figures(sizes)
        figures += update_figures()
        figures += memory_figures(max(1_000, round(MEMORY_UPDATES * args.fraction)))
    say("== figures")
    print_table(figures)


if __name__ == "__main__":
    main()
