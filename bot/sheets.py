"""The tables staff give us (CSV or Excel .xlsx) and the ones they take away.

Reading decides the format from the content, not the name, and yields one `Row`
or `BadLine` per data line, so one broken line never hides the others. Writing
goes to a temporary file next to the target and renames it over the target.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import datetime as dt
import errno
import io
import itertools
import math
import os
import tempfile
import warnings
import zipfile
from collections.abc import (
    Callable,
    Collection,
    Generator,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, TextIO, cast

from bot.domain.parsing import strip_control
from bot.problems import SetupError


class SheetError(SetupError):
    """The file cannot be read or written as a table; str() is one sentence for staff."""


class HeaderError(SheetError):
    """The file is a table, but its header is not the one asked for (or there is none)."""


@dataclass(frozen=True)
class Row:
    line: int  # the line (CSV) or row (xlsx) number staff see in their program
    cells: dict[str, str]  # the required columns only, keyed by lower-case name


@dataclass(frozen=True)
class BadLine:
    line: int
    reason: str  # English, for a shell


Style = Literal["csv", "excel-csv", "xlsx"]

MAX_FIELD = 1000  # longer is not a name, a code, a VAT number or a date
HEADER_SEARCH_ROWS = 20  # titles and notes staff put above the header
# Excel writes at most 1,048,576 rows, some 60 MB; a bigger "workbook" is not one.
MAX_WORKBOOK_BYTES = 200 * 1024 * 1024
# A CSV line longer than this is no row of a list (a runaway file, /dev/zero): skipped
# without being held whole.
MAX_LINE_CHARS = 1024 * 1024
_HEAD_BYTES = 65536  # what a file's first bytes must say: zip, old Excel, binary, text
_READ_CHUNK = 1024 * 1024
# A workbook is a zip: a few hundred kB can unpack to gigabytes (a "zip bomb"). Each
# part is unpacked at most this far before openpyxl sees it: a sheet of Excel's full
# 1,048,576 rows of a purchases list is about 150 MB.
MAX_PART_BYTES = 256 * 1024 * 1024
MAX_UNPACKED_BYTES = 512 * 1024 * 1024
# Excel's own limit: a sheet with more rows was not written by Excel.
MAX_SHEET_ROWS = 1_048_576
# The header is looked for in this many columns of its first rows (an old .xls had 256).
MAX_HEADER_COLUMNS = 1024
_UNPACK_CHUNK = 1024 * 1024
_LONG_FIELD = f"a field is longer than {MAX_FIELD:,} characters"

_ZIP = b"PK\x03\x04"
_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ENCRYPTED_OOXML = "EncryptedPackage".encode("utf-16-le")  # a password-protected .xlsx
_ODS = b"application/vnd.oasis.opendocument.spreadsheet"
# Files people pick by mistake; their first bytes say what they are.
_BINARY_SIGNATURES = (
    b"%PDF-",
    b"\x89PNG",
    b"\xff\xd8\xff",  # JPEG
    b"GIF8",
    b"\x1f\x8b",  # gzip
    b"7z\xbc\xaf",
    b"Rar!",
)
_CONTROL_BYTES = frozenset(range(0x20)) - {0x09, 0x0A, 0x0C, 0x0D}
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


# --- reading -------------------------------------------------------------------


def read_table(path: Path, required: tuple[str, ...]) -> Iterator[Row | BadLine]:
    """Yield each data row of a CSV or .xlsx file with the required columns, or why not.

    The file, its format and its header are checked at the call, before any row:
    a `SheetError` then means nothing can be imported. After that, a line that
    cannot be read is a `BadLine` and reading goes on with the next. A CSV is read
    line by line however long it is: memory does not grow with the file.
    """
    names = tuple(name.strip().lower() for name in required)
    head = _read_head(path)
    if head.startswith(_ZIP):
        return _xlsx_rows(path, _read_workbook(path), names)
    if head.startswith(_OLE2):
        if _ENCRYPTED_OOXML in _read_workbook(path):
            raise SheetError(
                f"{path} is protected by a password: remove the password in Excel and save it again"
            )
        raise SheetError(f"{path} is in the old Excel .xls format: save it as .xlsx or CSV")
    encoding = None if path.suffix.lower() == ".xlsx" else _text_encoding(path, head)
    if encoding is None:
        raise SheetError(f"{path} is neither CSV nor an Excel .xlsx workbook")
    rows = _csv_rows(path, encoding, names)
    next(rows)  # the header, or the SheetError that nothing can be imported
    return cast(Iterator[Row | BadLine], rows)


def count_lines(path: Path) -> int | None:
    """About how many lines a table has, to show an import's progress (None: unknown).

    A CSV's line breaks, a workbook's first sheet as it says its size; the header and
    lines above it are counted too: an estimate for a progress bar, nothing more.
    """
    try:
        head = _read_head(path)
    except SheetError:
        return None
    if not head.startswith(_ZIP):
        return _count_line_breaks(path)
    from openpyxl import load_workbook

    try:
        data = _read_workbook(path)
        _check_unpacked(path, data)  # openpyxl reads the shared strings whole, bomb or not
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            workbook = load_workbook(io.BytesIO(data), read_only=True, keep_links=False)
        rows = workbook.worksheets[0].max_row if workbook.worksheets else None
    except Exception:
        return None
    return rows if isinstance(rows, int) else None


def _count_line_breaks(path: Path) -> int | None:
    lines, last = 0, b"\n"
    try:
        with path.open("rb") as file:
            while chunk := file.read(_READ_CHUNK):
                lines += chunk.count(b"\n")
                last = chunk[-1:]
    except OSError:
        return None
    return lines + (0 if last == b"\n" else 1)


def _read_head(path: Path) -> bytes:
    """The file's first bytes, which say what it is; one sentence when it cannot be read."""
    try:
        with path.open("rb") as file:
            return file.read(_HEAD_BYTES)
    except OSError as exc:
        raise SheetError(f"{path} cannot be read: {_os_reason(exc)}") from None


