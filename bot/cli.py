"""`pai-bot`: run the bot and the staff's operations from the shell (PRODUCT.md §3)."""

from __future__ import annotations

import argparse
import asyncio
import csv
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.csvfiles import CsvHeaderError, ImportReport
from bot.db import create_tables, display_url, make_engine, make_sessions
from bot.errors import (
    AlreadyRegistered,
    CustomerNotNew,
    CustomerProtected,
    DomainError,
    InvalidVat,
    NoIncentiveInForce,
    UnknownPartner,
)
from bot.i18n import Texts
from bot.parsing import normalise_vat
from bot.rules import Rules, is_new_customer, load_rules, protection_until, quote_incentive
from bot.services.accounts import create_invite, partner_by_code, remembered_bot_username
from bot.services.eligibility import assess_customer, customer_standing
from bot.services.imports import import_partners, import_purchases
from bot.services.registrations import EXPORT_COLUMNS, export_registrations
from bot.services.views import reference_of
from models import Partner

T = TypeVar("T")
OK, REFUSED, FAILED = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # httpx logs every request URL, and Telegram's URLs carry the bot token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # The conversation timeouts add and remove a job per message: noise at INFO.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    try:
        settings = Settings()
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(part) for part in problem["loc"]).upper()
        print(f"pai-bot: setting {where}: {problem['msg']}", file=sys.stderr)
        return FAILED
    command: Callable[[argparse.Namespace, Settings], int] = args.command
    try:
        return command(args, settings)
    except DomainError as exc:
        print(f"pai-bot: {exc}", file=sys.stderr)
        return FAILED
    except OSError as exc:
        if exc.filename:  # a file of ours (the CSV, the export), not the database server
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
        prog="pai-bot", description="PAI Assistant: the partner incentive bot."
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the bot (long polling)")
    run.set_defaults(command=run_bot)

    purchases = commands.add_parser("import-purchases", help="load the vendor's sales history")
    purchases.add_argument("file", type=Path, metavar="FILE.csv")
    purchases.set_defaults(command=run_import_purchases)

    partners = commands.add_parser("import-partners", help="create or update partners")
    partners.add_argument("file", type=Path, metavar="FILE.csv")
    partners.set_defaults(command=run_import_partners)

    invite = commands.add_parser("invite", help="print an invite link for a partner")
    invite.add_argument("code", metavar="CODE")
    invite.set_defaults(command=run_invite)

    check = commands.add_parser("check", help="is this customer new? what would it earn?")
    check.add_argument("vat", metavar="VAT")
    check.add_argument(
        "--partner", metavar="CODE", help="quote for this partner's level and loyalty"
    )
    check.set_defaults(command=run_check)

    export = commands.add_parser("export", help="write all registrations to a CSV file")
    export.add_argument("file", type=Path, metavar="FILE.csv")
    export.set_defaults(command=run_export)
    return parser


def with_database(settings: Settings, work: Callable[[AsyncSession, Rules], Awaitable[T]]) -> T:
    """Open the database (creating missing tables), run `work` in one session, close."""
    rules = load_rules(settings.pai_rules_file)

    async def go() -> T:
        engine = make_engine(settings.database_url)
        try:
            await create_tables(engine)
            async with make_sessions(engine)() as session:
                return await work(session, rules)
        finally:
            await engine.dispose()

    return asyncio.run(go())


# --- run -----------------------------------------------------------------------


def run_bot(args: argparse.Namespace, settings: Settings) -> int:
    # Telegram is imported only by the command that talks to it.
    from telegram.error import InvalidToken, NetworkError

    from bot.app import build_application

    logging.getLogger("telegram.ext").addFilter(_drop_traceback_of(InvalidToken))
    application = build_application(settings)  # refuses a missing or placeholder token
    logging.getLogger(__name__).info("starting; database %s", display_url(settings.database_url))
    try:
        application.run_polling(allowed_updates=["message", "callback_query"])
    except InvalidToken:
        print(
            "pai-bot: Telegram refused TELEGRAM_BOT_TOKEN: check it with @BotFather.",
            file=sys.stderr,
        )
        return FAILED
    except NetworkError as exc:
        print(
            f"pai-bot: cannot reach the Bot API at {settings.api_base_url}: {exc.message}",
            file=sys.stderr,
        )
        return FAILED
    return OK


