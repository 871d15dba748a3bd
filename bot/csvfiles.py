"""Reading the CSV files staff export from spreadsheets, tolerant of how Excel writes them."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path


class CsvHeaderError(Exception):
    """The file lacks a required column; nothing can be imported."""


@dataclass
class Rejection:
    line: int
    reason: str


@dataclass
class ImportReport:
    read: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[Rejection] = field(default_factory=list)

    def reject(self, line: int, reason: str) -> None:
        self.rejected.append(Rejection(line, reason))


def read_text(path: Path) -> str:
    """Decode UTF-8 (with or without BOM), or the Windows code page older Excel uses."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def detect_delimiter(header_line: str) -> str:
    """Italian Excel separates with `;`; everything else here with `,`."""
    return ";" if header_line.count(";") > header_line.count(",") else ","


def read_rows(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (line number, row) with the required columns, lower-cased and trimmed.

    Extra columns are ignored; a missing required column raises CsvHeaderError.
    """
    text = read_text(path)
    first_line = text.split("\n", 1)[0]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=detect_delimiter(first_line))
    header = next(reader, None)
    if header is None:
        raise CsvHeaderError(f"{path} is empty: the header must be {','.join(required)}")
    names = [name.strip().lower() for name in header]
    missing = [name for name in required if name not in names]
    if missing:
        raise CsvHeaderError(
            f"{path}: the header lacks {', '.join(missing)} (expected {','.join(required)})"
        )
    positions = {name: names.index(name) for name in required}
    for cells in reader:
        if not any(cell.strip() for cell in cells):
            continue  # blank lines at the end of spreadsheet exports
        row = {
            name: cells[index].strip() if index < len(cells) else ""
            for name, index in positions.items()
        }
        yield reader.line_num, row