def _read_workbook(path: Path) -> bytes:
    """A whole workbook, which Excel keeps far below MAX_WORKBOOK_BYTES."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_WORKBOOK_BYTES + 1)
    except OSError as exc:
        raise SheetError(f"{path} cannot be read: {_os_reason(exc)}") from None
    if len(data) > MAX_WORKBOOK_BYTES:
        raise SheetError(
            f"{path} is larger than {MAX_WORKBOOK_BYTES // (1024 * 1024)} MB: "
            "no Excel workbook is; save the sheet as CSV"
        )
    return data


def _looks_binary(head: bytes) -> bool:
    """True for content no spreadsheet program writes as CSV (a stray NUL is not enough)."""
    if head.startswith(_BINARY_SIGNATURES):
        return True
    controls = sum(1 for byte in head if byte in _CONTROL_BYTES)
    return controls > max(4, len(head) // 100)


def _text_encoding(path: Path, head: bytes) -> str | None:
    """UTF-8 with or without BOM, UTF-16 with BOM (Excel's "Unicode text"), else
    Windows-1252; None when the bytes are no text at all.

    Decided on the whole file, read once in chunks: a file that is UTF-8 up to one
    byte near its end is Windows-1252 throughout, as when it was read whole.
    """
    if head.startswith(_UTF16_BOMS):
        return "utf-16" if _decodes(path, "utf-16") else None
    if _looks_binary(head):
        return None
    return "utf-8-sig" if _decodes(path, "utf-8-sig") else "cp1252"


def _decodes(path: Path, encoding: str) -> bool:
    decoder = codecs.getincrementaldecoder(encoding)()
    try:
        with path.open("rb") as file:
            while chunk := file.read(_READ_CHUNK):
                decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    except OSError as exc:
        raise SheetError(f"{path} cannot be read: {_os_reason(exc)}") from None
    return True


def _clean(text: str) -> str:
    if text.isascii() and text.isprintable():  # nothing strip_control would change: 3x faster
        return text.strip()
    return strip_control(text).strip()


@dataclass(frozen=True)
class _Header:
    line: int
    positions: dict[str, int]  # required name -> column index


def _find_header(
    path: Path,
    candidates: Iterable[tuple[int, list[str]]],
    required: tuple[str, ...],
    where: str = "",
) -> _Header:
    """Return the first candidate row holding every required name, or explain what was found.

    When none does, the row shown as "found" is the one most like a header: the
    most required names, then the most filled cells, then the earliest.
    """
    best: tuple[int, int] = (-1, -1)
    found: list[str] = []
    for line, cells in candidates:
        names = [_clean(cell) for cell in cells]
        lowered = [name.lower() for name in names]
        positions: dict[str, int] = {}
        for name in required:
            if name in lowered:
                positions[name] = lowered.index(name)
        if len(positions) == len(required):
            return _Header(line, positions)
        filled = [name for name in names if name]
        score = (len(positions), len(filled))
        if filled and score > best:
            best, found = score, filled
    expected = ", ".join(required)
    if not found:
        raise HeaderError(
            f"{path}{where} has no header in its first {HEADER_SEARCH_ROWS} rows: "
            f"it must have {expected}"
        )
    raise HeaderError(f"{path}{where}: the header must have {expected}; found: {_listing(found)}")


def _listing(names: list[str], most: int = 12, longest: int = 40) -> str:
    shown = [name if len(name) <= longest else name[: longest - 1] + "…" for name in names[:most]]
    more = f" and {len(names) - most} more" if len(names) > most else ""
    return ", ".join(shown) + more


def _row_or_bad(line: int, cells: Sequence[str], header: _Header) -> Row | BadLine | None:
    """The required cells of a data row, cleaned; None when they are all empty."""
    row: dict[str, str] = {}
    for name, index in header.positions.items():
        raw = cells[index] if index < len(cells) else ""
        if len(raw) > MAX_FIELD:
            return BadLine(line, _LONG_FIELD)
        row[name] = _clean(raw)
    if not any(row.values()):
        return None
    return Row(line, row)


# --- CSV -----------------------------------------------------------------------


def _detect_delimiter(header_line: str) -> str:
    """Italian Excel separates with `;`, its "Unicode text" with tabs, the rest with `,`."""
    counts = {delimiter: header_line.count(delimiter) for delimiter in (",", ";", "\t")}
    return max(counts, key=lambda delimiter: counts[delimiter])  # ties: the earliest, `,`


def _parse_line(line: str, delimiter: str) -> list[str] | str:
    """The fields of one physical line, or the reason it cannot be read.

    Each line is parsed on its own, so an unterminated quote cannot swallow the
    lines after it. The price: a quoted field cannot span several lines (Excel
    writes one when a cell holds a line break); staff's purchase and partner
    lists have none, and such a row comes out as bad lines rather than wrong data.
    """
    # NUL is dropped by strip_control anyway; removing it first keeps the csv module calm.
    reader = csv.reader([line.replace("\x00", "")], delimiter=delimiter, strict=True)
    try:
        return next(reader, [])
    except csv.Error as exc:
        message = str(exc)
        if "unexpected end of data" in message:
            return "unterminated quote"
        if "field larger than field limit" in message:
            return _LONG_FIELD
        return "a closing quote is followed by other text"


def _is_blank(line: str) -> bool:
    """Blank, or only separators: how spreadsheets export an empty row."""
    return not line.strip(" \t,;\"'")


def _csv_rows(
    path: Path, encoding: str, required: tuple[str, ...]
) -> Generator[Row | BadLine | None, None, None]:
    """The file's rows, line by line; first one None once the header is found (read_table
    takes it, so that a missing header is raised at the call, not at the first row)."""
    try:
        # Universal newlines: \r\n, \r and \n each end a line, as Excel and old Macs write.
        file = path.open(encoding=encoding, errors="replace", newline=None)
    except OSError as exc:
        raise SheetError(f"{path} cannot be read: {_os_reason(exc)}") from None
    with file:
        if encoding == "cp1252" and file.read(3) != "\u00ef\u00bb\u00bf":
            file.seek(0)  # no UTF-8 mark before text that is not UTF-8 after all
        lines = _numbered_lines(file)
        header, delimiter = _csv_header(path, lines, required)
        yield None
        yield from _csv_data(lines, header, delimiter)


def _numbered_lines(file: TextIO) -> Iterator[tuple[int, str | None]]:
    """(line number, its text without the break), None for a line longer than any row:
    it is skipped to its end without being held."""
    number = 0
    while line := file.readline(MAX_LINE_CHARS):
        number += 1
        if line.endswith("\n"):
            yield number, line[:-1]
        elif len(line) < MAX_LINE_CHARS:  # the last line, without a break
            yield number, line
        else:
            while line and not line.endswith("\n"):
                line = file.readline(MAX_LINE_CHARS)
            yield number, None


def _csv_header(
    path: Path, lines: Iterator[tuple[int, str | None]], required: tuple[str, ...]
) -> tuple[_Header, str]:
    """The header among the first HEADER_SEARCH_ROWS lines that are not blank, and its
    delimiter; `lines` is left just after it."""
    seen = 0
    texts: dict[int, str] = {}

    def candidates() -> Iterator[tuple[int, list[str]]]:
        nonlocal seen
        for number, line in lines:
            if line is not None and _is_blank(line):
                continue
            seen += 1
            if seen > HEADER_SEARCH_ROWS:
                return
            if line is None:
                continue
            texts[number] = line
            fields = _parse_line(line, _detect_delimiter(line))
            if isinstance(fields, list):
                yield number, fields

    try:
        header = _find_header(path, candidates(), required)
    except HeaderError:
        if not seen:
            raise HeaderError(
                f"{path} is empty: the header must be {', '.join(required)}"
            ) from None
        raise
    return header, _detect_delimiter(texts[header.line])


def _csv_data(
    lines: Iterator[tuple[int, str | None]], header: _Header, delimiter: str
) -> Iterator[Row | BadLine]:
    for number, line in lines:
        if line is None:
            yield BadLine(number, f"the line is longer than {MAX_LINE_CHARS:,} characters")
            continue
        if _is_blank(line):
            continue
        # Most lines hold no quote and no NUL: split, as the csv module would.
        fields = (
            line.split(delimiter)
            if '"' not in line and "\x00" not in line
            else _parse_line(line, delimiter)
        )
        if isinstance(fields, str):
            yield BadLine(number, fields)
            continue
        item = _row_or_bad(number, fields, header)
        if item is not None:
            yield item


# --- xlsx ----------------------------------------------------------------------


def _xlsx_rows(path: Path, data: bytes, required: tuple[str, ...]) -> Iterator[Row | BadLine]:
    if _ODS in data[:100]:
        raise SheetError(f"{path} is an OpenDocument spreadsheet: save it as .xlsx or CSV")
    from openpyxl import load_workbook  # imported here: the bot itself never needs it

    _check_unpacked(path, data)
    # openpyxl parses whatever it is given; a damaged or foreign zip fails in many ways.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            workbook = load_workbook(
                io.BytesIO(data), read_only=True, data_only=True, keep_links=False
            )
        sheets = workbook.worksheets
        if not sheets:
            raise SheetError(f"{path} has no worksheet")
        sheet = sheets[0]
        sheet.reset_dimensions()  # some programs write wrong ones; read every cell there is
    except SheetError:
        raise
    except Exception:
        raise SheetError(f"{path} is neither CSV nor an Excel .xlsx workbook") from None
    where = f' (sheet "{sheet.title}", the first of {len(sheets)})' if len(sheets) > 1 else ""
    rows = _sheet_rows(path, sheet, width=MAX_HEADER_COLUMNS)
    head = list(itertools.islice(rows, HEADER_SEARCH_ROWS))
    if not any(_filled(cells) for _, cells in head) and not any(
        _filled(cells) for _, cells in rows
    ):
        raise HeaderError(f"{path}{where} is empty: the header must be {', '.join(required)}")
    header = _find_header(path, head, required, where)
    # Below the header only the header's columns are read: a cell far to the right (in
    # column XFD, say) would otherwise make every row 16,384 cells wide.
    width = max(header.positions.values()) + 1
    return _xlsx_data(_sheet_rows(path, sheet, width=width, first=header.line + 1), header)


def _check_unpacked(path: Path, data: bytes) -> None:
    """Refuse a workbook whose parts unpack beyond MAX_PART_BYTES each or
    MAX_UNPACKED_BYTES together. Counted while unpacking, not taken from the sizes the
    zip declares (a bomb lies about them); a part is read at most one chunk past its cap."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        total = 0
        for member in archive.infolist():
            size = 0
            with archive.open(member) as part:
                while chunk := part.read(_UNPACK_CHUNK):
                    size += len(chunk)
                    total += len(chunk)
                    if size > MAX_PART_BYTES or total > MAX_UNPACKED_BYTES:
                        limit = MAX_PART_BYTES if size > MAX_PART_BYTES else MAX_UNPACKED_BYTES
                        raise SheetError(
                            f"{path} unpacks to more than {limit // 2**20} MB: it is not a "
                            "table staff saved; save the sheet as CSV instead"
                        )
    except SheetError:
        raise
    except Exception:
        raise SheetError(f"{path} is neither CSV nor an Excel .xlsx workbook") from None


