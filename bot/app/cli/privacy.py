"""Privacy from the shell (PRODUCT.md §8): a person's data handed over, a person erased,
and the record of staff's look-ups."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys

from bot.app.cli import FAILED, OK, REFUSED
from bot.app.cli.common import with_database
from bot.config import Settings
from bot.resources import Resources
from bot.services.privacy import access_log, erase, export_of


def _unknown(telegram_id: int) -> int:
    print(
        f"pai-bot: the bot holds nothing about Telegram id {telegram_id} "
        "(never linked, or erased already)",
        file=sys.stderr,
    )
    return FAILED


def run_privacy_export(args: argparse.Namespace, settings: Settings) -> int:
    async def work(shared: Resources) -> int:
        async with shared.sessions() as session:
            data = await export_of(session=session, telegram_user_id=args.telegram_id)
        if data is None:
            return _unknown(args.telegram_id)
        args.file.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", "utf-8")
        print(
            f"{len(data['registrations'])} registrations and {len(data['reminders'])} reminders "
            f"of Telegram id {args.telegram_id} written to {args.file}"
        )
        return OK

    return with_database(settings, work, may_create=False)


def run_privacy_erase(args: argparse.Namespace, settings: Settings) -> int:
    if not args.yes and not _confirmed(args.telegram_id):
        return REFUSED

    async def work(shared: Resources) -> int:
        async with shared.sessions() as session:
            erased = await erase(
                session=session, telegram_user_id=args.telegram_id, now=shared.now()
            )
        if not erased:
            return _unknown(args.telegram_id)
        print(
            f"Telegram id {args.telegram_id} erased: unlinked, name, username, language and id "
            "removed; the partner keeps the registrations, made by a former salesperson."
        )
        return OK

    return with_database(settings, work, may_create=False)


def _confirmed(telegram_id: int) -> bool:
    """Asked on a terminal; anywhere else, --yes is needed."""
    if not sys.stdin.isatty():
        print(
            "pai-bot: erasing cannot be undone: give --yes, or run it on a terminal to be asked",
            file=sys.stderr,
        )
        return False
    answer = input(f"Erase everything about Telegram id {telegram_id}? Type yes: ")
    if answer.strip().lower() != "yes":
        print("Nothing erased.")
        return False
    return True


def run_access_log(args: argparse.Namespace, settings: Settings) -> int:
    since = None
    if args.since:
        try:
            day = dt.date.fromisoformat(args.since)
        except ValueError:
            print(f"pai-bot: --since {args.since!r} is not a date like 2026-12-01", file=sys.stderr)
            return FAILED

    async def work(shared: Resources) -> int:
        nonlocal since
        if args.since:
            since = dt.datetime.combine(day, dt.time(), shared.rules.timezone)
        async with shared.sessions() as session:
            rows = await access_log(session=session, since=since)
        zone = shared.rules.timezone
        for row in rows:
            print(f"{row.at.astimezone(zone):%Y-%m-%d %H:%M}\t{row.who}\t{row.what}")
        if not rows:
            print("no look-ups recorded" + (f" since {args.since}" if args.since else ""))
        return OK

    return with_database(settings, work, may_create=False)
