"""The file layer on real files: CSV and .xlsx as staff make them, and the exports they open."""

from __future__ import annotations

import datetime as dt
import errno
import io
import os
import stat
import zipfile
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from openpyxl import Workbook, load_workbook

from bot import sheets
from bot.sheets import BadLine, Row, SheetError, read_table, style_for, write_table

PURCHASES = ("vat", "customer_name", "purchase_date")
PARTNERS = ("code", "company", "level")


def rows_of(path: Path, required: tuple[str, ...] = PURCHASES) -> list[Row | BadLine]:
    return list(read_table(path, required))


def good(items: list[Row | BadLine]) -> list[tuple[int, dict[str, str]]]:
    return [(item.line, item.cells) for item in items if isinstance(item, Row)]


def bad(items: list[Row | BadLine]) -> list[tuple[int, str]]:
    return [(item.line, item.reason) for item in items if isinstance(item, BadLine)]


def save(workbook: Workbook, path: Path) -> Path:
    workbook.save(path)
    return path


# --- reading xlsx ----------------------------------------------------------------


def staff_workbook(path: Path) -> Path:
    """A title, a blank row, a header in its own case and order, notes, trailing empty rows."""
    workbook = Workbook()
    sheet = workbook.active
    sheet["A1"] = "Storico vendite 2026"
    sheet.append([])  # row 2: blank
    sheet.append(["Purchase_Date", "Note", " VAT ", "Customer_Name"])  # row 3
    sheet.append([dt.datetime(2026, 1, 15), "", "IT12345670587", "  Rossi S.r.l. "])
    sheet.append(["2026-02-01", "typed as text", 12345670587, "Bianchi SpA"])
    sheet.append([dt.date(2026, 3, 2), None, 12345670587.0, "Verdi"])
    sheet.append([None, "only a note: not a purchase", None, None])
    sheet.cell(row=12, column=3).value = "   "  # a trailing row with only spaces
    sheet.cell(row=14, column=1).number_format = "dd/mm/yyyy"  # a formatted, empty cell
    return save(workbook, path)


def test_an_xlsx_yields_rows_below_a_title_with_excel_row_numbers(tmp_path: Path) -> None:
    items = rows_of(staff_workbook(tmp_path / "purchases.xlsx"))

    assert good(items) == [
        (
            4,
            {
                "vat": "IT12345670587",
                "customer_name": "Rossi S.r.l.",
                "purchase_date": "2026-01-15",
            },
        ),
        (5, {"vat": "12345670587", "customer_name": "Bianchi SpA", "purchase_date": "2026-02-01"}),
        (6, {"vat": "12345670587", "customer_name": "Verdi", "purchase_date": "2026-03-02"}),
    ]
    assert bad(items) == []


def test_xlsx_cells_become_the_text_a_csv_export_would_hold(tmp_path: Path) -> None:
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["code", "company", "level"])
    sheet.append([7, 0.1, True])
    sheet.append([12.5, 0.00001, dt.datetime(2026, 5, 4, 13, 30)])
    sheet.append(["AC\nME", "Line\tbreak\u202e", 1e20])

    items = rows_of(save(workbook, tmp_path / "partners.xlsx"), PARTNERS)

    assert [item.cells for item in items if isinstance(item, Row)] == [
        {"code": "7", "company": "0.1", "level": "TRUE"},
        {"code": "12.5", "company": "0.00001", "level": "2026-05-04"},
        {"code": "AC ME", "company": "Line break", "level": "100000000000000000000"},
    ]


def test_an_xlsx_is_recognised_by_its_content_whatever_its_name(tmp_path: Path) -> None:
    workbook = Workbook()
    workbook.active.append(["code", "company", "level"])
    workbook.active.append(["acme", "Acme", "gold"])
    path = tmp_path / "partners.csv"
    workbook.save(path)

    assert good(rows_of(path, PARTNERS)) == [
        (2, {"code": "acme", "company": "Acme", "level": "gold"})
    ]