def _filled(cells: list[str]) -> bool:
    return any(_clean(cell) for cell in cells)


def _xlsx_data(rows: Iterable[tuple[int, list[str]]], header: _Header) -> Iterator[Row | BadLine]:
    for number, cells in rows:
        if number <= header.line:
            continue
        item = _row_or_bad(number, cells, header)
        if item is not None:
            yield item


def _sheet_rows(
    path: Path, sheet: Any, width: int, first: int = 1
) -> Iterator[tuple[int, list[str]]]:
    """(row number, its first `width` cells as text) for every row from `first`, empty
    ones included, numbered as Excel does.

    Read in batches so that openpyxl's warnings are silenced while it runs and
    never while the caller's code runs between rows.
    """
    cells = sheet.iter_rows(min_row=first, max_col=width, values_only=True)
    values = enumerate(cells, start=first)
    while True:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                batch = list(itertools.islice(values, 500))
        except Exception:
            raise SheetError(f"{path} is a damaged Excel workbook") from None
        if not batch:
            return
        for number, cells in batch:
            if number > MAX_SHEET_ROWS:
                raise SheetError(
                    f"{path} has more than {MAX_SHEET_ROWS:,} rows, Excel's own limit: "
                    "split it, or save it as CSV"
                )
            yield number, [_cell_text(value) for value in cells]


