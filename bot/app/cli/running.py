"""`run`, `migrate` and `demo`: the bot itself, its schema, and the bot in a terminal."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from bot.app.cli import FAILED, OK, REFUSED
from bot.app.cli.common import announce_database
from bot.config import Settings
from bot.problems import SetupError
from bot.storage.database import display_url, prepare_sqlite_file
from bot.storage.schema import Migration, check_schema, migrate_database


def run_bot(args: argparse.Namespace, settings: Settings) -> int:
    # Telegram is imported only by the command that talks to it.
    from telegram.error import BadRequest, InvalidToken, NetworkError

    from bot.app.application import build_application
    from bot.app.web import serve_webhook, webhook_of
    from handlers import ALLOWED_UPDATES

    log = logging.getLogger(__name__)
    logging.getLogger("telegram.ext").addFilter(
        _quiet_startup_failures(InvalidToken, NetworkError, SetupError)
    )
    # Before anything talks to Telegram: a database that needs migrating is one sentence.
    asyncio.run(check_schema(settings.database_url, settings.timeouts))
    application = build_application(settings)  # refuses a missing or placeholder token
    if settings.pai_webhook_url is not None:
        webhook_of(settings)  # a wrong address is one sentence before anything starts
    created = prepare_sqlite_file(settings.database_url, must_exist=False)
    warn_if_env_file_is_shared(log)
    warn_if_photos_cannot_be_read(log)
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
    if application.bot_data.lost_lead:
        print("pai-bot: another instance took over polling: stopped.", file=sys.stderr)
        return FAILED
    return OK


def run_migrate(args: argparse.Namespace, settings: Settings) -> int:
    announce_database(settings, may_create=True)
    migration = asyncio.run(migrate_database(settings.database_url, settings.timeouts))
    print(describe_migration(migration))
    return OK


def run_copy_db(args: argparse.Namespace, settings: Settings) -> int:
    from bot.storage.copying import (
        CONVERSATIONS_FILE,
        CopiedTable,
        CopyRefused,
        copy_database,
    )

    def told(table: CopiedTable) -> None:
        source = "  (from the conversations file)" if table.where == CONVERSATIONS_FILE else ""
        print(f"{table.name:<20} {table.source:>11,} rows {table.copied:>11,} copied{source}")

    try:
        copied = asyncio.run(copy_database(settings.database_url, args.to, settings.timeouts, told))
    except CopyRefused as refused:
        print(f"pai-bot: {refused}", file=sys.stderr)
        return REFUSED
    print(
        f"{len(copied)} tables copied, every count equal. "
        f"Next: DATABASE_URL={display_url(args.to)} in .env, then start the bot."
    )
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


def warn_if_photos_cannot_be_read(log: logging.Logger) -> None:
    """Once at start: without Tesseract and its Italian data, photos of VAT numbers get
    one sentence in chat, and the operator learns why here (PRODUCT.md §6)."""
    from bot.services.photos import ocr_available

    if not ocr_available():
        log.warning(
            "photos cannot be read here: install Debian's tesseract-ocr and tesseract-ocr-ita "
            "for VAT numbers from photos (PDFs are still read)"
        )


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


def run_demo(args: argparse.Namespace, settings: Settings) -> int:
    # The demo builds its own settings: nothing of .env decides where it writes.
    from bot.app.demo import main as demo

    db: Path | None = args.db
    return demo(database=db, language=args.language)
