"""What `pai-bot COMMAND --help` says: columns, formats and an example for each. Kept
light: `pai-bot --help` reads this and imports nothing heavy."""

from __future__ import annotations

from bot.domain.files import EXPORT_COLUMNS

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

DEMO_HELP = """\
The real bot (the same handlers, services and database code as `run`) against a
Telegram of its own that lives in the package: no token, no internet. Its SQLite
database is seeded with three partners (gold, certified, registered), a few
hundred customers with two years of purchases and registrations in every state.

You chat as a salesperson of the gold partner: the bot's messages are printed,
its buttons numbered (type the number to press one). Besides the bot's commands:
  /as staff      speak as programme staff (/stats saves its chart as a PNG)
  /as CODE       speak as that partner's salesperson (AURORA, BITLINE, CEDRO)
  /time +3w      move the clock ahead (+2d, +5h, +30m): the reminders due come
  /quit          end (so does Ctrl-D)

Example: pai-bot demo --db demo.db"""
