"""`pai-bot`: run the bot and the staff's operations from the shell (PRODUCT.md §3)."""

from __future__ import annotations

import argparse
import difflib
import importlib
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from bot.app.cli.help import DEMO_HELP, EXPORT_HELP, PARTNERS_HELP, PURCHASES_HELP
from bot.domain.files import PAYOUT_COLUMNS

if TYPE_CHECKING:
    from bot.config import Settings

# Exit statuses: done, something refused (a rejected row, a customer that does not
# qualify), an error.
OK, REFUSED, FAILED = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. Only what the command needs is imported (matplotlib, openpyxl,
    python-telegram-bot, Alembic cost seconds together): `--help` imports none."""
    parser = build_parser()
    arguments = list(sys.argv[1:] if argv is None else argv)
    if not arguments:
        parser.print_help()
        return OK
    args = parser.parse_args(arguments)
    from pydantic import ValidationError
    from sqlalchemy.exc import SQLAlchemyError

    from bot.app.cli.common import report_database_error
    from bot.config import Settings, describe_setting_error
    from bot.domain.errors import DomainError
    from bot.logs import configure_logging
    from bot.problems import SetupError

    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"pai-bot: {describe_setting_error(exc)}", file=sys.stderr)
        return FAILED
    configure_logging(settings.pai_log_format)
    command = _command(args.command)
    try:
        return command(args, settings)
    except (DomainError, SetupError) as exc:
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


def _command(name: str) -> Callable[[argparse.Namespace, Settings], int]:
    """The function behind a command, as "module:function" in this package, imported now."""
    module, _, function = name.partition(":")
    found: Callable[[argparse.Namespace, Settings], int] = getattr(
        importlib.import_module(f"bot.app.cli.{module}"), function
    )
    return found


class Parser(argparse.ArgumentParser):
    """argparse, plus "did you mean …?" for a command typed wrong."""

    def error(self, message: str) -> NoReturn:
        typed = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if typed is not None:
            choices = [choice.strip("' ") for choice in typed[2].split(",")]
            close = difflib.get_close_matches(typed[1], choices, n=1, cutoff=0.6)
            if close:
                message = f"unknown command '{typed[1]}': did you mean '{close[0]}'?"
            else:
                message = f"unknown command '{typed[1]}': one of {', '.join(choices)}"
        super().error(message)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pai-assistant")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


class _Version(argparse.Action):
    """--version, looked up only when asked."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        print(f"pai-bot {_version()}")
        parser.exit()


