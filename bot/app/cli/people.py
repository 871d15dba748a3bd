"""Who may use the bot: invites, the list of linked salespeople, unlinking."""

from __future__ import annotations

import argparse
import sys

from bot.app.cli import FAILED, OK
from bot.app.cli.common import with_database
from bot.config import Settings
from bot.domain.errors import (
    NotLinked,
)
from bot.resources import Resources
from bot.services.accounts import (
    create_invite,
    list_salespeople,
    remembered_bot_username,
    unlink_salesperson,
)
from bot.sheets import text_table


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


SALESPEOPLE_COLUMNS = ("telegram_id", "partner", "name", "username", "joined", "last_seen")


def run_salespeople(args: argparse.Namespace, settings: Settings) -> int:
    async def work(shared: Resources) -> int:
        async with shared.sessions() as session:
            people = await list_salespeople(session=session, partner_code=args.code)
        if not people:
            print("nobody is linked" + (f" to {args.code.upper()}" if args.code else ""))
            return OK
        zone = shared.rules.timezone
        rows = [
            {
                "telegram_id": person.telegram_user_id,
                "partner": person.partner_code,
                "name": person.display_name or "-",
                "username": f"@{person.username}" if person.username else "-",
                "joined": f"{person.linked_at.astimezone(zone):%Y-%m-%d}",
                "last_seen": (
                    f"{person.last_seen_at.astimezone(zone):%Y-%m-%d %H:%M}"
                    if person.last_seen_at
                    else "never"
                ),
            }
            for person in people
        ]
        # A name typed in Telegram may start like a formula: the table defuses it.
        print(text_table(SALESPEOPLE_COLUMNS, rows, typed=("name",)))
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
