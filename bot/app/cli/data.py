"""Files in and out: the imports, the export of registrations, payouts."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from decimal import Decimal
from pathlib import Path
from typing import cast

from bot.app.cli.common import (
    OK,
    REFUSED,
    TEXTS,
    Rows,
    export_rows,
    with_database,
)
from bot.config import Settings
from bot.domain.rules import Rules
from bot.problems import SetupError
from bot.reports import describe_rejection
from bot.resources import Resources
from bot.services.history import HistoryEntry
from bot.services.imports import ImportReport, import_partners, import_purchases
from bot.services.payouts import PAYOUT_COLUMNS, PaidReport, approved_unpaid, mark_paid
from bot.services.registrations import EXPORT_COLUMNS, export_registrations

PURCHASES_HELP = """\
The file is CSV (',' or ';', UTF-8 or Windows-1252) or an Excel .xlsx workbook
(first sheet; the header may sit below a title). Columns, in any order, extra
ones ignored:
  vat            the customer's VAT number (IT12345670587, 12345670587, 123.456.705-87)
  customer_name  the name the vendor knows it by
  purchase_date  YYYY-MM-DD or DD/MM/YYYY, or an Excel date

Example purchases.csv:
  vat,customer_name,purchase_date
  IT12345670587,Rossi Impianti S.r.l.,2026-03-14

Re-importing the same rows adds nothing. Bad rows are listed as FILE:LINE:
reason and skipped; a purchase dated after today is one of them unless
--allow-future is given. Exit status 1 if any row was rejected."""

PARTNERS_HELP = """\
The file is CSV or an Excel .xlsx workbook, like import-purchases. Columns:
  code     the partner's short code, any case (kept upper-case)
  company  the partner's company name
  level    one of the rules file's levels (gold, certified, registered)

Example partners.csv:
  code,company,level
  ACME,Acme Informatica S.r.l.,gold

A code already known updates that partner; a code repeated in the file takes
its last row, and the summary names the repeated lines."""

EXPORT_HELP = f"""\
Writes every registration with its frozen quote, status and dates. The name
decides the format: FILE.xlsx is an Excel workbook (dates as dates, amounts as
numbers); anything else is CSV (UTF-8, ',', ISO dates). --excel-csv writes a
CSV Italian Excel opens cleanly (BOM, ';', decimal comma, dd/mm/yyyy).

Columns: {", ".join(EXPORT_COLUMNS)}

Example: pai-bot export registrations.xlsx"""


def run_import_purchases(args: argparse.Namespace, settings: Settings) -> int:
    async def work(shared: Resources) -> tuple[ImportReport, Rules]:
        async with shared.sessions() as session:
            report = await import_purchases(
                session=session,
                rules=shared.rules,
                path=args.file,
                today=shared.today(),
                allow_future=args.allow_future,
            )
        return report, shared.rules

    return report_import(args.file, *with_database(settings, work, may_create=True), "purchases")


def run_import_partners(args: argparse.Namespace, settings: Settings) -> int:
    async def work(shared: Resources) -> tuple[ImportReport, Rules]:
        async with shared.sessions() as session:
            report = await import_partners(
                session=session, rules=shared.rules, path=args.file, now=shared.now()
            )
        return report, shared.rules

    return report_import(args.file, *with_database(settings, work, may_create=True), "partners")


def report_import(path: Path, report: ImportReport, rules: Rules, what: str) -> int:
    for rejection in report.rejected:
        reason = describe_rejection(TEXTS, rejection, country=rules.country)
        print(f"{path}:{rejection.line}: {reason}", file=sys.stderr)
    parts = [f"{report.read} rows read", f"{report.added} {what} added"]
    if what == "partners":
        parts.append(f"{report.updated} updated")
    parts += [f"{report.unchanged} unchanged", f"{len(report.rejected)} rejected"]
    print(", ".join(parts))
    if report.repeated:
        lines = ", ".join(str(line) for line in report.repeated)
        print(f"lines {lines} repeat a code of an earlier line: the later row was taken")
    return REFUSED if report.rejected else OK


def history_text(entries: list[HistoryEntry]) -> str:
    """A registration's moves in one cell: "2026-11-28 09:30Z won by Mario Rossi (note)"."""
    return "; ".join(
        f"{entry.at.astimezone(dt.UTC):%Y-%m-%d %H:%MZ} {entry.to_status} "
        f"by {TEXTS.actor(entry.by)}" + (f" ({entry.note})" if entry.note else "")
        for entry in entries
    )


def run_export(args: argparse.Namespace, settings: Settings) -> int:
    async def read(shared: Resources) -> Rows:
        async with shared.sessions() as session:
            return [
                {**row, "history": history_text(cast(list[HistoryEntry], row["history"]))}
                async for row in export_registrations(session=session)
            ]

    _rows, count = export_rows(args, settings, EXPORT_COLUMNS, read)
    print(f"{count} registrations written to {args.file}")
    return OK


def run_payouts_export(args: argparse.Namespace, settings: Settings) -> int:
    async def read(shared: Resources) -> Rows:
        async with shared.sessions() as session:
            return await approved_unpaid(session=session, rules=shared.rules)

    rows, count = export_rows(args, settings, PAYOUT_COLUMNS, read)
    totals: dict[str, Decimal] = {}
    for row in rows:
        amount = row["incentive_amount"]
        assert isinstance(amount, Decimal)
        code = str(row["partner_code"])
        totals[code] = totals.get(code, Decimal(0)) + amount
    for code, total in totals.items():
        print(f"{code}: {TEXTS.money(total)}")
    print(f"{count} approved incentives to pay written to {args.file}")
    return OK


def run_payouts_mark_paid(args: argparse.Namespace, settings: Settings) -> int:
    async def work(shared: Resources) -> PaidReport:
        paid_on = shared.today()
        if args.date:
            try:
                paid_on = dt.date.fromisoformat(args.date)
            except ValueError:
                raise SetupError(f"--date {args.date!r} is not a date like 2027-01-31") from None
        async with shared.sessions() as session:
            return await mark_paid(
                session=session, path=args.file, now=shared.now(), paid_on=paid_on
            )

    report = with_database(settings, work, may_create=False)
    for line, reason in report.refused:
        print(f"{args.file}:{line}: {reason}", file=sys.stderr)
    print(
        f"{len(report.paid)} marked paid, {len(report.already)} paid already, "
        f"{len(report.refused)} refused"
    )
    return REFUSED if report.refused else OK
