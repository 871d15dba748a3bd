"""Looking things up: a customer's verdict, the programme's numbers, the reminders due."""

from __future__ import annotations

import argparse
import datetime as dt
import sys

from sqlalchemy.ext.asyncio import AsyncSession

from bot.app.cli import FAILED, OK, REFUSED
from bot.app.cli.common import TEXTS, counted, with_database
from bot.config import Settings
from bot.domain.errors import (
    AlreadyRegistered,
    CustomerNotNew,
    CustomerProtected,
    InvalidVat,
    NoIncentiveInForce,
    RegistrationNotFound,
)
from bot.domain.parsing import normalise_vat
from bot.domain.rules import Rules, next_allowed_moment, sending_allowed
from bot.i18n import describe_invalid, html_to_text
from bot.reports import chart_png, numbers_text
from bot.resources import Resources
from bot.services.eligibility import check_for_partner, staff_verdict
from bot.services.history import HistoryEntry
from bot.services.privacy import CLI, record_access
from bot.services.reminders import Due, Preview, preview_reminders
from bot.services.staff import StaffDeal, deal_history
from bot.services.stats import programme_numbers


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


def run_history(args: argparse.Namespace, settings: Settings) -> int:
    async def work(shared: Resources) -> int:
        async with shared.sessions() as session:
            try:
                deal, entries = await deal_history(session=session, reference=args.reference)
            except RegistrationNotFound:
                print(f"{args.reference}: no registration has this reference", file=sys.stderr)
                return REFUSED
            what = f"history {deal.registration.reference}"
            await record_access(session=session, who=CLI, what=what, now=shared.now())
        print(_deal_heading(deal))
        for entry in entries:
            print(_history_line(entry))
        return OK

    return with_database(settings, work, may_create=False)


def _deal_heading(deal: StaffDeal) -> str:
    r = deal.registration
    return (
        f"{r.reference}  {deal.partner_code} ({deal.company})  {r.vat} {r.customer_name}\n"
        f"now {r.status}; registered {r.registered_on.isoformat()}, "
        f"protected until {r.protected_until.isoformat()}"
        + (f", {counted(r.extensions, 'extension')}" if r.extensions else "")
    )


def _history_line(entry: HistoryEntry) -> str:
    """One move or note: "2026-11-28 09:30Z  qualified -> won  by Mario Rossi: note"."""
    move = (
        entry.to_status
        if entry.from_status in (None, entry.to_status)
        else f"{entry.from_status} -> {entry.to_status}"
    )
    said = f": {entry.note}" if entry.note else ""
    return (
        f"{entry.at.astimezone(dt.UTC):%Y-%m-%d %H:%MZ}  {move}  by {TEXTS.actor(entry.by)}{said}"
    )


def run_stats(args: argparse.Namespace, settings: Settings) -> int:
    async def work(shared: Resources) -> int:
        async with shared.sessions() as session:
            numbers = await programme_numbers(session=session, rules=shared.rules, now=shared.now())
        print(html_to_text(numbers_text(TEXTS, shared.rules, numbers)))
        if args.chart:
            png = chart_png(numbers, shared.rules.levels, TEXTS)
            args.chart.write_bytes(png)
            print(f"chart written to {args.chart}")
        return OK

    return with_database(settings, work, may_create=False)


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
            f"{_local(moment, rules)}: {counted(preview.expiring, 'registration')} would "
            f"expire, {counted(len(preview.due), 'reminder')} would be sent"
            + (":" if preview.due else ".")
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