def test_an_overlong_xlsx_cell_is_a_bad_line_and_the_next_rows_are_read(tmp_path: Path) -> None:
    workbook = Workbook()
    workbook.active.append(["code", "company", "level", "notes"])
    workbook.active.append(["ACME", "x" * 1001, "gold", ""])
    workbook.active.append(["BETA", "Beta", "silver", "y" * 5000])  # extra columns may be long

    items = rows_of(save(workbook, tmp_path / "partners.xlsx"), PARTNERS)

    assert bad(items) == [(2, "a field is longer than 1,000 characters")]
    assert good(items) == [(3, {"code": "BETA", "company": "Beta", "level": "silver"})]


def test_a_wrong_xlsx_header_names_what_was_expected_and_found(tmp_path: Path) -> None:
    workbook = Workbook()
    workbook.active.append(["Elenco partner"])
    workbook.active.append(["Codice", "Ragione sociale", "Livello"])
    workbook.active.append(["ACME", "Acme", "gold"])

    with pytest.raises(SheetError) as caught:
        read_table(save(workbook, tmp_path / "partners.xlsx"), PARTNERS)

    assert str(caught.value) == (
        f"{tmp_path / 'partners.xlsx'}: the header must have code, company, level; "
        "found: Codice, Ragione sociale, Livello"
    )


def test_a_workbook_of_several_sheets_says_which_one_was_read(tmp_path: Path) -> None:
    workbook = Workbook()
    workbook.active.title = "Riepilogo"
    workbook.active.append(["Totale", 3])
    workbook.create_sheet("Partner").append(["code", "company", "level"])

    with pytest.raises(SheetError, match=r'\(sheet "Riepilogo", the first of 2\): the header'):
        read_table(save(workbook, tmp_path / "partners.xlsx"), PARTNERS)


def test_an_empty_workbook_names_the_expected_header(tmp_path: Path) -> None:
    with pytest.raises(SheetError, match="is empty: the header must be code, company, level"):
        read_table(save(Workbook(), tmp_path / "partners.xlsx"), PARTNERS)


def test_a_header_below_the_twentieth_row_is_not_searched_for(tmp_path: Path) -> None:
    workbook = Workbook()
    workbook.active.cell(row=25, column=1).value = "code"

    with pytest.raises(
        SheetError, match="has no header in its first 20 rows: it must have code, company, level"
    ):
        read_table(save(workbook, tmp_path / "partners.xlsx"), PARTNERS)


