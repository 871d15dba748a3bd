"""Files in and out: the imports, the export of registrations, payouts."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import cast

from bot.app.cli import OK, REFUSED
from bot.app.cli.common import TEXTS, Rows, counted, export_rows, with_database
from bot.config import Settings
from bot.domain.files import EXPORT_COLUMNS, PAYOUT_COLUMNS
from bot.domain.rules import Rules
from bot.problems import SetupError
from bot.reports import describe_rejection, history_text
from bot.resources import Resources
from bot.services.history import HistoryEntry
from bot.services.imports import ImportReport, Progress, import_partners, import_purchases
from bot.services.payouts import PaidReport, approved_unpaid, mark_paid
from bot.services.privacy import CLI, record_access
from bot.services.registrations import export_registrations
from bot.sheets import count_lines
from bot.storage.database import DatabaseMissing


def run_import_purchases(args: argparse.Namespace, settings: Settings) -> int:
    async def work(shared: Resources) -> tuple[ImportReport, Rules]:
        with shown_progress(args.file) as progress:
            async with shared.sessions() as session:
                report = await import_purchases(
                    session=session,
                    rules=shared.rules,
                    path=args.file,
                    today=shared.today(),
                    allow_future=args.allow_future,
                    progress=progress,
                )
        return report, shared.rules

    # A sales history loaded into a new, empty database is a wrong folder far more often
    # than a new programme (which starts with its partners): only when asked.
    try:
        done = with_database(settings, work, may_create=args.create)
    except DatabaseMissing as missing:
        raise SetupError(f"{missing}, or give --create to make a new one") from None
    return report_import(args.file, *done, "purchase")


def run_import_partners(args: argparse.Namespace, settings: Settings) -> int:
    async def work(shared: Resources) -> tuple[ImportReport, Rules]:
        with shown_progress(args.file) as progress:
            async with shared.sessions() as session:
                report = await import_partners(
                    session=session,
                    rules=shared.rules,
                    path=args.file,
                    now=shared.now(),
                    progress=progress,
                )
        return report, shared.rules

    return report_import(args.file, *with_database(settings, work, may_create=True), "partner")


def report_import(path: Path, report: ImportReport, rules: Rules, what: str) -> int:
    for rejection in report.rejected:
        reason = describe_rejection(TEXTS, rejection, country=rules.country)
        print(f"{path}:{rejection.line}: {reason}", file=sys.stderr)
    parts = [f"{counted(report.read, 'row')} read", f"{counted(report.added, what)} added"]
    if what == "partner":
        parts.append(f"{report.updated} updated")
    parts += [f"{report.unchanged} unchanged", f"{len(report.rejected)} rejected"]
    print(", ".join(parts))
    if report.repeated:
        lines = ", ".join(str(line) for line in report.repeated)
        print(f"lines {lines} repeat a code of an earlier line: the later row was taken")
    return REFUSED if report.rejected else OK


@contextmanager
def shown_progress(path: Path) -> Iterator[Progress | None]:
    """On a terminal, a bar of the rows read (how many, how fast, how far); nothing when
    the output goes to a file or a pipe."""
    if not sys.stderr.isatty():
        yield None
        return
    from tqdm import tqdm

    with tqdm(
        total=count_lines(path), unit=" rows", unit_scale=True, file=sys.stderr, leave=False
    ) as bar:

        def told(read: int) -> None:
            bar.update(read - bar.n)

        yield told


def run_export(args: argparse.Namespace, settings: Settings) -> int:
    async def read(shared: Resources) -> Rows:
        async with shared.sessions() as session:
            rows: Rows = [
                {**row, "history": history_text(TEXTS, cast(list[HistoryEntry], row["history"]))}
                async for row in export_registrations(session=session)
            ]
            what = f"export registrations ({len(rows)} rows) to {args.file.name}"
            await record_access(session=session, who=CLI, what=what, now=shared.now())
        return rows

    _rows, count = export_rows(args, settings, EXPORT_COLUMNS, read)
    print(f"{counted(count, 'registration')} written to {args.file}")
    return OK


def run_payouts_export(args: argparse.Namespace, settings: Settings) -> int:
    async def read(shared: Resources) -> Rows:
        async with shared.sessions() as session:
            rows = await approved_unpaid(session=session, rules=shared.rules)
            what = f"export payouts ({len(rows)} rows) to {args.file.name}"
            await record_access(session=session, who=CLI, what=what, now=shared.now())
        return rows

    rows, count = export_rows(args, settings, PAYOUT_COLUMNS, read)
    totals: dict[str, Decimal] = {}
    for row in rows:
        amount = row["incentive_amount"]
        assert isinstance(amount, Decimal)
        code = str(row["partner_code"])
        totals[code] = totals.get(code, Decimal(0)) + amount
    for code, total in totals.items():
        print(f"{code}: {TEXTS.money(total)}")
    print(f"{counted(count, 'approved incentive')} to pay written to {args.file}")
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