def _drop_traceback_of(kind: type[BaseException]) -> logging.Filter:
    """Keep PTB's log line for `kind` but not its traceback: our sentence explains it."""

    class DropTraceback(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            if record.exc_info and isinstance(record.exc_info[1], kind):
                record.exc_info = None
            return True

    return DropTraceback()


# --- imports -------------------------------------------------------------------


def run_import_purchases(args: argparse.Namespace, settings: Settings) -> int:
    return run_import(args.file, settings, import_purchases, "purchases")


def run_import_partners(args: argparse.Namespace, settings: Settings) -> int:
    return run_import(args.file, settings, import_partners, "partners")


def run_import(
    path: Path,
    settings: Settings,
    importer: Callable[..., Awaitable[ImportReport]],
    what: str,
) -> int:
    if not path.is_file():
        print(f"pai-bot: no such file: {path}", file=sys.stderr)
        return FAILED
    try:
        report = with_database(
            settings, lambda session, rules: importer(session=session, rules=rules, path=path)
        )
    except CsvHeaderError as exc:
        print(f"pai-bot: {exc}", file=sys.stderr)
        return REFUSED
    for rejection in report.rejected:
        print(f"{path}:{rejection.line}: {rejection.reason}", file=sys.stderr)
    parts = [f"{report.read} rows read", f"{report.added} {what} added"]
    if what == "partners":
        parts.append(f"{report.updated} updated")
    parts += [f"{report.unchanged} unchanged", f"{len(report.rejected)} rejected"]
    print(", ".join(parts))
    return REFUSED if report.rejected else OK


# --- invite --------------------------------------------------------------------


def run_invite(args: argparse.Namespace, settings: Settings) -> int:
    async def work(session: AsyncSession, rules: Rules) -> int:
        username = settings.telegram_bot_username or await remembered_bot_username(session=session)
        if not username:
            print(
                "pai-bot: the bot's username is not known yet: set TELEGRAM_BOT_USERNAME "
                "or start the bot once with `pai-bot run`.",
                file=sys.stderr,
            )
            return FAILED
        try:
            invite = await create_invite(session=session, partner_code=args.code)
        except UnknownPartner:
            print(f"pai-bot: no partner with code {args.code!r}", file=sys.stderr)
            return FAILED
        expires = invite.expires_at.astimezone(rules.timezone)
        print(f"Invite for {invite.company} ({invite.partner_code}), single use,")
        print(f"valid until {expires:%Y-%m-%d %H:%M} ({rules.timezone.key}):")
        print(invite.url(username))
        return OK

    return with_database(settings, work)


# --- check ---------------------------------------------------------------------


def run_check(args: argparse.Namespace, settings: Settings) -> int:
    async def work(session: AsyncSession, rules: Rules) -> int:
        try:
            vat = normalise_vat(args.vat, default_country=rules.country)
        except InvalidVat as exc:
            print(f"{args.vat}: not a valid VAT number ({exc.reason.removeprefix('vat_')})")
            return FAILED
        if args.partner:
            return await check_for_partner(session, rules, vat, args.partner)
        return await check_for_staff(session, rules, vat)

    return with_database(settings, work)


async def check_for_staff(session: AsyncSession, rules: Rules, vat: str) -> int:
    """The verdict for staff: unlike partners, staff may see who holds a protection."""
    today = rules.today()
    standing = await customer_standing(
        session=session, rules=rules, vat=vat, partner_id=None, today=today
    )
    holder, last = standing.holder, standing.last_purchase
    if holder is not None:
        partner = await session.get(Partner, holder.partner_id)
        assert partner is not None
        print(
            f"{vat}: protected until {holder.until.isoformat()} "
            f"by {partner.code} ({partner.company}), {reference_of(holder.registration_id)}"
        )
        return REFUSED
    if not is_new_customer(rules, last_purchase=last, on=today):
        assert last is not None
        print(f"{vat}: not new, last purchase {last.isoformat()}")
        return REFUSED
    history = f"last purchase {last.isoformat()}" if last else "no purchase on record"
    print(
        f"{vat}: new customer ({history}); registering today protects it until "
        f"{protection_until(rules, today).isoformat()}"
    )
    try:
        for level in rules.levels:
            quote = quote_incentive(rules, on=today, level=level, earlier_registrations=0)
            print(f"  {level}: {quote.amount} {quote.currency} (rules from {quote.version})")
    except NoIncentiveInForce:
        print("  no incentive version is in force today")
    return OK


async def check_for_partner(session: AsyncSession, rules: Rules, vat: str, code: str) -> int:
    partner = await partner_by_code(session=session, code=code)
    assert partner.id is not None
    texts = Texts("en")
    try:
        verdict = await assess_customer(
            session=session,
            rules=rules,
            vat=vat,
            partner_id=partner.id,
            level=partner.level,
            today=rules.today(),
        )
    except CustomerNotNew as refusal:
        print(f"{vat}: not new, last purchase {refusal.last_purchase.isoformat()}")
        return REFUSED
    except CustomerProtected as refusal:
        print(f"{vat}: protected by another partner until {refusal.until.isoformat()}")
        return REFUSED
    except AlreadyRegistered as refusal:
        print(
            f"{vat}: already registered by {partner.code} as {refusal.reference} "
            f"until {refusal.until.isoformat()}"
        )
        return REFUSED
    except NoIncentiveInForce:
        print(f"{vat}: no incentive version is in force today")
        return REFUSED
    quote = verdict.quote
    earn = texts.money(quote.amount, quote.currency)
    print(
        f"{vat}: new customer; {partner.code} would earn {earn} "
        f"(level {quote.level}, {quote.earlier_registrations} earlier registrations, "
        f"multiplier {quote.loyalty_multiplier or '-'}, rules from {quote.version}), "
        f"protected until {verdict.protected_until.isoformat()}"
    )
    return OK


# --- export --------------------------------------------------------------------


def run_export(args: argparse.Namespace, settings: Settings) -> int:
    path: Path = args.file

    async def work(session: AsyncSession, rules: Rules) -> int:
        count = 0
        # Write next to the target and rename, so a failed export never leaves half a file.
        partial = path.with_name(path.name + ".partial")
        with partial.open("w", newline="", encoding="utf-8") as out:
            writer = csv.DictWriter(out, fieldnames=EXPORT_COLUMNS)
            writer.writeheader()
            async for row in export_registrations(session=session):
                writer.writerow(row)
                count += 1
        partial.replace(path)
        print(f"{count} registrations written to {path}")
        return OK

    return with_database(settings, work)


if __name__ == "__main__":
    sys.exit(main())