def test_a_workbook_damaged_below_its_header_is_refused(tmp_path: Path) -> None:
    workbook = Workbook()
    workbook.active.append(["code", "company", "level"])
    for index in range(3000):
        workbook.active.append([f"P{index}", "Company", "gold"])
    whole = save(workbook, tmp_path / "whole.xlsx")
    path = tmp_path / "partners.xlsx"
    with zipfile.ZipFile(whole) as source, zipfile.ZipFile(path, "w") as damaged:
        for item in source.infolist():
            content = source.read(item)
            if item.filename == "xl/worksheets/sheet1.xml":
                content = content[: len(content) * 2 // 3]  # cut short, as by a failed copy
            damaged.writestr(item, content)

    rows = read_table(path, PARTNERS)  # the header and first rows are intact
    with pytest.raises(SheetError) as caught:
        list(rows)

    assert str(caught.value) == f"{path} is a damaged Excel workbook"


# --- reading CSV -----------------------------------------------------------------


def write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_a_csv_from_italian_excel_is_read_with_its_bom_and_semicolons(tmp_path: Path) -> None:
    path = write_bytes(
        tmp_path / "purchases.csv",
        "\ufeffVAT;Customer_Name;Purchase_Date;Città\r\n"
        "IT12345670587;Rossi S.r.l.;2026-01-15;Roma\r\n".encode(),
    )

    assert good(rows_of(path)) == [
        (
            2,
            {
                "vat": "IT12345670587",
                "customer_name": "Rossi S.r.l.",
                "purchase_date": "2026-01-15",
            },
        )
    ]


def test_a_windows_1252_csv_keeps_its_accents(tmp_path: Path) -> None:
    path = write_bytes(
        tmp_path / "partners.csv",
        "code;company;level\r\nACME;Città Nuova S.p.A.;gold\r\n".encode("cp1252"),
    )

    assert good(rows_of(path, PARTNERS)) == [
        (2, {"code": "ACME", "company": "Città Nuova S.p.A.", "level": "gold"})
    ]


def test_a_utf8_mark_before_text_that_is_not_utf8_is_not_read_into_the_header(
    tmp_path: Path,
) -> None:
    """A file that starts as UTF-8 (its mark) and then holds a Windows-1252 byte, far
    down where only the whole file's check sees it, is read as Windows-1252 without
    the mark."""
    rows = "".join(f"P{n};Partner {n};gold\r\n" for n in range(20_000))
    path = write_bytes(
        tmp_path / "partners.csv",
        b"\xef\xbb\xbf"
        + f"code;company;level\r\n{rows}".encode()
        + "Z9;Città;gold\r\n".encode("cp1252"),
    )

    items = good(rows_of(path, PARTNERS))

    assert len(items) == 20_001
    assert items[0] == (2, {"code": "P0", "company": "Partner 0", "level": "gold"})
    assert items[-1][1]["company"] == "Città"


def test_a_nul_byte_inside_a_name_is_dropped_and_the_row_kept(tmp_path: Path) -> None:
    path = write_bytes(tmp_path / "partners.csv", b"code,company,level\nACME,Ac\x00me,gold\n")

    assert good(rows_of(path, PARTNERS)) == [
        (2, {"code": "ACME", "company": "Acme", "level": "gold"})
    ]


def test_an_unterminated_quote_spoils_only_its_own_line(tmp_path: Path) -> None:
    path = write_bytes(
        tmp_path / "partners.csv",
        b'code,company,level\nACME,Acme,gold\nBETA,"Beta, unterminated,silver\n'
        b'GAMMA,"Gamma, Inc.",bronze\nDELTA,Delta,gold\n',
    )

    items = rows_of(path, PARTNERS)

    assert bad(items) == [(3, "unterminated quote")]
    assert [line for line, _ in good(items)] == [2, 4, 5]
    assert good(items)[1][1]["company"] == "Gamma, Inc."


def test_a_200000_character_field_is_a_bad_line_not_an_exception(tmp_path: Path) -> None:
    huge = "x" * 200_000
    path = write_bytes(
        tmp_path / "partners.csv",
        f'code,company,level\nACME,{huge},gold\nBETA,"{huge}",gold\n'
        f"GAMMA,{'y' * 1001},gold\nDELTA,Delta,gold\n".encode(),
    )

    items = rows_of(path, PARTNERS)

    assert bad(items) == [(line, "a field is longer than 1,000 characters") for line in (2, 3, 4)]
    assert good(items) == [(5, {"code": "DELTA", "company": "Delta", "level": "gold"})]


def test_text_after_a_closing_quote_is_a_bad_line(tmp_path: Path) -> None:
    path = write_bytes(tmp_path / "partners.csv", b'code,company,level\nACME,"Acme"Inc,gold\n')

    assert bad(rows_of(path, PARTNERS)) == [(2, "a closing quote is followed by other text")]


def test_blank_lines_are_skipped_and_lines_keep_their_numbers(tmp_path: Path) -> None:
    path = write_bytes(
        tmp_path / "partners.csv",
        b"\n  \ncode;company;level\n\nACME;Acme;gold\n;;\n   \nBETA;Beta;silver\n;;;Note\n\n",
    )

    assert good(rows_of(path, PARTNERS)) == [
        (5, {"code": "ACME", "company": "Acme", "level": "gold"}),
        (8, {"code": "BETA", "company": "Beta", "level": "silver"}),
    ]


def test_missing_trailing_cells_read_as_empty(tmp_path: Path) -> None:
    path = write_bytes(tmp_path / "partners.csv", b"level,code,company\ngold,ACME\n")

    assert good(rows_of(path, PARTNERS)) == [(2, {"code": "ACME", "company": "", "level": "gold"})]


def test_a_csv_with_a_title_above_the_header_is_read_like_a_workbook(tmp_path: Path) -> None:
    path = write_bytes(
        tmp_path / "partners.csv", b"Elenco partner;;\r\ncode;company;level\r\nACME;Acme;gold\r\n"
    )

    assert good(rows_of(path, PARTNERS)) == [
        (3, {"code": "ACME", "company": "Acme", "level": "gold"})
    ]


def test_old_mac_line_ends_and_excel_unicode_text_are_read(tmp_path: Path) -> None:
    mac = write_bytes(tmp_path / "mac.csv", b"code;company;level\rACME;Acme;gold\r")
    unicode_text = write_bytes(
        tmp_path / "unicode.txt", "code\tcompany\tlevel\r\nACME\tCittà\tgold\r\n".encode("utf-16")
    )

    assert good(rows_of(mac, PARTNERS)) == [
        (2, {"code": "ACME", "company": "Acme", "level": "gold"})
    ]
    assert good(rows_of(unicode_text, PARTNERS)) == [
        (2, {"code": "ACME", "company": "Città", "level": "gold"})
    ]


# --- what cannot be read -----------------------------------------------------------


def test_a_wrong_csv_header_lists_the_names_found(tmp_path: Path) -> None:
    path = write_bytes(tmp_path / "partners.csv", b"Codice;Ragione sociale;Livello\nA;B;C\n")

    with pytest.raises(SheetError) as caught:
        read_table(path, PARTNERS)

    assert str(caught.value) == (
        f"{path}: the header must have code, company, level; "
        "found: Codice, Ragione sociale, Livello"
    )


def test_an_old_xls_file_is_refused_with_the_formats_to_save_as(tmp_path: Path) -> None:
    path = write_bytes(tmp_path / "partners.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600))

    with pytest.raises(SheetError) as caught:
        read_table(path, PARTNERS)

    assert str(caught.value) == f"{path} is in the old Excel .xls format: save it as .xlsx or CSV"


def test_a_password_protected_workbook_is_told_apart_from_an_xls(tmp_path: Path) -> None:
    data = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600) + "EncryptedPackage".encode("utf-16-le")
    path = write_bytes(tmp_path / "partners.xlsx", data)

    with pytest.raises(SheetError, match="is protected by a password"):
        read_table(path, PARTNERS)


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("logo.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(100)),
        ("scan.csv", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\n"),
        ("noise.csv", bytes(range(256)) * 4),
        ("partners.xlsx", b"code,company,level\nACME,Acme,gold\n"),
    ],
)
def test_content_that_is_no_table_is_refused(tmp_path: Path, name: str, data: bytes) -> None:
    path = write_bytes(tmp_path / name, data)

    with pytest.raises(SheetError) as caught:
        read_table(path, PARTNERS)

    assert str(caught.value) == f"{path} is neither CSV nor an Excel .xlsx workbook"


def test_a_zip_that_is_no_workbook_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "partners.xlsx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "not a workbook")

    with pytest.raises(SheetError, match=r"is neither CSV nor an Excel \.xlsx workbook$"):
        read_table(path, PARTNERS)


def test_an_opendocument_spreadsheet_is_refused_with_the_formats_to_save_as(
    tmp_path: Path,
) -> None:
    path = tmp_path / "partners.ods"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")

    with pytest.raises(
        SheetError, match=r"is an OpenDocument spreadsheet: save it as \.xlsx or CSV"
    ):
        read_table(path, PARTNERS)


@pytest.mark.parametrize("data", [b"", b"\xef\xbb\xbf", b"\r\n \r\n;;\r\n"])
def test_an_empty_file_names_the_expected_header(tmp_path: Path, data: bytes) -> None:
    path = write_bytes(tmp_path / "purchases.csv", data)

    with pytest.raises(SheetError) as caught:
        read_table(path, PURCHASES)

    assert str(caught.value) == (
        f"{path} is empty: the header must be vat, customer_name, purchase_date"
    )


def test_a_missing_file_is_named_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.csv"

    with pytest.raises(SheetError) as caught:
        read_table(path, PURCHASES)

    assert str(caught.value) == f"{path} cannot be read: no such file or folder"
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_a_folder_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(SheetError) as caught:
        read_table(tmp_path, PURCHASES)

    assert str(caught.value) == f"{tmp_path} cannot be read: it is a folder"


# --- writing -----------------------------------------------------------------------

COLUMNS = (
    "reference",
    "customer_name",
    "deal_value",
    "count",
    "registered_on",
    "updated_at",
    "note",
)
ROWS = [
    {
        "reference": "R-000001",
        "customer_name": "Città Nuova S.p.A.",
        "deal_value": Decimal("12500.00"),
        "count": 3,
        "registered_on": dt.date(2026, 12, 31),
        "updated_at": dt.datetime(2026, 1, 5, 10, 20, 30, 123456, tzinfo=dt.UTC),
        "note": None,
    },
    {
        "reference": "R-000002",
        "customer_name": '=HYPERLINK("http://evil")',
        "deal_value": Decimal("1E+3"),
        "count": 0,
        "registered_on": dt.date(2026, 1, 2),
        "updated_at": dt.datetime(2026, 1, 5, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=2))),
    },
]