def _cell_text(value: object) -> str:
    """A cell as the text it stands for: what a CSV export of the sheet would hold."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, dt.datetime):  # how Excel stores a date, even without a time
        return value.date().isoformat()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer():  # never for inf or nan
            return str(int(value))  # a VAT number typed as a number: 12345670587.0
        return _float_text(value)
    return str(value)


# --- writing -------------------------------------------------------------------


_WriteFn = Callable[[io.BufferedWriter, Sequence[str], Iterable[Mapping[str, object]], Style], int]


def style_for(path: Path, *, excel_csv: bool = False) -> Style:
    """`.xlsx` (any case) is a workbook; any other name a CSV, for Excel if asked."""
    if path.suffix.lower() == ".xlsx":
        return "xlsx"
    return "excel-csv" if excel_csv else "csv"


def write_table(
    path: Path, columns: Sequence[str], rows: Iterable[Mapping[str, object]], *, style: Style
) -> int:
    """Write rows (values: str, int, Decimal, date, datetime, None) atomically; return the count.

    The rows go to a temporary file in the target's folder, readable by its owner
    only, renamed over the target once complete: a failure leaves the target as
    it was and no temporary file behind. Datetimes with a time zone are written in
    UTC; a spreadsheet has no time zones.
    """
    if path.is_dir():
        raise SheetError(f"{path} is a folder: give a file name, such as export{_suffix(style)}")
    if path.exists() and not path.is_file():  # /dev/stdout, a pipe: renaming would replace it
        raise SheetError(
            f"{path} is not a regular file: give a file name, such as export{_suffix(style)}"
        )
    folder = path.parent
    if not folder.is_dir():
        raise SheetError(f"{path} cannot be written: the folder {folder} does not exist")
    writer: _WriteFn = _write_xlsx if style == "xlsx" else _write_csv
    temporary: str | None = None
    try:
        fd, temporary = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as file:
            os.fchmod(file.fileno(), 0o600)  # whatever the umask
            count = writer(file, columns, rows, style)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
        temporary = None
        return count
    except OSError as exc:
        raise SheetError(f"{path} cannot be written: {_os_reason(exc)}") from None
    finally:
        if temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(temporary)


def table_bytes(
    columns: Sequence[str], rows: Iterable[Mapping[str, object]], *, style: Style = "csv"
) -> bytes:
    """The same table as `write_table` writes, as bytes: a file the bot sends in chat."""
    buffer = io.BytesIO()
    writer: _WriteFn = _write_xlsx if style == "xlsx" else _write_csv
    writer(buffer, columns, rows, style)  # type: ignore[arg-type]
    return buffer.getvalue()


def text_table(
    columns: Sequence[str],
    rows: Iterable[Mapping[str, object]],
    typed: Collection[str] | None = None,
) -> str:
    """The table as tab-separated lines for a terminal (which staff also paste into a
    spreadsheet): no tab or line break inside a cell, and the formulas of the `typed`
    columns (text people typed; all columns when not said) defused as in a CSV. The
    others are the bot's own words and shown as they are (an @username, a "-")."""
    typed = columns if typed is None else typed

    def cell(value: object, column: str) -> str:
        if value is None:
            return ""
        text = _csv_text(value, "csv") if column in typed else str(value)
        return " ".join(text.split())

    lines = ["\t".join(columns)]
    lines += ["\t".join(cell(row.get(column), column) for column in columns) for row in rows]
    return "\n".join(lines)


