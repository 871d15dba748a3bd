"""Loading the vendor's sales history and the partner list from CSV or Excel files."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bot.domain.errors import InvalidDate, InvalidVat
from bot.domain.files import PARTNER_COLUMNS, PURCHASE_COLUMNS
from bot.domain.names import name_block
from bot.domain.parsing import normalise_vat, parse_date, vat_digits_for
from bot.domain.rules import Rules
from bot.sheets import BadLine, HeaderError, read_table
from bot.storage.database import copy_records, dialect_insert, driver_connection, in_chunks
from models import CODE_LENGTH, NAME_LENGTH, Customer, Partner, Purchase

# Text dates in files are read day first, as the programme's staff write them.
FILE_DATE_LOCALE = "it_IT"
# Rows read before they are written: what an import holds in memory at once (some 25 MB).
# On PostgreSQL bigger batches put more rows on each index page they touch: 10,000,000
# rows took 155 s in batches of 20,000 and 117 s in batches of 100,000.
BATCH = 100_000
# Rows per INSERT: well under PostgreSQL's 32,767 bind parameters per statement.
IN_BATCH_ROWS = 5000
# Rows read between two looks at the merge under way (PostgreSQL), so that its next step
# goes while the reading goes on.
YIELD_EVERY = 2000
# How often an import says how far it got, in rows read.
PROGRESS_EVERY = 1000
T = TypeVar("T")
# Told the rows read so far, every PROGRESS_EVERY rows and at the end.
Progress = Callable[[int], None]


@dataclass(frozen=True)
class Rejection:
    """A row not imported: its line, what is wrong (`problem`, a catalogue key under
    `import_`) and the values its words need. Worded by whoever shows it (bot/reports.py)."""

    line: int
    problem: str
    values: dict[str, str] = field(default_factory=dict)


@dataclass
class ImportReport:
    read: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    # Lines whose key (a partner code) an earlier line of the same file already had.
    repeated: list[int] = field(default_factory=list)

    def reject(self, line: int, problem: str, **values: str) -> None:
        self.rejected.append(Rejection(line, problem, values))


def _file_vat(text: str, country: str) -> str:
    """A VAT number from a file, where Excel may have stored it as a number.

    A number cell loses leading zeros (00743110157 becomes 743110157): digits that
    fall short of the country's length are padded back, and the check digit
    still decides whether the result is a VAT number.
    """
    digits = vat_digits_for(country)
    if text.isdigit() and digits is not None and len(text) < digits:
        text = text.zfill(digits)
    return normalise_vat(text, default_country=country)


async def import_purchases(
    *,
    session: AsyncSession,
    rules: Rules,
    path: Path,
    today: dt.date,
    allow_future: bool = False,
    progress: Progress | None = None,
    dry_run: bool = False,
) -> ImportReport:
    """Add the file's purchases; rows already imported add nothing.

    A purchase dated after `today` is a typo in the history (and would make a
    customer "not new" for months): rejected unless `allow_future`. `dry_run`: the
    same work and report, rolled back (staff's preview in chat).

    The file streams through in batches of BATCH rows, so memory does not grow with
    it: on PostgreSQL each batch is COPYed into a staging table and merged from there
    by set-based statements while the next batch is read; on SQLite each batch is
    inserted as it comes. One transaction either way: an import stopped halfway
    leaves nothing.
    """
    report = ImportReport()
    sink = await _purchase_sink(session)
    try:
        report.added = await _stream_purchases(
            sink, report, rules, path, today, allow_future, progress
        )
    except BaseException:
        await sink.close()
        raise
    report.unchanged = report.read - len(report.rejected) - report.added
    if dry_run:
        await session.rollback()
    else:
        await session.commit()
    return report


async def _stream_purchases(
    sink: _PurchaseSink,
    report: ImportReport,
    rules: Rules,
    path: Path,
    today: dt.date,
    allow_future: bool,
    progress: Progress | None,
) -> int:
    """Read the file into the sink, noting rejected rows; the number of purchases added."""
    # A history repeats each customer's number and each day many times: each distinct
    # text is read once (python-stdnum's check was 60% of an import's time).
    vats = _Memo(lambda typed: _file_vat(typed, rules.country))
    days = _Memo(lambda typed: parse_date(typed, locale=FILE_DATE_LOCALE))
    # The name last sent for each customer: a name the rows repeat (most do) is sent
    # once, and the customers' table is written a tenth as often.
    named: dict[str, str] = {}
    batch: list[Bought] = []
    for row in _told(read_table(path, PURCHASE_COLUMNS), progress):
        report.read += 1
        if isinstance(row, BadLine):
            report.reject(row.line, "sheet", reason=row.reason)
            continue
        cells = row.cells
        typed = cells["vat"]
        try:
            vat = vats.known.get(typed) or vats(typed)
        except InvalidVat as exc:
            report.reject(row.line, "vat", value=typed, why=exc.reason)
            continue
        typed = cells["purchase_date"]
        try:
            # ISO, or day first as Italian Excel writes dates it saves as text.
            day = days.known.get(typed) or days(typed)
        except InvalidDate:
            report.reject(row.line, "date", value=typed)
            continue
        if day > today and not allow_future:
            report.reject(row.line, "future", value=day.isoformat())
            continue
        name = cells["customer_name"][:NAME_LENGTH]
        if name and named.get(vat) == name:
            name = ""  # sent already: the customer keeps it
        elif name:
            if len(named) >= MEMO_SIZE:
                named.clear()
            named[vat] = name
        batch.append((row.line, vat, day, name))
        if len(batch) >= BATCH:
            await sink.write(batch)
            batch = []
        elif not len(batch) % YIELD_EVERY:
            await asyncio.sleep(0)  # the merge under way takes its next step
    await sink.write(batch)
    return await sink.merge()


# A purchase row on its way in: line, VAT number, date, the customer's name ("" when the
# row has none, or repeats the one sent last for the customer).
Bought = tuple[int, str, dt.date, str]


class _PurchaseSink(Protocol):
    async def write(self, rows: list[Bought]) -> None: ...

    async def merge(self) -> int:
        """Whatever is still to do; the number of purchases added."""
        ...

    async def close(self) -> None: ...


async def _purchase_sink(session: AsyncSession) -> _PurchaseSink:
    if session.get_bind().dialect.name == "postgresql":
        sink = _CopiedPurchases(session)
        await sink.start()
        return sink
    return _InsertedPurchases(session, before=await _count(session, Purchase))


class _CopiedPurchases:
    """PostgreSQL: each batch COPYed into a staging table that lives as long as the
    transaction, then merged by set-based statements while the next batch is read: the
    database works on one core while this process reads on the other.

    Names go in last-row-wins, and only those that change a customer's: their blocks
    (bot/domain/names.py) are worked out here, once per new name, not once per row.
    """

    COLUMNS = ("line", "vat", "purchase_date", "name")
    # Sorted, the purchases go into their index in order (a third faster than in the
    # file's order).
    ADD_PURCHASES = (
        "INSERT INTO purchase (vat, purchase_date) "
        "SELECT vat, purchase_date FROM purchase_staging ORDER BY vat, purchase_date "
        "ON CONFLICT DO NOTHING"
    )
    # The batch's last name for each customer, where it is not the customer's already:
    # one look in the customers' key per name (a third of the time of a join, whose plan
    # a staging table without statistics leaves to chance).
    CHANGED_NAMES = (
        "SELECT latest.vat, latest.name FROM ("
        "SELECT DISTINCT ON (vat) vat, name FROM purchase_staging WHERE name <> '' "
        "ORDER BY vat, line DESC) AS latest "
        "WHERE latest.name IS DISTINCT FROM "
        "(SELECT customer.name FROM customer WHERE customer.vat = latest.vat)"
    )
    SET_NAMES = (
        "INSERT INTO customer (vat, name, name_block) "
        "SELECT vat, name, name_block FROM name_staging "
        "ON CONFLICT (vat) DO UPDATE SET name = excluded.name, name_block = excluded.name_block; "
        "TRUNCATE name_staging; TRUNCATE purchase_staging"
    )

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.before = 0
        self.merging: asyncio.Task[None] | None = None
        self.blocks = _Memo(name_block)

    async def start(self) -> None:
        # A history of millions of rows merges for longer than a chat's statement may take.
        await self.session.execute(text("SET LOCAL statement_timeout = 0"))
        for staging in (
            "purchase_staging (line bigint, vat text, purchase_date date, name text)",
            "name_staging (vat text, name text, name_block text)",
        ):
            await self.session.execute(text(f"CREATE TEMPORARY TABLE {staging} ON COMMIT DROP"))
        self.before = await _count(self.session, Purchase)

    async def write(self, rows: list[Bought]) -> None:
        await self._merged()
        if not rows:
            return
        await copy_records(self.session, "purchase_staging", self.COLUMNS, rows)
        driver = await driver_connection(self.session)
        self.merging = asyncio.ensure_future(self._merge_batch(driver))
        await asyncio.sleep(0)  # the merge is sent; the next batch is read meanwhile

    async def _merge_batch(self, driver: Any) -> None:
        await driver.execute(self.ADD_PURCHASES)
        changed = await driver.fetch(self.CHANGED_NAMES)
        named = [
            (vat, name, self.blocks.known.get(name) or self.blocks(name)) for vat, name in changed
        ]
        if named:
            await driver.copy_records_to_table(
                "name_staging", records=named, columns=["vat", "name", "name_block"]
            )
        await driver.execute(self.SET_NAMES)

    async def merge(self) -> int:
        await self._merged()
        return await _count(self.session, Purchase) - self.before

    async def close(self) -> None:
        """After a failure: the merge under way is waited for (its error is the
        transaction's, rolled back by the caller)."""
        with contextlib.suppress(Exception):
            await self._merged()

    async def _merged(self) -> None:
        merging, self.merging = self.merging, None
        if merging is not None:
            await merging


class _InsertedPurchases:
    """SQLite: each batch inserted as it comes, names upserted with it (a later batch
    overwrites an earlier one, so the last row naming a customer wins here too)."""

    def __init__(self, session: AsyncSession, before: int) -> None:
        self.session, self.before = session, before
        self.blocks = _Memo(name_block)

    async def write(self, rows: list[Bought]) -> None:
        if not rows:
            return
        purchases = {(vat, day): None for _line, vat, day, _name in rows}
        # executemany: SQLAlchemy batches it into multi-row INSERTs.
        await self.session.execute(
            dialect_insert(self.session, Purchase).on_conflict_do_nothing(),
            [{"vat": vat, "purchase_date": day} for vat, day in purchases],
        )
        names = {vat: name for _line, vat, _day, name in rows if name}
        blocks = self.blocks
        await _upsert_customer_names(
            self.session,
            {vat: (name, blocks.known.get(name) or blocks(name)) for vat, name in names.items()},
        )

    async def merge(self) -> int:
        return await _count(self.session, Purchase) - self.before

    async def close(self) -> None:
        pass


async def _upsert_customer_names(
    session: AsyncSession, names: dict[str, tuple[str, str | None]]
) -> None:
    """The vendor's history knows customers' names best: it overwrites earlier ones,
    and the block similar names are looked up by (bot/domain/names.py) follows."""
    rows = [{"vat": vat, "name": name, "name_block": block} for vat, (name, block) in names.items()]
    statement = dialect_insert(session, Customer)
    statement = statement.on_conflict_do_update(
        index_elements=["vat"],
        set_={"name": statement.excluded.name, "name_block": statement.excluded.name_block},
        where=(col(Customer.name) != statement.excluded.name)
        | col(Customer.name_block).is_distinct_from(statement.excluded.name_block),
    )
    for chunk in in_chunks(rows, IN_BATCH_ROWS):
        await session.execute(statement, chunk)


async def import_partners(
    *,
    session: AsyncSession,
    rules: Rules,
    path: Path,
    now: dt.datetime,
    progress: Progress | None = None,
    dry_run: bool = False,
) -> ImportReport:
    """Create partners, or update the one with the same code; a code repeated in the file
    takes its last row, and the report names the repeated lines. `dry_run`: the same
    report, nothing written."""
    report = ImportReport()
    wanted: dict[str, tuple[str, str]] = {}
    for row in _told(read_table(path, PARTNER_COLUMNS), progress):
        report.read += 1
        if isinstance(row, BadLine):
            report.reject(row.line, "sheet", reason=row.reason)
            continue
        cells = row.cells
        code, company, level = cells["code"].upper(), cells["company"], cells["level"].lower()
        if not code or len(code) > CODE_LENGTH:
            report.reject(row.line, "code", max=str(CODE_LENGTH))
        elif not company or len(company) > NAME_LENGTH:
            report.reject(row.line, "company", max=str(NAME_LENGTH))
        elif level not in rules.levels:
            report.reject(row.line, "level", value=cells["level"], levels=", ".join(rules.levels))
        else:
            if code in wanted:
                report.repeated.append(row.line)
            wanted[code] = (company, level)
    existing: dict[str, Partner] = {}
    # In slices: one parameter per code, and PostgreSQL takes at most 32,767 (45,000
    # partners in one IN list failed there).
    for chunk in in_chunks(list(wanted)):
        found = await session.execute(select(Partner).where(col(Partner.code).in_(chunk)))
        existing.update({p.code: p for p in found.scalars()})
    for code, (company, level) in wanted.items():
        partner = existing.get(code)
        if partner is None:
            session.add(
                Partner(code=code, company=company, level=level, created_at=now, updated_at=now)
            )
            report.added += 1
        elif (partner.company, partner.level) != (company, level):
            await session.execute(
                update(Partner)
                .where(col(Partner.id) == partner.id)
                .values(company=company, level=level, updated_at=now)
            )
            report.updated += 1
        else:
            report.unchanged += 1
    if dry_run:
        await session.rollback()
    else:
        await session.commit()
    return report


# What a staff member's file holds, by its header.
PURCHASES, PARTNERS = "purchases", "partners"


def file_kind(path: Path) -> str:
    """Whether the file is a sales history or a partner list, by its header; one
    sentence when it is neither (SheetError), naming both headers."""
    for kind, columns in ((PURCHASES, PURCHASE_COLUMNS), (PARTNERS, PARTNER_COLUMNS)):
        try:
            read_table(path, columns)
        except HeaderError:
            continue
        return kind
    raise HeaderError(
        f"{path.name}: the header must be a sales history's ({', '.join(PURCHASE_COLUMNS)}) "
        f"or a partner list's ({', '.join(PARTNER_COLUMNS)})"
    )


# Distinct texts remembered per import (some 12 MB for VAT numbers); past this the
# memory starts again rather than grow with the file.
MEMO_SIZE = 100_000
R = TypeVar("R")


class _Memo(Generic[R]):
    """`read`, remembering each text's result, or the error it raised, for the next time.

    The hot loop looks in `known` itself (`memo.known.get(text) or memo(text)`): a
    call saved per cell is a tenth of an import's time. Results are never falsy.
    """

    def __init__(self, read: Callable[[str], R]) -> None:
        self.read = read
        self.known: dict[str, R] = {}
        self.refused: dict[str, Exception] = {}

    def __call__(self, typed: str) -> R:
        found = self.known.get(typed)
        if found is not None:
            return found
        refused = self.refused.get(typed)
        if refused is not None:
            raise refused.with_traceback(None)  # not a traceback that grows at every raise
        if len(self.known) + len(self.refused) >= MEMO_SIZE:
            self.known.clear()
            self.refused.clear()
        try:
            found = self.read(typed)
        except (InvalidVat, InvalidDate) as exc:
            self.refused[typed] = exc
            raise
        self.known[typed] = found
        return found


def _told(rows: Iterator[T], progress: Progress | None) -> Iterator[T]:
    """The rows as they are read, saying every PROGRESS_EVERY how many so far."""
    if progress is None:
        yield from rows
        return
    read = 0
    for read, row in enumerate(rows, start=1):
        if read % PROGRESS_EVERY == 0:
            progress(read)
        yield row
    progress(read)


async def _count(session: AsyncSession, table: Any) -> int:
    return int((await session.execute(select(func.count()).select_from(table))).scalar_one())