def test_a_csv_is_utf8_with_commas_and_iso_dates(tmp_path: Path) -> None:
    path = tmp_path / "registrations.csv"

    assert write_table(path, COLUMNS, ROWS, style="csv") == 2

    assert path.read_bytes().decode("utf-8").splitlines() == [
        "reference,customer_name,deal_value,count,registered_on,updated_at,note",
        "R-000001,Città Nuova S.p.A.,12500.00,3,2026-12-31,2026-01-05T10:20:30+00:00,",
        'R-000002,"\'=HYPERLINK(""http://evil"")",1000,0,2026-01-02,2026-01-05T10:00:00+00:00,',
    ]
    assert good(list(read_table(path, ("reference", "deal_value"))))[0] == (
        2,
        {"reference": "R-000001", "deal_value": "12500.00"},
    )


def test_an_excel_csv_is_what_italian_excel_opens(tmp_path: Path) -> None:
    path = tmp_path / "registrations.csv"

    write_table(path, COLUMNS, ROWS, style="excel-csv")

    data = path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbfreference;customer_name;")
    assert data.decode("utf-8-sig").split("\r\n") == [
        "reference;customer_name;deal_value;count;registered_on;updated_at;note",
        "R-000001;Città Nuova S.p.A.;12500,00;3;31/12/2026;05/01/2026 10:20;",
        'R-000002;"\'=HYPERLINK(""http://evil"")";1000;0;02/01/2026;05/01/2026 10:00;',
        "",
    ]
    assert good(list(read_table(path, ("customer_name", "deal_value"))))[0] == (
        2,
        {"customer_name": "Città Nuova S.p.A.", "deal_value": "12500,00"},
    )