def _suffix(style: Style) -> str:
    return ".xlsx" if style == "xlsx" else ".csv"


def _os_reason(exc: OSError) -> str:
    """The reason in words, without the file name (it may be the temporary file's)."""
    reasons = {
        errno.ENOENT: "no such file or folder",
        errno.EISDIR: "it is a folder",
        errno.ENOTDIR: "a part of the path is not a folder",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.ENOSPC: "the disk is full",
        errno.EDQUOT: "the disk quota is exceeded",
        errno.EROFS: "the file system is read-only",
        errno.ENAMETOOLONG: "the name is too long",
    }
    if exc.errno in reasons:
        return reasons[exc.errno]
    return (exc.strerror or type(exc).__name__).lower()


# Excel runs a text cell starting with one of these as a formula; a customer name
# typed in the chat must not ("=HYPERLINK(...)"). Such text gets a leading
# apostrophe in CSV, as OWASP advises, and stays a text cell in .xlsx.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_text(value: object, style: Style) -> str:
    italian = style == "excel-csv"
    if value is None:
        return ""
    if isinstance(value, str):
        return "'" + value if value.startswith(_FORMULA_START) else value
    if isinstance(value, dt.datetime):
        if italian:
            local = _utc_naive(value)
            return f"{_dmy(local)} {local.hour:02d}:{local.minute:02d}"
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC)
        return value.replace(microsecond=0).isoformat()
    if isinstance(value, dt.date):
        return _dmy(value) if italian else value.isoformat()
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, Decimal | float):
        text = format(value, "f") if isinstance(value, Decimal) else _float_text(value)
        return text.replace(".", ",") if italian else text
    return str(value)


