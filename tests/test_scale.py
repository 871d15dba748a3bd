"""A hundred times the seed programme (PRODUCT.md §9): the streaming import, on both
databases with the same files and the same results."""

from __future__ import annotations

import datetime as dt
import tracemalloc
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import select, text

from bot.domain.names import name_block
from bot.services import imports
from bot.services.imports import import_purchases
from bot.storage.database import Timeouts, asyncpg_arguments, make_engine
from models import Customer, Purchase
from tests.conftest import count_rows, database_url_for
from tests.factories import italian_vat, write_csv

TODAY = dt.date(2026, 11, 28)
HEADER = "vat,customer_name,purchase_date\n"


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches of 3 rows: a file of a dozen lines crosses several of them."""
    monkeypatch.setattr(imports, "BATCH", 3)


async def test_a_file_across_many_batches_gives_what_one_batch_gives(
    sessions, rules, tmp_path, small_batches
):
    """Repeats within and across batches, a customer renamed in a later batch, bad rows
    in between: counted, named and reported by line as for a file read whole."""
    a, b, c = italian_vat(1), italian_vat(2), italian_vat(3)
    path = write_csv(
        tmp_path / "history.csv",
        HEADER + f"{a},Rossi,2026-01-10\n"  # line 2
        f"{a},Rossi,2026-01-10\n"  # a repeat in the same batch
        f"{b},Bianchi,2026-02-01\n"
        f"{c},,2026-03-01\n"  # line 5: no name
        "IT12345670588,Bad digit,2026-03-01\n"  # line 6
        f"{a},Rossi,2026-01-10\n"  # a repeat from an earlier batch
        f"{b},Bianchi,2026-32-01\n"  # line 8: bad date
        f"{a},Rossi & Figli,2026-04-01\n"  # renamed later
        f"{c},Verdi,2026-05-01\n"
        f"{b},Bianchi,2026-02-01\n",  # line 11
    )
    async with sessions() as session:
        report = await import_purchases(session=session, rules=rules, path=path, today=TODAY)

    assert (report.read, report.added, report.unchanged) == (10, 5, 3)
    assert [(r.line, r.problem) for r in report.rejected] == [(6, "vat"), (8, "date")]
    async with sessions() as session:
        names = dict((await session.execute(select(Customer.vat, Customer.name))).all())
        blocks = dict((await session.execute(select(Customer.vat, Customer.name_block))).all())
    assert names == {a: "Rossi & Figli", b: "Bianchi", c: "Verdi"}
    assert blocks == {vat: name_block(name) for vat, name in names.items()}
    assert await count_rows(sessions, "purchase") == 5

    # The same file again: nothing new, every row unchanged.
    async with sessions() as session:
        again = await import_purchases(session=session, rules=rules, path=path, today=TODAY)
    assert (again.added, again.unchanged, len(again.rejected)) == (0, 8, 2)


async def test_the_last_row_naming_a_customer_wins_within_one_batch_too(sessions, rules, tmp_path):
    a = italian_vat(7)
    path = write_csv(
        tmp_path / "history.csv",
        HEADER + f"{a},Primo,2026-01-10\n{a},Secondo,2026-01-11\n{a},,2026-01-12\n",
    )
    async with sessions() as session:
        await import_purchases(session=session, rules=rules, path=path, today=TODAY)
        assert (await session.get(Customer, a)).name == "Secondo"


async def test_a_dry_run_across_batches_leaves_nothing_behind(
    sessions, rules, tmp_path, small_batches
):
    rows = "".join(f"{italian_vat(n)},Cliente {n},2026-01-{n + 1:02d}\n" for n in range(10))
    path = write_csv(tmp_path / "history.csv", HEADER + rows)
    async with sessions() as session:
        preview = await import_purchases(
            session=session, rules=rules, path=path, today=TODAY, dry_run=True
        )
    assert (preview.read, preview.added) == (10, 10)
    assert await count_rows(sessions, "purchase") == 0
    assert await count_rows(sessions, "customer") == 0
    # On PostgreSQL the staging table went with the transaction: a second import works.
    async with sessions() as session:
        done = await import_purchases(session=session, rules=rules, path=path, today=TODAY)
    assert done.added == 10 and await count_rows(sessions, "purchase") == 10


async def test_an_import_that_fails_halfway_leaves_nothing(
    sessions, rules, tmp_path, small_batches, monkeypatch
):
    rows = "".join(f"{italian_vat(n)},Cliente {n},2026-01-{n + 1:02d}\n" for n in range(10))
    path = write_csv(tmp_path / "history.csv", HEADER + rows)
    real = imports.parse_date
    seen = 0

    def failing(typed: str, **kwargs: str) -> dt.date:
        nonlocal seen
        seen += 1
        if seen == 8:  # after two batches were written
            raise OSError("the disk went away")
        return real(typed, **kwargs)

    monkeypatch.setattr(imports, "parse_date", failing)
    with pytest.raises(OSError, match="the disk went away"):
        async with sessions() as session:
            await import_purchases(session=session, rules=rules, path=path, today=TODAY)
    assert await count_rows(sessions, "purchase") == 0


def _history(path: Path, rows: int) -> Path:
    """A sales history of `rows` lines: 3,000 customers buying on many days."""
    vats = [italian_vat(n) for n in range(3000)]
    start = dt.date(2024, 1, 1)
    with path.open("w") as file:
        file.write(HEADER)
        for n in range(rows):
            day = start + dt.timedelta(days=n // 3000)  # each customer once a day
            file.write(f"{vats[n % 3000]},Cliente {n % 3000} S.r.l.,{day.isoformat()}\n")
    return path


async def _peak_memory(sessions, rules, path: Path) -> int:
    tracemalloc.start()
    try:
        async with sessions() as session:
            report = await import_purchases(session=session, rules=rules, path=path, today=TODAY)
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert not report.rejected
    return peak


@pytest.mark.slow
async def test_memory_does_not_grow_with_the_file(sessions, rules, tmp_path, monkeypatch):
    """10,000 rows and 200,000 rows peak alike: nothing is kept per row. (Batches and
    memos are made small so that both files are many of them.)"""
    monkeypatch.setattr(imports, "BATCH", 2000)
    monkeypatch.setattr(imports, "MEMO_SIZE", 2000)
    small = await _peak_memory(sessions, rules, _history(tmp_path / "small.csv", 10_000))
    async with sessions() as session:
        await session.execute(text("DELETE FROM purchase"))
        await session.execute(text("DELETE FROM customer"))
        await session.commit()
    large = await _peak_memory(sessions, rules, _history(tmp_path / "large.csv", 200_000))

    assert await count_rows(sessions, "purchase") == 200_000
    # Measured: 3.7 and 3.3 MB on SQLite, 1.6 and 2.2 MB on PostgreSQL; rows kept per
    # line would add some 40 MB.
    assert large < small * 1.5 + 1024 * 1024, (small, large)


async def test_a_csv_far_larger_than_memory_would_once_allow_is_read_line_by_line(
    tmp_path, monkeypatch
):
    """The old reader held the file whole and refused one over 200 MB; now only a line
    at a time is held, and a line longer than any row is skipped without being held."""
    from bot import sheets

    monkeypatch.setattr(sheets, "MAX_LINE_CHARS", 4096)
    path = tmp_path / "history.csv"
    with path.open("w") as file:
        file.write(HEADER)
        file.write(f"{italian_vat(1)},Rossi,2026-01-10\n")
        file.write("x" * 50_000 + "\n")  # a runaway line
        file.write(f"{italian_vat(2)},Bianchi,2026-01-11")  # no final line break
    rows = list(sheets.read_table(path, ("vat", "customer_name", "purchase_date")))
    assert [(row.line, type(row).__name__) for row in rows] == [
        (2, "Row"),
        (3, "BadLine"),
        (4, "Row"),
    ]
    assert rows[1].reason == "the line is longer than 4,096 characters"
    assert sheets.count_lines(path) == 4


async def test_purchases_keep_their_dates_on_both_databases(sessions, rules, tmp_path):
    a = italian_vat(11)
    path = write_csv(tmp_path / "history.csv", HEADER + f"{a},Rossi,31/12/2025\n")
    async with sessions() as session:
        await import_purchases(session=session, rules=rules, path=path, today=TODAY)
        bought = (await session.execute(select(Purchase.purchase_date))).scalar_one()
    assert bought == dt.date(2025, 12, 31)


async def test_every_postgresql_connection_of_the_bot_runs_without_jit(tmp_path):
    """JIT compiling costs 0.1-0.4 s, started by cost estimates that correlated
    subqueries inflate (the reminders' cut): every connection the bot opens, through
    SQLAlchemy and its own asyncpg pools alike, turns it off."""
    url = database_url_for("postgresql", tmp_path)
    engine = make_engine(url)
    try:
        async with engine.connect() as connection:
            assert (await connection.execute(text("SHOW jit"))).scalar_one() == "off"
        own = await asyncpg.connect(**asyncpg_arguments(engine, Timeouts()))
        try:
            assert await own.fetchval("SHOW jit") == "off"
        finally:
            await own.close()
    finally:
        await engine.dispose()
