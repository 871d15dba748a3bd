"""Loading the vendor's sales history and the partner list from CSV or Excel files."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bot.domain.errors import InvalidDate, InvalidVat
from bot.domain.files import PARTNER_COLUMNS, PURCHASE_COLUMNS
from bot.domain.names import name_block
from bot.domain.parsing import normalise_vat, parse_date, vat_digits_for
from bot.domain.rules import Rules
from bot.sheets import BadLine, HeaderError, read_table
from bot.storage.database import dialect_insert, in_chunks
from models import CODE_LENGTH, NAME_LENGTH, Customer, Partner, Purchase

# Text dates in files are read day first, as the programme's staff write them.
FILE_DATE_LOCALE = "it_IT"
# Rows per INSERT: well under PostgreSQL's 32,767 bind parameters per statement.
BATCH = 5000
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
    """
    report = ImportReport()
    purchases: dict[tuple[str, dt.date], None] = {}
    names: dict[str, str] = {}
    # A history repeats each customer's number and each day many times: each distinct
    # text is read once (python-stdnum's check was 60% of an import's time).
    vat_of = _memo(lambda typed: _file_vat(typed, rules.country))
    date_of = _memo(lambda typed: parse_date(typed, locale=FILE_DATE_LOCALE))
    for row in _told(read_table(path, PURCHASE_COLUMNS), progress):
        if isinstance(row, BadLine):
            report.read += 1
            report.reject(row.line, "sheet", reason=row.reason)
            continue
        report.read += 1
        cells = row.cells
        try:
            vat = vat_of(cells["vat"])
        except InvalidVat as exc:
            report.reject(row.line, "vat", value=cells["vat"], why=exc.reason)
            continue
        try:
            # ISO, or day first as Italian Excel writes dates it saves as text.
            day = date_of(cells["purchase_date"])
        except InvalidDate:
            report.reject(row.line, "date", value=cells["purchase_date"])
            continue
        if day > today and not allow_future:
            report.reject(row.line, "future", value=day.isoformat())
            continue
        purchases[(vat, day)] = None
        if cells["customer_name"]:
            names[vat] = cells["customer_name"][:NAME_LENGTH]
    before = await _count(session, Purchase)
    rows = [{"vat": vat, "purchase_date": day} for vat, day in purchases]
    for chunk in in_chunks(rows, BATCH):
        # executemany: SQLAlchemy batches it into multi-row INSERTs on both databases.
        await session.execute(dialect_insert(session, Purchase).on_conflict_do_nothing(), chunk)
    await _upsert_customer_names(session, names)
    if not dry_run:
        await session.commit()
    report.added = await _count(session, Purchase) - before
    report.unchanged = report.read - len(report.rejected) - report.added
    if dry_run:
        await session.rollback()
    return report


async def _upsert_customer_names(session: AsyncSession, names: dict[str, str]) -> None:
    """The vendor's history knows customers' names best: it overwrites earlier ones,
    and the block similar names are looked up by (bot/domain/names.py) follows."""
    rows = [
        {"vat": vat, "name": name, "name_block": name_block(name)} for vat, name in names.items()
    ]
    statement = dialect_insert(session, Customer)
    statement = statement.on_conflict_do_update(
        index_elements=["vat"],
        set_={"name": statement.excluded.name, "name_block": statement.excluded.name_block},
    )
    for chunk in in_chunks(rows, BATCH):
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


# Distinct texts remembered per import: a few hundred thousand customers; past this the
# memory starts again rather than grow with the file.
MEMO_SIZE = 500_000
R = TypeVar("R")


def _memo(read: Callable[[str], R]) -> Callable[[str], R]:
    """`read`, remembering each text's result, or the error it raised, for the next time."""
    known: dict[str, R | Exception] = {}

    def remembered(typed: str) -> R:
        if typed not in known:
            if len(known) >= MEMO_SIZE:
                known.clear()
            try:
                known[typed] = read(typed)
            except (InvalidVat, InvalidDate) as refused:
                known[typed] = refused
        found = known[typed]
        if isinstance(found, Exception):
            raise found.with_traceback(None)  # not a traceback that grows at every raise
        return found

    return remembered


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