def _float_text(value: float) -> str:
    """A float as its shortest text, never in exponent form (1e-05 is 0.00001)."""
    if not math.isfinite(value):
        return str(value)
    return format(Decimal(repr(value)), "f")


def _dmy(day: dt.date) -> str:
    return f"{day.day:02d}/{day.month:02d}/{day.year:04d}"


def _utc_naive(moment: dt.datetime) -> dt.datetime:
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(dt.UTC).replace(tzinfo=None)


def _write_csv(
    file: io.BufferedWriter,
    columns: Sequence[str],
    rows: Iterable[Mapping[str, object]],
    style: Style,
) -> int:
    italian = style == "excel-csv"
    text = io.TextIOWrapper(file, encoding="utf-8-sig" if italian else "utf-8", newline="")
    writer = csv.writer(
        text,
        delimiter=";" if italian else ",",
        lineterminator="\r\n" if italian else "\n",
    )
    writer.writerow(columns)
    count = 0
    for row in rows:
        writer.writerow([_csv_text(row.get(column), style) for column in columns])
        count += 1
    text.flush()
    text.detach()  # the caller closes the file, after fsync
    return count


_DATE_FORMAT = "dd/mm/yyyy"
_DATETIME_FORMAT = "dd/mm/yyyy hh:mm"
_AMOUNT_FORMAT = "#,##0.00"
_XLSX_TEXT_LIMIT = 32767  # the most characters an Excel cell holds
_WIDTH_SAMPLE = 1000  # rows looked at to size the columns