def test_an_xlsx_has_real_dates_and_numbers_under_a_frozen_bold_header(tmp_path: Path) -> None:
    path = tmp_path / "registrations.xlsx"

    assert write_table(path, COLUMNS, ROWS, style="xlsx") == 2

    sheet = load_workbook(path).active
    assert [cell.value for cell in sheet[1]] == list(COLUMNS)
    assert all(cell.font.bold for cell in sheet[1])
    assert sheet.freeze_panes == "A2"
    name, value, count, day, moment, note = sheet["B2":"G2"][0]
    assert name.value == "Città Nuova S.p.A."
    assert value.value == 12500 and value.data_type == "n" and value.number_format == "#,##0.00"
    assert count.value == 3 and count.data_type == "n"
    assert day.is_date and day.value == dt.datetime(2026, 12, 31)
    assert day.number_format == "dd/mm/yyyy"
    assert moment.is_date and moment.value == dt.datetime(2026, 1, 5, 10, 20, 30, 123000)
    assert note.value is None
    assert sheet["B3"].value == '=HYPERLINK("http://evil")' and sheet["B3"].data_type == "s"
    assert sheet["F3"].value == dt.datetime(2026, 1, 5, 10, 0)  # 12:00 at UTC+2, in UTC
    assert 12 <= sheet.column_dimensions["B"].width <= 60

    read_back = good(list(read_table(path, ("reference", "registered_on", "deal_value"))))
    assert read_back == [
        (2, {"reference": "R-000001", "registered_on": "2026-12-31", "deal_value": "12500"}),
        (3, {"reference": "R-000002", "registered_on": "2026-01-02", "deal_value": "1000"}),
    ]


