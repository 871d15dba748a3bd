"""Eligibility benchmark: the full check against the bare last-purchase query.

200,000 customers and 1,000,000 purchases in SQLite. Prints p50 and p95 of the
full check (VAT text in -> verdict and quote out, through the service layer,
one session per check as the bot does) and, in the same run and on the same
driver, the p50 of the bare indexed query that finds the last purchase; then
their ratio. Also times `import_purchases` on a 100,000-row CSV file.

    python -m bench.eligibility [--customers 200000] [--purchases 1000000] [--checks 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import random
import sqlite3
import tempfile
import time
from pathlib import Path

from sqlalchemy import text

from bench import percentile
from bot.domain.errors import Refusal
from bot.domain.parsing import normalise_vat
from bot.domain.rules import load_rules
from bot.services.accounts import Visitor, create_invite, redeem_invite
from bot.services.eligibility import check_eligibility
from bot.services.imports import import_purchases
from bot.storage.database import make_engine, make_sessions
from bot.storage.schema import create_tables
from tests.factories import italian_vat

TODAY = dt.date(2026, 11, 28)
NOW = dt.datetime.combine(TODAY, dt.time(10), tzinfo=dt.UTC)
BARE_QUERY = text("SELECT max(purchase_date) FROM purchase WHERE vat = :vat")


def seed(path: Path, customers: int, purchases: int, registrations: int) -> None:
    """Fill the tables directly: loading is not what this benchmark measures."""
    rng = random.Random(7)
    db = sqlite3.connect(path)
    db.executemany(
        "INSERT INTO customer (vat, name) VALUES (?, ?)",
        ((italian_vat(i), f"Cliente {i} S.r.l.") for i in range(customers)),
    )
    start = dt.date(2019, 1, 1).toordinal()
    span = TODAY.toordinal() - start
    rows = {
        (
            italian_vat(rng.randrange(customers)),
            dt.date.fromordinal(start + rng.randrange(span)).isoformat(),
        )
        for _ in range(purchases)
    }
    serial = customers
    while len(rows) < purchases:  # top up the few duplicate draws
        rows.add(
            (
                italian_vat(serial % customers),
                dt.date.fromordinal(start + serial % span).isoformat(),
            )
        )
        serial += 1
    db.executemany("INSERT INTO purchase (vat, purchase_date) VALUES (?, ?)", sorted(rows))
    db.execute(
        "INSERT INTO partner (code, company, level, created_at, updated_at) "
        "VALUES ('BENCH', 'Bench Srl', 'gold', '2026-01-01', '2026-01-01')"
    )
    for index in range(registrations):
        day = TODAY - dt.timedelta(days=rng.randrange(400))
        db.execute(
            "INSERT INTO registration (reference, partner_id, vat, customer_name, registered_on,"
            " created_at, updated_at, protected_until, protection_key, status, deal_value,"
            " product, expected_close, incentive_amount, currency, incentive_version, level,"
            " loyalty_count)"
            " VALUES (?, 1, ?, 'x', ?, ?, ?, ?, ?, 'qualified', 100000, 'x', ?, 50000, 'EUR',"
            " '2025-07-01', 'gold', 0)",
            (
                f"PAI-{index:06d}",
                italian_vat(customers + index),
                day.isoformat(),
                day.isoformat(),
                day.isoformat(),
                (day + dt.timedelta(days=90)).isoformat(),
                italian_vat(customers + index),
                (day + dt.timedelta(days=60)).isoformat(),
            ),
        )
    db.commit()
    db.execute("ANALYZE")
    db.close()


async def measure(path: Path, customers: int, checks: int) -> None:
    rules = load_rules()
    engine = make_engine(f"sqlite:///{path}")
    sessions = make_sessions(engine)
    async with sessions() as session:
        invite = await create_invite(session=session, partner_code="BENCH", now=NOW)
    async with sessions() as session:
        account = await redeem_invite(
            session=session, token=invite.token, visitor=Visitor(1), now=NOW
        )
    rng = random.Random(11)
    # Typed the way salespeople type them: spaces, no prefix; some unknown customers.
    typed = [
        italian_vat(rng.randrange(customers + customers // 10))[2:].replace("", " ").strip()
        if i % 3 == 0
        else italian_vat(rng.randrange(customers + customers // 10))
        for i in range(checks)
    ]
    now = NOW

    async def full_check(raw: str) -> None:
        vat = normalise_vat(raw, default_country=rules.country)
        async with sessions() as session:
            with contextlib.suppress(Refusal):  # "not new", "protected": verdicts too
                await check_eligibility(
                    session=session, rules=rules, account=account, vat=vat, now=now
                )

    async with engine.connect() as connection:

        async def bare_query(raw: str) -> None:
            await connection.execute(BARE_QUERY, {"vat": raw})

        bare_vats = [normalise_vat(raw, default_country="IT") for raw in typed]
        for warm in typed[:200]:
            await full_check(warm)
            await bare_query(normalise_vat(warm, default_country="IT"))
        full: list[float] = []
        bare: list[float] = []
        # Alternating blocks: both see the same cache and machine state, and neither
        # pays for waking the other's SQLite thread on every call.
        block = 250
        for start in range(0, len(typed), block):
            for raw in typed[start : start + block]:
                started = time.perf_counter()
                await full_check(raw)
                full.append(time.perf_counter() - started)
            for vat in bare_vats[start : start + block]:
                started = time.perf_counter()
                await bare_query(vat)
                bare.append(time.perf_counter() - started)
    await engine.dispose()
    full_p50, full_p95 = percentile(full, 0.5) * 1e3, percentile(full, 0.95) * 1e3
    bare_p50 = percentile(bare, 0.5) * 1e3
    print(f"checks measured:                 {checks}")
    print(f"full check p50:                  {full_p50:.3f} ms")
    print(f"full check p95:                  {full_p95:.3f} ms   (goal <= 2 ms)")
    print(f"bare last-purchase query p50:    {bare_p50:.3f} ms   (baseline, same driver)")
    print(f"full check p50 / bare query p50: {full_p50 / bare_p50:.2f}x   (goal <= 3x)")
    raw_p50 = raw_sqlite_p50(path, bare_vats[:2000])
    print(f"same query, plain sqlite3 p50:   {raw_p50:.3f} ms   (for reference: no asyncio)")


def raw_sqlite_p50(path: Path, vats: list[str]) -> float:
    db = sqlite3.connect(path)
    samples = []
    for vat in vats:
        started = time.perf_counter()
        db.execute("SELECT max(purchase_date) FROM purchase WHERE vat = ?", (vat,)).fetchone()
        samples.append(time.perf_counter() - started)
    db.close()
    return percentile(samples, 0.5) * 1e3


async def measure_import(folder: Path, rows: int) -> None:
    path = folder / "purchases.csv"
    with path.open("w", encoding="utf-8") as out:
        out.write("vat,customer_name,purchase_date\n")
        for i in range(rows):
            out.write(f"{italian_vat(i)},Cliente {i},2025-{i % 12 + 1:02d}-{i % 28 + 1:02d}\n")
    engine = make_engine(f"sqlite:///{folder / 'import.db'}")
    await create_tables(engine)
    sessions = make_sessions(engine)
    rules = load_rules()
    for attempt in ("first import", "re-import (adds nothing)"):
        started = time.perf_counter()
        async with sessions() as session:
            report = await import_purchases(session=session, rules=rules, path=path, today=TODAY)
        elapsed = time.perf_counter() - started
        print(
            f"{attempt} of {rows} rows:  {elapsed:.2f} s, {report.added} added, "
            f"{rows / elapsed:,.0f} rows/s"
        )
    await engine.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--purchases", type=int, default=1_000_000)
    parser.add_argument("--registrations", type=int, default=2_000)
    parser.add_argument("--checks", type=int, default=5_000)
    parser.add_argument("--import-rows", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.db"
        engine = make_engine(f"sqlite:///{path}")
        await create_tables(engine)
        await engine.dispose()
        started = time.perf_counter()
        seed(path, args.customers, args.purchases, args.registrations)
        print(
            f"seeded {args.customers:,} customers, {args.purchases:,} purchases, "
            f"{args.registrations:,} registrations in {time.perf_counter() - started:.1f} s"
        )
        await measure(path, args.customers, args.checks)
        await measure_import(Path(folder), args.import_rows)


if __name__ == "__main__":
    asyncio.run(main())