def _xlsx_value(value: object) -> tuple[object, str | None]:
    """The value as openpyxl should store it, and its number format."""
    if isinstance(value, dt.datetime):
        return _utc_naive(value), _DATETIME_FORMAT
    if isinstance(value, dt.date):
        return value, _DATE_FORMAT
    if isinstance(value, Decimal):
        return (value if value.is_finite() else str(value)), _AMOUNT_FORMAT
    if value is None or isinstance(value, int | float):
        return value, None
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    return ILLEGAL_CHARACTERS_RE.sub("", str(value))[:_XLSX_TEXT_LIMIT], None


def _display_width(value: object) -> int:
    if isinstance(value, dt.datetime):
        return 16
    if isinstance(value, dt.date):
        return 10
    if isinstance(value, Decimal) and value.is_finite():
        return len(f"{value:,.2f}")
    return len("" if value is None else str(value))


def _write_xlsx(
    file: io.BufferedWriter,
    columns: Sequence[str],
    rows: Iterable[Mapping[str, object]],
    style: Style,
) -> int:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet()
    iterator = iter(rows)
    # Write-only sheets need their column widths before the first row: size them
    # on the first rows, then stream the rest.
    sample = [
        [_xlsx_value(row.get(column)) for column in columns]
        for row in itertools.islice(iterator, _WIDTH_SAMPLE)
    ]
    for index, column in enumerate(columns):
        widest = max([len(column), *(_display_width(values[index][0]) for values in sample)])
        sheet.column_dimensions[get_column_letter(index + 1)].width = min(max(widest + 3, 8), 60)
    sheet.freeze_panes = "A2"
    bold = Font(bold=True)

    def header_cell(name: str) -> Any:
        cell = WriteOnlyCell(sheet, value=name)
        cell.data_type = "s"
        cell.font = bold
        return cell

    def cell(value: object, number_format: str | None) -> Any:
        written = WriteOnlyCell(sheet, value=value)
        if isinstance(value, str):
            written.data_type = "s"  # text, even if it starts with "=": never a formula
        if number_format is not None:
            written.number_format = number_format
        return written

    sheet.append([header_cell(name) for name in columns])
    count = 0
    for values in sample:
        sheet.append([cell(value, number_format) for value, number_format in values])
        count += 1
    for row in iterator:
        sheet.append([cell(*_xlsx_value(row.get(column))) for column in columns])
        count += 1
    workbook.save(file)
    return count
