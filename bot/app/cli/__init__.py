"""`pai-bot`: run the bot and the staff's operations from the shell (PRODUCT.md §3)."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.domain.errors import (
    AlreadyRegistered,
    CustomerNotNew,
    CustomerProtected,
    DomainError,
    InvalidVat,
    NoIncentiveInForce,
    NotLinked,
)
from bot.domain.parsing import normalise_vat
from bot.domain.rules import Rules, next_allowed_moment, sending_allowed
from bot.i18n import Texts, describe_invalid, html_to_text
from bot.logs import configure_logging
from bot.reports import numbers_text
from bot.resources import Resources, open_resources
from bot.services.accounts import (
    create_invite,
    list_salespeople,
    remembered_bot_username,
    unlink_salesperson,
)
from bot.services.eligibility import check_for_partner, staff_verdict
from bot.services.imports import ImportReport, import_partners, import_purchases
from bot.services.payouts import PAYOUT_COLUMNS, PaidReport, approved_unpaid, mark_paid
from bot.services.registrations import EXPORT_COLUMNS, export_registrations
from bot.services.reminders import Due, Preview, preview_reminders
from bot.services.stats import chart_png, programme_numbers
from bot.sheets import style_for, write_table
from bot.storage.database import display_url, prepare_sqlite_file
from bot.storage.schema import Migration, check_schema, migrate_database

T = TypeVar("T")
OK, REFUSED, FAILED = 0, 1, 2
# The CLI speaks to staff at a shell: English.
TEXTS = Texts("en")

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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    arguments = list(sys.argv[1:] if argv is None else argv)
    if not arguments:
        parser.print_help()
        return OK
    args = parser.parse_args(arguments)
    try:
        settings = Settings()
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(part) for part in problem["loc"]).upper()
        print(f"pai-bot: setting {where}: {problem['msg']}", file=sys.stderr)
        return FAILED
    configure_logging(settings.pai_log_format)
    command: Callable[[argparse.Namespace, Settings], int] = args.command
    try:
        return command(args, settings)
    except DomainError as exc:
        print(f"pai-bot: {exc}", file=sys.stderr)
        return FAILED
    except OSError as exc:
        if exc.filename:  # a file of ours, not the database server
            print(f"pai-bot: {exc.filename}: {exc.strerror}", file=sys.stderr)
            return FAILED
        return report_database_error(exc, settings)
    except SQLAlchemyError as exc:
        return report_database_error(exc, settings)
    except KeyboardInterrupt:
        return FAILED


def report_database_error(exc: Exception, settings: Settings) -> int:
    """One sentence, not a traceback; statement parameters and the password stay hidden."""
    reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
    where = display_url(settings.database_url)
    print(f"pai-bot: cannot use the database {where}: {reason}", file=sys.stderr)
    return FAILED


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pai-bot",
        description="PAI Assistant: the partner incentive bot and the staff's operations.",
        epilog="Each command explains itself: pai-bot COMMAND --help. "
        "Exit status: 0 done, 1 something refused, 2 an error.",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    def command(name: str, summary: str, details: str = "") -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            help=summary,
            description=summary[0].upper() + summary[1:] + ".",
            epilog=details or None,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    run = command(
        "run",
        "run the bot (long polling, or a webhook with PAI_WEBHOOK_URL)",
        "Reads TELEGRAM_BOT_TOKEN and the rest from the environment or .env in this folder.\n"
        "Example: pai-bot run",
    )
    run.set_defaults(command=run_bot)

    migrate = command(
        "migrate",
        "bring the database up to this version's schema, keeping every row",
        "Run it after installing a new version, before `pai-bot run`: the bot refuses to\n"
        "start on a database an earlier version made until it has been migrated. A\n"
        "database made before migrations existed is recognised by its tables; a new one\n"
        "is created. All or nothing: a migration that fails changes nothing. Running it\n"
        "again when nothing is left to do changes nothing either. Stop the bot first, and\n"
        "keep a backup (a copy of the SQLite file, or pg_dump).\n"
        "Example: pai-bot migrate && pai-bot run",
    )
    migrate.set_defaults(command=run_migrate)

    purchases = command("import-purchases", "load the vendor's sales history", PURCHASES_HELP)
    purchases.add_argument("file", type=Path, metavar="FILE")
    purchases.add_argument(
        "--allow-future", action="store_true", help="import purchases dated after today too"
    )
    purchases.set_defaults(command=run_import_purchases)

    partners = command("import-partners", "create or update partners", PARTNERS_HELP)
    partners.add_argument("file", type=Path, metavar="FILE")
    partners.set_defaults(command=run_import_partners)

    invite = command(
        "invite",
        "print a single-use invite link for a partner, valid 7 days",
        "The link is the last line of the output. Example: pai-bot invite ACME",
    )
    invite.add_argument("code", metavar="CODE")
    invite.set_defaults(command=run_invite)

    check = command(
        "check",
        "is this customer new? who holds it? what would it earn?",
        "Example: pai-bot check IT12345670587 --partner ACME",
    )
    check.add_argument("vat", metavar="VAT")
    check.add_argument(
        "--partner", metavar="CODE", help="quote for this partner's level and loyalty"
    )
    check.set_defaults(command=run_check)

    export = command("export", "write all registrations to a CSV or Excel file", EXPORT_HELP)
    add_output_file(export)
    export.set_defaults(command=run_export)

    salespeople = command(
        "salespeople",
        "list who is linked to which partner",
        "Columns: Telegram id, partner, name, @username, joined, last seen.\n"
        "Example: pai-bot salespeople ACME",
    )
    salespeople.add_argument("code", metavar="CODE", nargs="?", help="only this partner's")
    salespeople.set_defaults(command=run_salespeople)

    unlink = command(
        "unlink",
        "take a salesperson's access away at once",
        "The partner keeps the registrations the person made; the person's buttons stop\n"
        "working and the bot answers them as a stranger until a new invite.\n"
        "Example: pai-bot unlink 123456789 (the id `pai-bot salespeople` shows)",
    )
    unlink.add_argument("telegram_id", metavar="TELEGRAM_ID", type=int)
    unlink.set_defaults(command=run_unlink)

    reminders = command(
        "reminders",
        "show what the reminders would send at a moment, sending nothing",
        "The running bot sends reminders by itself; this shows what its tick would do,\n"
        "to check a change of the rules file. --at is in the programme's time zone\n"
        "unless it carries its own offset.\n"
        "Example: pai-bot reminders --dry-run --at 2026-12-01T10:00",
    )
    reminders.add_argument(
        "--dry-run", action="store_true", required=True, help="send nothing (required)"
    )
    reminders.add_argument(
        "--at", metavar="ISO-DATETIME", help="the moment to look at (default: now)"
    )
    reminders.set_defaults(command=run_reminders_preview)

    stats = command(
        "stats",
        "print the programme's numbers",
        "The same numbers as /stats in chat. Example: pai-bot stats --chart stats.png",
    )
    stats.add_argument("--chart", type=Path, metavar="FILE.png", help="also draw the chart")
    stats.set_defaults(command=run_stats)

    payouts = command(
        "payouts",
        "approved incentives to pay, and marking them paid",
        "pai-bot payouts export FILE      approved, unpaid incentives, partner by partner\n"
        "pai-bot payouts mark-paid FILE   mark the file's references paid (idempotent)\n"
        "Example: pai-bot payouts export payouts.xlsx",
    )
    steps = payouts.add_subparsers(required=True, metavar="STEP")
    payout_export = steps.add_parser(
        "export",
        help="write the approved, unpaid incentives (CSV or .xlsx)",
        description="Write the approved, unpaid incentives, partner by partner.",
        epilog=f"Columns: {', '.join(PAYOUT_COLUMNS)}\nExample: pai-bot payouts export pay.xlsx",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_output_file(payout_export)
    payout_export.set_defaults(command=run_payouts_export)
    payout_paid = steps.add_parser(
        "mark-paid",
        help="mark the registrations a file lists as paid",
        description="Mark paid every registration the file lists (its reference column).",
        epilog="The file is the one `payouts export` wrote, or any CSV / .xlsx with a\n"
        "reference column. Marking twice changes nothing.\n"
        "Example: pai-bot payouts mark-paid pay.xlsx --date 2027-01-31",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    payout_paid.add_argument("file", type=Path, metavar="FILE")
    payout_paid.add_argument(
        "--date", metavar="YYYY-MM-DD", help="the day they were paid (default: today)"
    )
    payout_paid.set_defaults(command=run_payouts_mark_paid)

    demo = command("demo", "try the bot in this terminal: no token, no network", DEMO_HELP)
    demo.add_argument(
        "--db",
        type=Path,
        metavar="PATH",
        help="keep the demo's SQLite database here, its files in PATH-files/ beside it "
        "(default: a temporary folder, removed at exit)",
    )
    demo.add_argument(
        "--language", choices=("en", "it"), default="en", help="the bot's language (default: en)"
    )
    demo.set_defaults(command=run_demo)
    return parser


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
        shared = await open_resources(settings)
        try:
            return await work(shared)
        finally:
            await shared.close()

    return asyncio.run(go())


# --- run -----------------------------------------------------------------------


def run_bot(args: argparse.Namespace, settings: Settings) -> int:
    # Telegram is imported only by the command that talks to it.
    from telegram.error import BadRequest, InvalidToken, NetworkError

    from bot.app.application import LOST_LEAD_KEY, build_application
    from bot.app.web import serve_webhook, webhook_of
    from handlers import ALLOWED_UPDATES

    log = logging.getLogger(__name__)
    logging.getLogger("telegram.ext").addFilter(_quiet_startup_failures(InvalidToken, NetworkError))
    # Before anything talks to Telegram: a database that needs migrating is one sentence.
    asyncio.run(check_schema(settings.database_url, settings.timeouts))
    application = build_application(settings)  # refuses a missing or placeholder token
    if settings.pai_webhook_url is not None:
        webhook_of(settings)  # a wrong address is one sentence before anything starts
    created = prepare_sqlite_file(settings.database_url, must_exist=False)
    warn_if_env_file_is_shared(log)
    log.info(
        "starting; database %s%s",
        display_url(settings.database_url),
        " (new, created now)" if created else "",
    )
    try:
        if settings.pai_webhook_url is None:
            application.run_polling(allowed_updates=ALLOWED_UPDATES)
        else:
            asyncio.run(serve_webhook(application, settings, ALLOWED_UPDATES))
    except InvalidToken:
        print(
            "pai-bot: Telegram refused TELEGRAM_BOT_TOKEN: check it with @BotFather.",
            file=sys.stderr,
        )
        return FAILED
    except BadRequest as exc:  # a NetworkError to PTB, but Telegram answered: no
        print(f"pai-bot: Telegram refused the webhook: {exc.message}", file=sys.stderr)
        return FAILED
    except NetworkError as exc:
        print(
            f"pai-bot: cannot reach the Bot API at {settings.api_base_url}: {exc.message}",
            file=sys.stderr,
        )
        return FAILED
    if application.bot_data.get(LOST_LEAD_KEY):
        print("pai-bot: another instance took over polling: stopped.", file=sys.stderr)
        return FAILED
    return OK


# --- migrate -------------------------------------------------------------------


def announce_database(settings: Settings, *, may_create: bool) -> None:
    """Say which database a command works on; make a new SQLite file where it may."""
    where = display_url(settings.database_url)
    created = prepare_sqlite_file(settings.database_url, must_exist=not may_create)
    print(f"pai-bot: database {where}{' (new, created now)' if created else ''}", file=sys.stderr)


def run_migrate(args: argparse.Namespace, settings: Settings) -> int:
    announce_database(settings, may_create=True)
    migration = asyncio.run(migrate_database(settings.database_url, settings.timeouts))
    print(describe_migration(migration))
    return OK


def describe_migration(migration: Migration) -> str:
    if migration.before is None:
        return f"The database was empty: created the schema at revision {migration.after}."
    lines = []
    if migration.recognised:
        lines.append(
            f"The database had no recorded revision; its tables match revision {migration.before}."
        )
    if not migration.steps:
        lines.append(f"Already up to date at revision {migration.after}.")
        return "\n".join(lines)
    lines.append(f"Migrated from revision {migration.before} to {migration.after}:")
    lines += [f"  {step}" for step in migration.steps]
    return "\n".join(lines)


def warn_if_env_file_is_shared(log: logging.Logger) -> None:
    """The token sits in .env: say so when other users of the machine can read it."""
    env_file = Path(".env")
    try:
        mode = env_file.stat().st_mode
    except OSError:
        return
    if mode & 0o077:
        log.warning(".env can be read by other users of this machine: chmod 600 .env")


def _quiet_startup_failures(*kinds: type[BaseException]) -> logging.Filter:
    """Drop the tracebacks of these errors, and PTB's line about a failed start.

    A failed start gets our one sentence instead; once running, PTB's lines about
    retrying (Telegram unreachable for a while) stay, without their tracebacks.
    """

    class QuietStartup(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            if "(Bootstrap" in record.getMessage():
                return False
            if record.exc_info and isinstance(record.exc_info[1], kinds):
                record.exc_info = None
            return True

    return QuietStartup()


# --- imports -------------------------------------------------------------------


def run_import_purchases(args: argparse.Namespace, settings: Settings) -> int:
    async def work(shared: Resources) -> ImportReport:
        async with shared.sessions() as session:
            return await import_purchases(
                session=session,
                rules=shared.rules,
                path=args.file,
                today=shared.today(),
                allow_future=args.allow_future,
            )

    return report_import(args.file, with_database(settings, work, may_create=True), "purchases")


def run_import_partners(args: argparse.Namespace, settings: Settings) -> int:
    async def work(shared: Resources) -> ImportReport:
        async with shared.sessions() as session:
            return await import_partners(
                session=session, rules=shared.rules, path=args.file, now=shared.now()
            )

    return report_import(args.file, with_database(settings, work, may_create=True), "partners")


def report_import(path: Path, report: ImportReport, what: str) -> int:
    for rejection in report.rejected:
        print(f"{path}:{rejection.line}: {rejection.reason}", file=sys.stderr)
    parts = [f"{report.read} rows read", f"{report.added} {what} added"]
    if what == "partners":
        parts.append(f"{report.updated} updated")
    parts += [f"{report.unchanged} unchanged", f"{len(report.rejected)} rejected"]
    print(", ".join(parts))
    if report.repeated:
        lines = ", ".join(str(line) for line in report.repeated)
        print(f"lines {lines} repeat a code of an earlier line: the later row was taken")
    return REFUSED if report.rejected else OK


# --- invite --------------------------------------------------------------------


def run_invite(args: argparse.Namespace, settings: Settings) -> int:
    async def work(shared: Resources) -> int:
        async with shared.sessions() as session:
            username = settings.telegram_bot_username or await remembered_bot_username(
                session=session
            )
            if not username:
                print(
                    "pai-bot: the bot's username is not known yet: set TELEGRAM_BOT_USERNAME "
                    "or start the bot once with `pai-bot run`.",
                    file=sys.stderr,
                )
                return FAILED
            invite = await create_invite(session=session, partner_code=args.code, now=shared.now())
        expires = invite.expires_at.astimezone(shared.rules.timezone)
        print(f"Invite for {invite.company} ({invite.partner_code}), single use,")
        print(f"valid until {expires:%Y-%m-%d %H:%M} ({shared.rules.timezone.key}):")
        print(invite.url(username))
        return OK

    return with_database(settings, work, may_create=False)


# --- check ---------------------------------------------------------------------


def run_check(args: argparse.Namespace, settings: Settings) -> int:
    async def work(shared: Resources) -> int:
        try:
            vat = normalise_vat(args.vat, default_country=shared.rules.country)
        except InvalidVat as exc:
            reason = describe_invalid(TEXTS, exc, country=shared.rules.country)
            print(f"{args.vat}: not a valid VAT number: {reason}")
            return FAILED
        async with shared.sessions() as session:
            if args.partner:
                return await check_as_partner(session, shared, vat, args.partner)
            return await check_as_staff(session, shared, vat)

    return with_database(settings, work, may_create=False)


async def check_as_staff(session: AsyncSession, shared: Resources, vat: str) -> int:
    """The verdict for staff: unlike partners, staff see who holds a protection."""
    verdict = await staff_verdict(session=session, rules=shared.rules, vat=vat, now=shared.now())
    name = f" ({verdict.vendor_name})" if verdict.vendor_name else ""
    holder = verdict.holder
    if holder is not None:
        print(
            f"{vat}{name}: protected until {holder.until.isoformat()} by {holder.partner_code} "
            f"({holder.company}), {holder.reference}, registered as {holder.typed_name!r}"
        )
        return REFUSED
    last = verdict.last_purchase
    if not verdict.is_new:
        assert last is not None
        assert verdict.new_from is not None
        print(
            f"{vat}{name}: not new, last purchase {last.isoformat()}; "
            f"new from {verdict.new_from.isoformat()}"
        )
        return REFUSED
    history = f"last purchase {last.isoformat()}" if last else "no purchase on record"
    print(
        f"{vat}{name}: new customer ({history}); registering today protects it until "
        f"{verdict.protected_until_if_registered.isoformat()}"
    )
    if not verdict.quotes:
        print("  no incentive version is in force today")
    for quote in verdict.quotes:
        print(f"  {quote.level}: {quote.amount} {quote.currency} (rules from {quote.version})")
    return OK


async def check_as_partner(session: AsyncSession, shared: Resources, vat: str, code: str) -> int:
    try:
        partner, verdict = await check_for_partner(
            session=session, rules=shared.rules, partner_code=code, vat=vat, now=shared.now()
        )
    except CustomerNotNew as refusal:
        print(f"{vat}: not new, last purchase {refusal.last_purchase.isoformat()}")
        return REFUSED
    except CustomerProtected as refusal:
        print(f"{vat}: protected by another partner until {refusal.until.isoformat()}")
        return REFUSED
    except AlreadyRegistered as refusal:
        print(
            f"{vat}: already registered by {code.upper()} as {refusal.reference} "
            f"until {refusal.until.isoformat()}"
        )
        return REFUSED
    except NoIncentiveInForce:
        print(f"{vat}: no incentive version is in force today")
        return REFUSED
    quote = verdict.quote
    earn = TEXTS.money(quote.amount, quote.currency)
    print(
        f"{vat}: new customer; {partner.code} would earn {earn} "
        f"(level {quote.level}, {quote.earlier_registrations} registrations in the loyalty window, "
        f"multiplier {quote.loyalty_multiplier or '-'}, rules from {quote.version}), "
        f"protected until {verdict.protected_until.isoformat()}"
    )
    return OK


# --- export --------------------------------------------------------------------


def add_output_file(parser: argparse.ArgumentParser) -> None:
    """The file an export writes, and its Excel flavour of CSV."""
    parser.add_argument("file", type=Path, metavar="FILE")
    parser.add_argument(
        "--excel-csv", action="store_true", help="CSV for Italian Excel: BOM, ';', decimal comma"
    )


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


def run_export(args: argparse.Namespace, settings: Settings) -> int:
    async def read(shared: Resources) -> Rows:
        async with shared.sessions() as session:
            return [row async for row in export_registrations(session=session)]

    _rows, count = export_rows(args, settings, EXPORT_COLUMNS, read)
    print(f"{count} registrations written to {args.file}")
    return OK


# --- people --------------------------------------------------------------------


def run_salespeople(args: argparse.Namespace, settings: Settings) -> int:
    async def work(shared: Resources) -> int:
        async with shared.sessions() as session:
            people = await list_salespeople(session=session, partner_code=args.code)
        if not people:
            print("nobody is linked" + (f" to {args.code.upper()}" if args.code else ""))
            return OK
        zone = shared.rules.timezone
        print("telegram_id\tpartner\tname\tusername\tjoined\tlast_seen")
        for person in people:
            seen = person.last_seen_at
            print(
                "\t".join(
                    [
                        str(person.telegram_user_id),
                        person.partner_code,
                        person.display_name or "-",
                        f"@{person.username}" if person.username else "-",
                        f"{person.linked_at.astimezone(zone):%Y-%m-%d}",
                        f"{seen.astimezone(zone):%Y-%m-%d %H:%M}" if seen else "never",
                    ]
                )
            )
        return OK

    return with_database(settings, work, may_create=False)


def run_unlink(args: argparse.Namespace, settings: Settings) -> int:
    async def work(shared: Resources) -> int:
        try:
            async with shared.sessions() as session:
                person = await unlink_salesperson(
                    session=session, telegram_user_id=args.telegram_id, now=shared.now()
                )
        except NotLinked:
            print(
                f"pai-bot: nobody with Telegram id {args.telegram_id} is linked "
                "(see pai-bot salespeople)",
                file=sys.stderr,
            )
            return FAILED
        who = person.display_name or f"Telegram id {person.telegram_user_id}"
        print(
            f"{who} no longer works for {person.partner_code}; "
            f"the registrations they made stay with {person.partner_code}."
        )
        return OK

    return with_database(settings, work, may_create=False)


# --- stats ---------------------------------------------------------------------


def run_stats(args: argparse.Namespace, settings: Settings) -> int:
    async def work(shared: Resources) -> int:
        async with shared.sessions() as session:
            numbers = await programme_numbers(session=session, rules=shared.rules, now=shared.now())
        print(html_to_text(numbers_text(TEXTS, shared.rules, numbers)))
        if args.chart:
            png = chart_png(numbers, shared.rules.levels, TEXTS.plain("stats_chart_title"))
            args.chart.write_bytes(png)
            print(f"chart written to {args.chart}")
        return OK

    return with_database(settings, work, may_create=False)


# --- payouts -------------------------------------------------------------------


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
                raise DomainError(f"--date {args.date!r} is not a date like 2027-01-31") from None
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


# --- demo ----------------------------------------------------------------------


def run_demo(args: argparse.Namespace, settings: Settings) -> int:
    # The demo builds its own settings: nothing of .env decides where it writes.
    from bot.app.demo import main as demo

    db: Path | None = args.db
    return demo(database=db, language=args.language)


# --- reminders -----------------------------------------------------------------


def run_reminders_preview(args: argparse.Namespace, settings: Settings) -> int:
    async def work(shared: Resources) -> int:
        rules = shared.rules
        moment = shared.now()
        if args.at:
            try:
                moment = dt.datetime.fromisoformat(args.at)
            except ValueError:
                print(
                    f"pai-bot: --at {args.at!r} is not a date and time like 2026-12-01T10:00",
                    file=sys.stderr,
                )
                return FAILED
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=rules.timezone)
        if not sending_allowed(rules, moment):
            quiet = moment
            moment = next_allowed_moment(rules, quiet)
            print(
                f"{_local(quiet, rules)}: quiet hours ({rules.reminders.quiet_hours()}"
                f"{', weekdays only' if rules.reminders.weekdays_only else ''}): nothing is sent "
                f"then; the next allowed moment is {_local(moment, rules)}."
            )
        async with shared.sessions() as session:
            preview = await preview_reminders(session=session, rules=rules, moment=moment)
        print(
            f"{_local(moment, rules)}: {preview.expiring} registrations would expire, "
            f"{len(preview.due)} reminders would be sent" + (":" if preview.due else ".")
        )
        for due in preview.due:
            print("  " + _preview_line(due, preview))
        return OK

    return with_database(settings, work, may_create=False)


def _local(moment: dt.datetime, rules: Rules) -> str:
    return f"{moment.astimezone(rules.timezone):%Y-%m-%d %H:%M} ({rules.timezone.key})"


def _preview_line(due: Due, preview: Preview) -> str:
    person = due.recipient
    who = person.display_name or "-"
    if person.username:
        who += f" @{person.username}"
    who += f" ({person.telegram_user_id}, {preview.partner_codes.get(due.partner_id, '?')})"
    if due.registration_id is None:
        return f"{due.kind:<9} to {who}: no registration since {due.period.split('/')[0]}"
    reference = preview.references.get(due.registration_id, "?")
    return f"{due.kind:<9} to {who}: {reference} ({due.period})"