def add_output_file(parser: argparse.ArgumentParser) -> None:
    """The file an export writes, and its Excel flavour of CSV."""
    parser.add_argument("file", type=Path, metavar="FILE")
    parser.add_argument(
        "--excel-csv", action="store_true", help="CSV for Italian Excel: BOM, ';', decimal comma"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="pai-bot",
        description="PAI Assistant: the partner incentive bot and the staff's operations.",
        epilog="Each command explains itself: pai-bot COMMAND --help. "
        "Exit status: 0 done, 1 something refused, 2 an error.",
    )
    parser.add_argument("--version", action=_Version)
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
    run.set_defaults(command="running:run_bot")

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
    migrate.set_defaults(command="running:run_migrate")

    copy_db = command(
        "copy-db",
        "copy this SQLite database to an empty PostgreSQL one",
        "For a programme that outgrows one machine. The target gets this version's\n"
        "schema, then every row of every table (the conversations file's too), in one\n"
        "transaction; the counts are compared per table and printed. A target that holds\n"
        "rows is refused. Stop the bot first: what it writes meanwhile would be left\n"
        "behind (the copy notices, and keeps nothing).\n"
        "Example: pai-bot copy-db --to postgresql://pai@db.example.com/pai",
    )
    copy_db.add_argument(
        "--to", required=True, metavar="URL", help="the PostgreSQL database to fill"
    )
    copy_db.set_defaults(command="running:run_copy_db")

    purchases = command("import-purchases", "load the vendor's sales history", PURCHASES_HELP)
    purchases.add_argument("file", type=Path, metavar="FILE")
    purchases.add_argument(
        "--allow-future", action="store_true", help="import purchases dated after today too"
    )
    purchases.add_argument(
        "--create", action="store_true", help="make a new SQLite database if there is none"
    )
    purchases.set_defaults(command="data:run_import_purchases")

    partners = command("import-partners", "create or update partners", PARTNERS_HELP)
    partners.add_argument("file", type=Path, metavar="FILE")
    partners.set_defaults(command="data:run_import_partners")

    invite = command(
        "invite",
        "print a single-use invite link for a partner, valid 7 days",
        "The link is the last line of the output. Example: pai-bot invite ACME",
    )
    invite.add_argument("code", metavar="CODE")
    invite.set_defaults(command="people:run_invite")

    check = command(
        "check",
        "is this customer new? who holds it? what would it earn?",
        "Example: pai-bot check IT12345670587 --partner ACME",
    )
    check.add_argument("vat", metavar="VAT")
    check.add_argument(
        "--partner", metavar="CODE", help="quote for this partner's level and loyalty"
    )
    check.set_defaults(command="lookups:run_check")

    export = command("export", "write all registrations to a CSV or Excel file", EXPORT_HELP)
    add_output_file(export)
    export.set_defaults(command="data:run_export")

    history = command(
        "history",
        "print everything that happened to a registration, with who and when",
        "Moves, contests, requests for more time, proof and decisions, oldest first; the\n"
        "same as the export's history column. Example: pai-bot history PAI-7KQ2MX",
    )
    history.add_argument("reference", metavar="REF")
    history.set_defaults(command="lookups:run_history")

    salespeople = command(
        "salespeople",
        "list who is linked to which partner",
        "Columns: Telegram id, partner, name, @username, joined, last seen.\n"
        "Example: pai-bot salespeople ACME",
    )
    salespeople.add_argument("code", metavar="CODE", nargs="?", help="only this partner's")
    salespeople.set_defaults(command="people:run_salespeople")

    unlink = command(
        "unlink",
        "take a salesperson's access away at once",
        "The partner keeps the registrations the person made; the person's buttons stop\n"
        "working and the bot answers them as a stranger until a new invite.\n"
        "Example: pai-bot unlink 123456789 (the id `pai-bot salespeople` shows)",
    )
    unlink.add_argument("telegram_id", metavar="TELEGRAM_ID", type=int)
    unlink.set_defaults(command="people:run_unlink")

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
    reminders.set_defaults(command="lookups:run_reminders_preview")

    stats = command(
        "stats",
        "print the programme's numbers",
        "The same numbers as /stats in chat. Example: pai-bot stats --chart stats.png",
    )
    stats.add_argument("--chart", type=Path, metavar="FILE.png", help="also draw the chart")
    stats.set_defaults(command="lookups:run_stats")

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
    payout_export.set_defaults(command="data:run_payouts_export")
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
    payout_paid.set_defaults(command="data:run_payouts_mark_paid")

    privacy = command(
        "privacy",
        "a salesperson's data: hand it over, or erase it",
        "pai-bot privacy export TELEGRAM_ID FILE    everything about the person, as JSON\n"
        "pai-bot privacy erase TELEGRAM_ID [--yes]  unlink and forget them (asks first)\n"
        "The id is the one `pai-bot salespeople` shows. Erasing keeps the partner's\n"
        "registrations, made by a former salesperson; it cannot be undone.\n"
        "Example: pai-bot privacy export 123456789 person.json",
    )
    privacy_steps = privacy.add_subparsers(required=True, metavar="STEP")
    privacy_export = privacy_steps.add_parser(
        "export",
        help="write everything about a salesperson to a JSON file",
        description="Write everything the bot holds about a salesperson to a JSON file.",
    )
    privacy_export.add_argument("telegram_id", metavar="TELEGRAM_ID", type=int)
    privacy_export.add_argument("file", metavar="FILE", type=Path)
    privacy_export.set_defaults(command="privacy:run_privacy_export")
    privacy_erase = privacy_steps.add_parser(
        "erase",
        help="unlink and forget a salesperson",
        description="Unlink a salesperson and remove their name, username, language and id.",
    )
    privacy_erase.add_argument("telegram_id", metavar="TELEGRAM_ID", type=int)
    privacy_erase.add_argument("--yes", action="store_true", help="do not ask first")
    privacy_erase.set_defaults(command="privacy:run_privacy_erase")

    access = command(
        "access-log",
        "print staff's recorded look-ups of partners' data",
        "Each line: when, who (staff:TELEGRAM_ID or cli), what. Kept one year.\n"
        "Example: pai-bot access-log --since 2026-12-01",
    )
    access.add_argument("--since", metavar="YYYY-MM-DD", help="only from this day")
    access.set_defaults(command="privacy:run_access_log")

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
    demo.set_defaults(command="running:run_demo")
    return parser
