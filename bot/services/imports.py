"""Loading the vendor's sales history and the partner list from CSV files."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bot.csvfiles import ImportReport, read_rows
from bot.errors import InvalidVat
from bot.i18n import Texts
from bot.parsing import normalise_vat
from bot.rules import Rules
from models import Customer, Partner, Purchase, utcnow

PURCHASE_COLUMNS = ("vat", "customer_name", "purchase_date")
PARTNER_COLUMNS = ("code", "company", "level")
# Import reports are for staff at a shell: English, like the rest of the CLI.
REPORT_TEXTS = Texts("en")
# Rows per INSERT: well under PostgreSQL's 32,767 bind parameters per statement.
BATCH = 5000


def _insert(session: AsyncSession, table: Any) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT on both SQLite and PostgreSQL."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


async def import_purchases(*, session: AsyncSession, rules: Rules, path: Path) -> ImportReport:
    """Add the file's purchases; rows already imported add nothing."""
    report = ImportReport()
    purchases: dict[tuple[str, dt.date], None] = {}
    names: dict[str, str] = {}
    for line, row in read_rows(path, PURCHASE_COLUMNS):
        report.read += 1
        try:
            vat = normalise_vat(row["vat"], default_country=rules.country)
        except InvalidVat as exc:
            report.reject(line, f"VAT number {row['vat']!r}: {REPORT_TEXTS(exc.reason)}")
            continue
        try:
            day = dt.date.fromisoformat(row["purchase_date"])
        except ValueError:
            report.reject(line, f"purchase_date {row['purchase_date']!r} is not YYYY-MM-DD")
            continue
        purchases[(vat, day)] = None
        if row["customer_name"]:
            names[vat] = row["customer_name"][:200]
    before = await _count(session, Purchase)
    rows = [{"vat": vat, "purchase_date": day} for vat, day in purchases]
    for chunk in _chunks(rows, BATCH):
        # executemany: SQLAlchemy batches it into multi-row INSERTs on both databases.
        await session.execute(_insert(session, Purchase).on_conflict_do_nothing(), chunk)
    await _upsert_customer_names(session, names)
    await session.commit()
    report.added = await _count(session, Purchase) - before
    report.unchanged = report.read - len(report.rejected) - report.added
    return report


async def _upsert_customer_names(session: AsyncSession, names: dict[str, str]) -> None:
    """The vendor's history knows customers' names best: it overwrites earlier ones."""
    rows = [{"vat": vat, "name": name} for vat, name in names.items()]
    statement = _insert(session, Customer)
    statement = statement.on_conflict_do_update(
        index_elements=["vat"], set_={"name": statement.excluded.name}
    )
    for chunk in _chunks(rows, BATCH):
        await session.execute(statement, chunk)


async def import_partners(*, session: AsyncSession, rules: Rules, path: Path) -> ImportReport:
    """Create partners, or update the one with the same code."""
    report = ImportReport()
    wanted: dict[str, tuple[str, str]] = {}
    for line, row in read_rows(path, PARTNER_COLUMNS):
        report.read += 1
        code, company, level = row["code"].upper(), row["company"], row["level"].lower()
        if not code or len(code) > 40:
            report.reject(line, "code must be 1 to 40 characters")
        elif not company or len(company) > 200:
            report.reject(line, "company must be 1 to 200 characters")
        elif level not in rules.levels:
            report.reject(line, f"level {row['level']!r} is not one of {', '.join(rules.levels)}")
        else:
            wanted[code] = (company, level)
    existing = {
        p.code: p
        for p in (
            await session.execute(select(Partner).where(col(Partner.code).in_(list(wanted))))
        ).scalars()
    }
    now = utcnow()
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
    await session.commit()
    return report


async def _count(session: AsyncSession, table: Any) -> int:
    return int((await session.execute(select(func.count()).select_from(table))).scalar_one())


def _chunks(rows: Sequence[dict[str, Any]], size: int) -> list[Sequence[dict[str, Any]]]:
    return [rows[i : i + size] for i in range(0, len(rows), size)]
