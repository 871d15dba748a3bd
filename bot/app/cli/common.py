"""What every command shares: exit statuses, the database opened and closed, output files."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from bot.app.cli import FAILED
from bot.config import Settings
from bot.i18n import Texts
from bot.resources import Resources, open_resources
from bot.sheets import style_for, write_table
from bot.storage.database import display_url, prepare_sqlite_file

T = TypeVar("T")
# The CLI speaks to staff at a shell: English.
TEXTS = Texts("en")


def report_database_error(exc: Exception, settings: Settings) -> int:
    """One sentence, not a traceback; statement parameters and the password stay hidden."""
    reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
    where = display_url(settings.database_url)
    print(f"pai-bot: cannot use the database {where}: {reason}", file=sys.stderr)
    return FAILED


def with_database(
    settings: Settings,
    work: Callable[[Resources], Awaitable[T]],
    *,
    may_create: bool,
) -> T:
    """Open the database, run `work` with the resources, close; say which database it was.

    Only commands that load data (`may_create`) may start a new SQLite file, and say
    so; the others refuse one that is not there (an empty new database would answer
    "unknown partner" to everything).
    """
    announce_database(settings, may_create=may_create)

    async def go() -> T:
        shared = await open_resources(settings, chat=False)
        try:
            return await work(shared)
        finally:
            await shared.close()

    return asyncio.run(go())


def announce_database(settings: Settings, *, may_create: bool) -> None:
    """Say which database a command works on; make a new SQLite file where it may."""
    where = display_url(settings.database_url)
    created = prepare_sqlite_file(settings.database_url, must_exist=not may_create)
    print(f"pai-bot: database {where}{' (new, created now)' if created else ''}", file=sys.stderr)


Rows = list[dict[str, object]]


def export_rows(
    args: argparse.Namespace,
    settings: Settings,
    columns: Sequence[str],
    read: Callable[[Resources], Awaitable[Rows]],
) -> tuple[Rows, int]:
    """Read rows from the database and write them to the command's file (its kind checked
    first, so a wrong name fails before any work); the rows and how many were written."""
    style = style_for(args.file, excel_csv=args.excel_csv)
    rows = with_database(settings, read, may_create=False)
    return rows, write_table(args.file, columns, rows, style=style)


def counted(count: int, thing: str) -> str:
    """ "1 partner", "2 partners": English plurals of the CLI's few nouns."""
    return f"{count} {thing}" if count == 1 else f"{count} {thing}s"