def test_an_export_of_no_rows_is_the_header_alone(tmp_path: Path) -> None:
    path = tmp_path / "empty.xlsx"

    assert write_table(path, ("a", "b"), [], style="xlsx") == 0
    assert [[cell.value for cell in row] for row in load_workbook(path).active.rows] == [["a", "b"]]


@pytest.mark.parametrize("style", ["csv", "excel-csv", "xlsx"])
def test_a_written_file_is_readable_by_its_owner_only_whatever_the_umask(
    tmp_path: Path, style: str
) -> None:
    path = tmp_path / "out"
    path.write_text("old")
    path.chmod(0o644)
    previous = os.umask(0)
    try:
        write_table(path, COLUMNS, ROWS, style=style)  # type: ignore[arg-type]
    finally:
        os.umask(previous)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == ["out"]


@pytest.mark.parametrize("target", ["/", ".", "missing/registrations.csv"])
def test_an_impossible_target_is_named_and_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str
) -> None:
    monkeypatch.chdir(tmp_path)

    with pytest.raises(SheetError) as caught:
        write_table(Path(target), COLUMNS, ROWS, style="csv")

    message = str(caught.value)
    assert message.startswith(f"{target} ")
    assert ".tmp" not in message and "tmp" not in message.replace(str(tmp_path), "")
    assert os.listdir(tmp_path) == []


def test_a_pipe_is_not_replaced_by_the_export(tmp_path: Path) -> None:
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)

    with pytest.raises(SheetError, match="pipe is not a regular file: give a file name"):
        write_table(pipe, COLUMNS, ROWS, style="csv")

    assert stat.S_ISFIFO(pipe.stat().st_mode)
    assert os.listdir(tmp_path) == ["pipe"]


def test_a_full_disk_leaves_the_old_file_and_no_temporary_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "registrations.xlsx"
    path.write_text("the previous export")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", "/some/.tmp-name")

    monkeypatch.setattr(os, "fsync", full)

    with pytest.raises(SheetError) as caught:
        write_table(path, COLUMNS, ROWS, style="xlsx")

    assert str(caught.value) == f"{path} cannot be written: the disk is full"
    assert path.read_text() == "the previous export"
    assert os.listdir(tmp_path) == ["registrations.xlsx"]


def test_a_failure_while_producing_rows_leaves_no_half_file(tmp_path: Path) -> None:
    path = tmp_path / "registrations.csv"

    def rows() -> Iterator[dict[str, object]]:
        yield ROWS[0]
        raise RuntimeError("the database went away")

    with pytest.raises(RuntimeError, match="went away"):
        write_table(path, COLUMNS, rows(), style="csv")

    assert os.listdir(tmp_path) == []


def test_many_rows_stream_to_an_xlsx(tmp_path: Path) -> None:
    path = tmp_path / "many.xlsx"
    rows = ({"n": index, "when": dt.date(2026, 1, 1)} for index in range(3000))

    assert write_table(path, ("n", "when"), rows, style="xlsx") == 3000

    workbook = load_workbook(path, read_only=True)
    values = list(workbook.active.iter_rows(values_only=True))
    workbook.close()
    assert len(values) == 3001 and values[-1] == (2999, dt.datetime(2026, 1, 1))


@pytest.mark.parametrize(
    ("name", "excel_csv", "style"),
    [
        ("out.xlsx", False, "xlsx"),
        ("OUT.XLSX", True, "xlsx"),
        ("out.csv", False, "csv"),
        ("out.csv", True, "excel-csv"),
        ("out", True, "excel-csv"),
        ("out.xls", False, "csv"),
    ],
)
def test_the_style_follows_the_name_and_the_option(name: str, excel_csv: bool, style: str) -> None:
    assert style_for(Path(name), excel_csv=excel_csv) == style


