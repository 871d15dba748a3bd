"""A staff member's file imported from chat (PRODUCT.md §7): the same services as
`pai-bot import-partners` / `import-purchases`, so chat and shell give the same results.

The file is read and written in a worker thread with its own event loop and its own
connection to the database, as the shell's command would: a million-row history takes
minutes of CPU, and the bot's loop keeps answering everyone meanwhile. The import is
one transaction: a restart halfway imports nothing, and staff send the file again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import tempfile
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.domain.files import PARTNER_COLUMNS, PURCHASE_COLUMNS
from bot.domain.rules import Rules
from bot.resources import open_resources
from bot.services.imports import PURCHASES, ImportReport, import_partners, import_purchases
from bot.sheets import BadLine, read_table

log = logging.getLogger(__name__)
T = TypeVar("T")

# At most one edit of the progress message this often: Telegram's limits, and a phone.
PROGRESS_EVERY = 2.0


@dataclass(frozen=True)
class StaffFile:
    """A file a staff member sent, as kept between the preview and Import."""

    path: Path
    kind: str  # PURCHASES or PARTNERS


def columns_of(kind: str) -> tuple[str, ...]:
    return PURCHASE_COLUMNS if kind == PURCHASES else PARTNER_COLUMNS


def saved(folder: Path, name: str, data: bytes) -> Path:
    """The file written under its own name (what the sentences about it say), made safe."""
    safe = "".join(c if c.isalnum() or c in "._- " else "_" for c in name).strip(" .") or "file"
    path = folder / safe[:80]
    path.write_bytes(data)
    return path


async def run_import(
    settings: Settings,
    rules: Rules,
    file: StaffFile,
    *,
    now: dt.datetime,
    dry_run: bool,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """The file imported (or, `dry_run`, previewed) by the CLI's services, in a worker
    thread with a database connection of its own."""

    async def work(session: AsyncSession) -> ImportReport:
        if file.kind == PURCHASES:
            return await import_purchases(
                session=session,
                rules=rules,
                path=file.path,
                today=rules.today(now),
                progress=progress,
                dry_run=dry_run,
            )
        return await import_partners(
            session=session,
            rules=rules,
            path=file.path,
            now=now,
            progress=progress,
            dry_run=dry_run,
        )

    return await asyncio.to_thread(_in_own_loop, settings, rules, work)


def _in_own_loop(
    settings: Settings, rules: Rules, work: Callable[[AsyncSession], Awaitable[T]]
) -> T:
    async def run() -> T:
        shared = await open_resources(settings, rules=rules, chat=False)
        try:
            async with shared.sessions() as session:
                return await work(session)
        finally:
            await shared.close()

    return asyncio.run(run())


def rejected_rows(file: StaffFile, report: ImportReport) -> list[dict[str, object]]:
    """The rejected rows as they were in the file (line and cells), to fix and send again."""
    lines = {r.line for r in report.rejected}
    cells: dict[int, dict[str, str]] = {}
    for row in read_table(file.path, columns_of(file.kind)):
        if not isinstance(row, BadLine) and row.line in lines:
            cells[row.line] = row.cells
    return [{"line": r.line, **cells.get(r.line, {})} for r in report.rejected]


class Progress:
    """Rows read so far, told by the import's thread, shown by the bot's loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._read = 0

    def __call__(self, read: int) -> None:
        with self._lock:
            self._read = read

    @property
    def read(self) -> int:
        with self._lock:
            return self._read


async def shown_every(
    interval: float, progress: Progress, show: Callable[[int], Awaitable[None]]
) -> None:
    """Show the rows read every `interval` seconds while they change (until cancelled)."""
    shown = 0
    while True:
        await asyncio.sleep(interval)
        read = progress.read
        if read != shown:
            shown = read
            await show(read)


def scratch() -> tempfile.TemporaryDirectory[str]:
    """A private folder for one file, removed with everything in it afterwards."""
    return tempfile.TemporaryDirectory(prefix="pai-import-")
