"""Reminders benchmark: one tick over many partners, with the sends going to a fake Bot API.

Seeds SQLite with N partners, one salesperson each and 5N registrations over the
last 400 days, then measures, at 1,000 and at 10,000 partners (by default):
- what is due: the computation alone (`due_reminders`), which every tick does;
- the first tick: expiring what lapsed, claiming, sending every due reminder to
  an in-process fake Bot API (no network, no rate limit), recording the outcomes;
- the next tick: everything already sent, nothing new due (most ticks' cost);
- a tick a day later: what one more day makes due (a day's first tick).
The figure per partner shows whether the cost grows linearly.

    python -m bench.reminders [--partners 1000 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import random
import sqlite3
import tempfile
import time
from pathlib import Path

from bot.app.application import build_application
from bot.app.demo.telegram import FakeBotApi, FakeRequest
from bot.config import Settings
from bot.domain.clock import ManualClock
from bot.domain.references import ALPHABET, LENGTH, PREFIX
from bot.jobs.reminders import run_tick
from bot.services.reminders import due_reminders
from tests.factories import italian_vat
from tests.harness import TOKEN

# A Tuesday morning in Rome: reminders may go out.
NOW = dt.datetime(2026, 12, 15, 9, 0, tzinfo=dt.UTC)
TODAY = NOW.date()


def reference_of(serial: int) -> str:
    code = ""
    for _ in range(LENGTH):
        serial, digit = divmod(serial, len(ALPHABET))
        code += ALPHABET[digit]
    return PREFIX + code


def seed(path: Path, partners: int) -> None:
    """Fill the tables directly: loading is not what this benchmark measures."""
    rng = random.Random(5)
    db = sqlite3.connect(path)
    stamp = (NOW - dt.timedelta(days=300)).isoformat()
    db.executemany(
        "INSERT INTO partner (id, code, company, level, created_at, updated_at)"
        " VALUES (?, ?, ?, 'gold', ?, ?)",
        ((p, f"P{p}", f"Partner {p} S.r.l.", stamp, stamp) for p in range(1, partners + 1)),
    )
    db.executemany(
        "INSERT INTO salesperson (id, telegram_user_id, partner_id, reminders_enabled,"
        " linked_at, telegram_language) VALUES (?, ?, ?, 1, ?, 'it')",
        ((p, 10_000_000 + p, p, stamp) for p in range(1, partners + 1)),
    )
    rows = []
    for serial in range(partners * 5):
        registered = TODAY - dt.timedelta(days=rng.randrange(400))
        until = registered + dt.timedelta(days=90)
        open_ = until >= TODAY and rng.random() < 0.7
        status = "qualified" if open_ else rng.choice(["won", "lost", "expired"])
        rows.append(
            (
                reference_of(serial),
                1 + serial % partners,
                1 + serial % partners,
                italian_vat(serial),
                f"Cliente {serial}",
                registered.isoformat(),
                stamp,
                stamp,
                until.isoformat(),
                italian_vat(serial) if status in ("qualified", "won") and until >= TODAY else None,
                status,
                (registered + dt.timedelta(days=rng.randrange(20, 120))).isoformat(),
            )
        )
    db.executemany(
        "INSERT INTO registration (reference, partner_id, salesperson_id, vat, customer_name,"
        " registered_on, created_at, updated_at, protected_until, protection_key, status,"
        " deal_value, product, expected_close, incentive_amount, currency, incentive_version,"
        " level, loyalty_count) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 100000, 'x', ?,"
        " 50000, 'EUR', '2025-07-01', 'gold', 0)",
        rows,
    )
    db.commit()
    db.execute("ANALYZE")
    db.close()


async def measure(folder: Path, partners: int) -> None:
    path = folder / f"reminders-{partners}.db"
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        telegram_bot_token=TOKEN,
        database_url=f"sqlite:///{path}",
        pai_telegram_rate=1e9,  # no rate limit: the code's own cost is measured
        pai_broadcast_rate=1e9,
    )
    # The tests' fake Bot API, in process: no network, no rate limit.
    api = FakeRequest(FakeBotApi())
    clock = ManualClock(NOW)
    app = build_application(
        settings,
        request=api,
        updates_request=api,
        clock=clock,
        schedule_reminders=False,
    )
    await app.initialize()
    assert app.post_init is not None
    await app.post_init(app)  # creates the tables
    seed(path, partners)
    shared = app.bot_data.resources
    started = time.perf_counter()
    async with shared.sessions() as session:
        due = await due_reminders(session=session, rules=shared.rules, now=NOW)
    computing = time.perf_counter() - started
    started = time.perf_counter()
    first = await run_tick(app)
    first_tick = time.perf_counter() - started
    started = time.perf_counter()
    second = await run_tick(app)
    next_tick = time.perf_counter() - started
    clock.advance(dt.timedelta(days=1))
    started = time.perf_counter()
    day_later = await run_tick(app)
    day_tick = time.perf_counter() - started
    assert app.post_shutdown is not None
    await app.post_shutdown(app)
    await app.shutdown()
    print(
        f"{partners:>6,} partners, {partners * 5:,} registrations: "
        f"{len(due):,} due (computed in {computing * 1000:.0f} ms, "
        f"{computing / partners * 1e6:.1f} µs a partner); "
        f"first tick {first_tick:.2f} s ({first.expired:,} expired, {first.sent:,} sent, "
        f"{first_tick / max(first.sent, 1) * 1000:.2f} ms a message); "
        f"next tick {next_tick * 1000:.0f} ms ({second.sent} sent, "
        f"{next_tick / partners * 1e6:.1f} µs a partner); "
        f"a day later {day_tick * 1000:.0f} ms ({day_later.expired} expired, "
        f"{day_later.sent} sent)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--partners", type=int, nargs="+", default=[1_000, 10_000])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for partners in args.partners:
            await measure(Path(folder), partners)


if __name__ == "__main__":
    asyncio.run(main())