def test_an_excel_csv_decimal_has_no_grouping(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"

    write_table(
        path, ("v",), [{"v": Decimal("1234567.5")}, {"v": Decimal("-3.25")}], style="excel-csv"
    )

    assert path.read_bytes().decode("utf-8-sig").split("\n")[1:3] == [
        "1234567,5\r",
        "-3,25\r",
    ]


# --- workbooks that unpack to far more than they weigh -------------------------------


def _bomb(path: Path, part: str, content: bytes) -> Path:
    """A real workbook with one of its parts replaced by `content` (deflated: tiny)."""
    book = Workbook()
    book.active.append(["vat", "customer_name", "purchase_date"])
    plain = io.BytesIO()
    book.save(plain)
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for item in source.infolist():
            if item.filename != part:
                out.writestr(item.filename, source.read(item))
        out.writestr(part, content)
    return path


def test_a_sheet_that_unpacks_past_the_cap_is_refused_naming_the_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(sheets, "MAX_PART_BYTES", 1024 * 1024)
    row = b"<row><c t='inlineStr'><is><t>IT12345670587</t></is></c></row>"
    xml = b"<worksheet><sheetData>" + row * 100_000 + b"</sheetData></worksheet>"
    path = _bomb(tmp_path / "bomb.xlsx", "xl/worksheets/sheet1.xml", xml)
    assert path.stat().st_size < 100_000  # 6 MB of rows in a few kB
    with pytest.raises(SheetError, match="unpacks to more than 1 MB"):
        list(read_table(path, PURCHASES))


def test_one_enormous_string_is_refused_before_it_is_read(tmp_path, monkeypatch):
    monkeypatch.setattr(sheets, "MAX_PART_BYTES", 1024 * 1024)
    strings = b"<sst><si><t>" + b"A" * 5_000_000 + b"</t></si></sst>"
    path = _bomb(tmp_path / "string.xlsx", "xl/sharedStrings.xml", strings)
    with pytest.raises(SheetError, match="unpacks to more than 1 MB"):
        list(read_table(path, PURCHASES))


def test_a_sheet_longer_than_excel_allows_is_refused_naming_the_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(sheets, "MAX_SHEET_ROWS", 100)
    book = Workbook()
    book.active.append(["vat", "customer_name", "purchase_date"])
    for n in range(150):
        book.active.append([f"IT{n}", "Cliente", "2026-01-01"])
    book.save(tmp_path / "long.xlsx")
    with pytest.raises(SheetError, match="more than 100 rows, Excel's own limit"):
        list(read_table(tmp_path / "long.xlsx", PURCHASES))


def test_a_cell_far_to_the_right_does_not_make_every_row_wide(tmp_path, monkeypatch):
    """One cell in column XFD on each row: openpyxl would give 16,384 values a row (15
    minutes for a sheet of Excel's full length); only the header's columns are read."""
    book = Workbook()
    book.active.append(["vat", "customer_name", "purchase_date"])
    for n in range(200):
        book.active.append([f"IT{n:011d}", f"Cliente {n}", "2026-01-01"])
        book.active.cell(row=n + 2, column=16_384, value="x")
    book.save(tmp_path / "wide.xlsx")
    converted = 0
    cell_text = sheets._cell_text

    def counted(value: object) -> str:
        nonlocal converted
        converted += 1
        return cell_text(value)

    monkeypatch.setattr(sheets, "_cell_text", counted)
    rows = list(read_table(tmp_path / "wide.xlsx", PURCHASES))
    assert len(rows) == 200 and rows[-1].cells["customer_name"] == "Cliente 199"
    # The header's search (20 rows of its first columns), then 3 cells a row.
    assert converted <= sheets.HEADER_SEARCH_ROWS * sheets.MAX_HEADER_COLUMNS + 3 * 200


def test_counting_a_bombs_rows_for_the_progress_bar_never_unpacks_it(tmp_path, monkeypatch):
    monkeypatch.setattr(sheets, "MAX_PART_BYTES", 1024 * 1024)
    strings = b"<sst><si><t>" + b"A" * 5_000_000 + b"</t></si></sst>"
    path = _bomb(tmp_path / "string.xlsx", "xl/sharedStrings.xml", strings)
    load = pytest.fail  # openpyxl's loader must not be reached
    monkeypatch.setattr("openpyxl.load_workbook", lambda *a, **k: load("unpacked"))
    assert sheets.count_lines(path) is None
