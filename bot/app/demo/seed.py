"""The demo's programme: three partners, a few hundred customers, registrations in every state.

Everything goes in through the services staff and partners use (the imports, invites,
registrations, `change_status`), dated back from the demo clock's first moment, so the
bot finds what a programme running for two years would have. A fixed seed: every demo
starts from the same programme.
"""

from __future__ import annotations

import csv
import datetime as dt
import random
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from stdnum import luhn

from bot.domain.items import ItemKind
from bot.domain.lifecycle import Status
from bot.domain.rules import Rules
from bot.i18n import Texts
from bot.problems import SetupError
from bot.reports import describe_rejection
from bot.services.accounts import Visitor, create_invite, redeem_invite
from bot.services.eligibility import Opportunity, register_opportunity
from bot.services.history import PAID_BY, SYSTEM, actor_of, change_status, staff_actor
from bot.services.imports import ImportReport, import_partners, import_purchases
from bot.services.items import open_item
from bot.services.reminders import expire_lapsed
from bot.services.views import Account

SEED = 20250701
STAFF_ID = 9001
STAFF_NAME = ("Laura", "Bassi")


@dataclass(frozen=True)
class DemoPartner:
    code: str
    company: str
    level: str


@dataclass(frozen=True)
class DemoPerson:
    telegram_user_id: int
    first_name: str
    last_name: str
    partner_code: str

    @property
    def username(self) -> str:
        return f"{self.first_name}_{self.last_name}".lower()


PARTNERS = (
    DemoPartner("AURORA", "Aurora Sistemi S.r.l.", "gold"),
    DemoPartner("BITLINE", "Bitline Informatica S.r.l.", "certified"),
    DemoPartner("CEDRO", "Cedro Software S.n.c.", "registered"),
)
# The first salesperson of each partner is the one `/as CODE` speaks as.
SALESPEOPLE = (
    DemoPerson(1001, "Giulia", "Conti", "AURORA"),
    DemoPerson(1002, "Marco", "Ferri", "BITLINE"),
    DemoPerson(1003, "Sara", "Lodi", "CEDRO"),
    DemoPerson(1011, "Paolo", "Greco", "AURORA"),
    DemoPerson(1012, "Elena", "Riva", "BITLINE"),
)

# Italian VAT offices (the 8th to 10th digits): Turin, Milan, Bologna, Rome, Naples, Bari.
OFFICES = (1, 15, 37, 58, 63, 72)
SURNAMES = (
    *("Rossi", "Bianchi", "Ferrari", "Esposito", "Romano", "Colombo", "Ricci", "Marino"),
    *("Greco", "Bruno", "Gallo", "Conti", "Costa", "Giordano", "Mancini", "Rizzo"),
    *("Lombardi", "Moretti", "Barbieri", "Fontana", "Santoro", "Mariani", "Rinaldi"),
    *("Caruso", "Ferrara", "Galli", "Martini", "Leone", "Longo", "Gentile", "Martinelli"),
    *("Vitale", "Serra", "Coppola"),
)
TRADES = (
    "Impianti",
    "Costruzioni",
    "Trasporti",
    "Alimentari",
    "Meccanica",
    "Arredamenti",
    "Elettronica",
    "Logistica",
    "Ottica",
    "Tessile",
    "Serramenti",
    "Consulenze",
    "Ceramiche",
    "Grafiche",
)
FORMS = ("S.r.l.", "S.r.l.", "S.r.l.", "S.p.A.", "S.n.c.", "S.a.s.")
PRODUCTS = (
    "Accounting suite, 5 seats",
    "Accounting suite, 10 seats",
    "ERP cloud, 20 users",
    "Payroll module",
    "Warehouse management",
    "Point of sale, 3 tills",
    "Document archive, 1 TB",
    "CRM, 15 users",
)


def italian_vat(serial: int, office: int = 15) -> str:
    """A valid Partita IVA: seven digits of serial, the office, the check digit."""
    body = f"{serial:07d}{office:03d}"
    return f"IT{body}{luhn.calc_check_digit(body)}"


# What the banner suggests to try with /new and /check. Serials 9xxxxxx are never used
# by the generated customers, so the first is a customer the vendor never sold to.
EXAMPLE_NEW_VAT = italian_vat(9_041_772, 58)
EXAMPLE_RETURNING_VAT = italian_vat(9_100_001, 37)  # last bought 14 months ago: new again
EXAMPLE_RECENT_VAT = italian_vat(9_100_002, 1)  # bought last month: not new
EXAMPLE_PROTECTED_VAT = italian_vat(9_100_003, 63)  # registered by BITLINE a month ago
EXAMPLE_NAMES = {
    EXAMPLE_RETURNING_VAT: "Ferraro Meccanica S.r.l.",
    EXAMPLE_RECENT_VAT: "Pellegrini Alimentari S.p.A.",
    EXAMPLE_PROTECTED_VAT: "Sorrentino Logistica S.r.l.",
}


@dataclass(frozen=True)
class Planned:
    """A registration of the past: its partner, how many days ago, and what became of it."""

    partner: str
    days_ago: int
    outcome: Status
    close_in: int = 45  # expected close, days after the registration
    vat: str | None = None  # a customer from the history (None: a prospect, new to the vendor)


# Oldest first: each registration's loyalty count is the partner's earlier ones.
PLAN = (
    Planned("AURORA", 680, Status.PAID),
    Planned("BITLINE", 600, Status.PAID),
    Planned("AURORA", 540, Status.PAID),
    Planned("BITLINE", 500, Status.LOST),
    Planned("AURORA", 450, Status.LOST),
    Planned("CEDRO", 420, Status.PAID),
    Planned("AURORA", 400, Status.PAID),
    Planned("AURORA", 350, Status.EXPIRED),
    Planned("BITLINE", 330, Status.PAID),
    Planned("AURORA", 300, Status.PAID),
    Planned("BITLINE", 260, Status.LOST),
    Planned("CEDRO", 210, Status.EXPIRED),
    Planned("AURORA", 200, Status.LOST),
    Planned("AURORA", 160, Status.APPROVED),
    Planned("AURORA", 120, Status.PAID),
    Planned("AURORA", 75, Status.WON),
    Planned("BITLINE", 70, Status.WON),
    Planned("BITLINE", 50, Status.QUALIFIED, close_in=75),
    Planned("AURORA", 40, Status.QUALIFIED, close_in=52),
    Planned("CEDRO", 35, Status.QUALIFIED, close_in=60),
    Planned("BITLINE", 30, Status.QUALIFIED, close_in=50, vat=EXAMPLE_PROTECTED_VAT),
    Planned("AURORA", 25, Status.QUALIFIED, close_in=60),
    Planned("AURORA", 9, Status.QUALIFIED, close_in=59),
)
# Days after the registration each step of its life came.
WON_AFTER, APPROVED_AFTER, PAID_AFTER, LOST_AFTER = 40, 50, 80, 30


@dataclass(frozen=True)
class Customer:
    vat: str
    name: str
    purchases: tuple[dt.date, ...]


def customers(today: dt.date, rng: random.Random, count: int = 320) -> list[Customer]:
    """The vendor's customers over the last two years: some buying still, some gone quiet."""
    names: set[str] = set()
    serials: set[int] = set()
    found: list[Customer] = []
    while len(found) < count:
        name = f"{rng.choice(SURNAMES)} {rng.choice(TRADES)} {rng.choice(FORMS)}"
        serial = rng.randrange(1_000_000, 9_000_000)
        if name in names or serial in serials:
            continue
        names.add(name)
        serials.add(serial)
        # Four in ten still buy (the last purchase within six months: not new); the
        # others stopped between seven months and two years ago (new again).
        last = rng.randrange(0, 170) if rng.random() < 0.4 else rng.randrange(215, 700)
        days = sorted({last, *(rng.randrange(last, 730) for _ in range(rng.randrange(0, 6)))})
        found.append(
            Customer(
                italian_vat(serial, rng.choice(OFFICES)),
                name,
                tuple(today - dt.timedelta(days=d) for d in days),
            )
        )
    examples: tuple[tuple[str, tuple[int, ...]], ...] = (
        (EXAMPLE_RETURNING_VAT, (420, 610)),
        (EXAMPLE_RECENT_VAT, (33, 250, 400)),
        (EXAMPLE_PROTECTED_VAT, (300,)),
    )
    for vat, ago in examples:
        found.append(Customer(vat, EXAMPLE_NAMES[vat], _ago(today, *ago)))
    return found


def _ago(today: dt.date, *days: int) -> tuple[dt.date, ...]:
    return tuple(today - dt.timedelta(days=d) for d in days)


def write_files(folder: Path, today: dt.date, rng: random.Random) -> tuple[Path, Path]:
    """The partner list and the sales history, as staff would hand them to the imports."""
    partners = folder / "partners.csv"
    with partners.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["code", "company", "level"])
        writer.writerows((p.code, p.company, p.level) for p in PARTNERS)
    purchases = folder / "purchases.csv"
    with purchases.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["vat", "customer_name", "purchase_date"])
        for customer in customers(today, rng):
            writer.writerows(
                (customer.vat, customer.name, day.isoformat()) for day in customer.purchases
            )
    return partners, purchases


async def seed_programme(
    *,
    sessions: async_sessionmaker[AsyncSession],
    rules: Rules,
    folder: Path,
    now: dt.datetime,
    language: str,
) -> None:
    """Load the demo's programme into an empty database, as of `now`."""
    rng = random.Random(SEED)
    today = rules.today(now)
    partners_file, purchases_file = write_files(folder, today, rng)
    async with sessions() as session:
        report = await import_partners(
            session=session, rules=rules, path=partners_file, now=now - dt.timedelta(days=760)
        )
        if report.rejected:
            raise SetupError(f"the demo's partners did not load: {_why(rules, report)}")
        report = await import_purchases(
            session=session, rules=rules, path=purchases_file, today=today
        )
        if report.rejected:
            raise SetupError(f"the demo's purchases did not load: {_why(rules, report)}")
    accounts: dict[str, Account] = {}
    for index, person in enumerate(SALESPEOPLE):
        joined = now - dt.timedelta(days=740 - 30 * index)
        async with sessions() as session:
            invite = await create_invite(
                session=session, partner_code=person.partner_code, now=joined
            )
        async with sessions() as session:
            account = await redeem_invite(
                session=session,
                token=invite.token,
                visitor=Visitor(
                    telegram_user_id=person.telegram_user_id,
                    language_code=language,
                    display_name=f"{person.first_name} {person.last_name}",
                    username=person.username,
                ),
                now=joined,
            )
        accounts.setdefault(person.partner_code, account)
    for number, planned in enumerate(PLAN):
        await _live(sessions, rules, accounts[planned.partner], planned, number, now, rng)
    async with sessions() as session:
        # What the reminders' tick did all along: protections past their date let go.
        await expire_lapsed(session=session, rules=rules, now=now)


async def _live(
    sessions: async_sessionmaker[AsyncSession],
    rules: Rules,
    account: Account,
    planned: Planned,
    number: int,
    now: dt.datetime,
    rng: random.Random,
) -> None:
    """Register one deal of the past and take it through what happened to it."""
    registered = now - dt.timedelta(days=planned.days_ago, hours=rng.randrange(0, 6))
    day = rules.today(registered)
    vat = planned.vat or italian_vat(9_200_000 + number, rng.choice(OFFICES))
    name = None if planned.vat else f"{rng.choice(SURNAMES)} {rng.choice(TRADES)} S.r.l."
    opportunity = Opportunity(
        vat=vat,
        customer_name=name,
        deal_value=Decimal(rng.randrange(30, 400) * 100),
        product=rng.choice(PRODUCTS),
        expected_close=day + dt.timedelta(days=planned.close_in),
    )
    async with sessions() as session:
        registration = await register_opportunity(
            session=session, rules=rules, account=account, opportunity=opportunity, now=registered
        )
    steps: list[tuple[Status, str, int, str | None]] = []
    if planned.outcome in (Status.WON, Status.APPROVED, Status.PAID):
        # A deal reported won this long ago still waits for staff.
        won_after = WON_AFTER if planned.outcome != Status.WON else planned.days_ago - 12
        steps.append((Status.WON, actor_of(account), won_after, None))
    if planned.outcome in (Status.APPROVED, Status.PAID):
        steps.append((Status.APPROVED, staff_actor(STAFF_ID), APPROVED_AFTER, None))
    if planned.outcome == Status.PAID:
        paid_on = day + dt.timedelta(days=PAID_AFTER)
        steps.append((Status.PAID, PAID_BY, PAID_AFTER, f"paid on {paid_on.isoformat()}"))
    if planned.outcome == Status.LOST:
        steps.append((Status.LOST, actor_of(account), LOST_AFTER, "reason: price"))
    if planned.outcome == Status.EXPIRED:
        steps.append((Status.EXPIRED, SYSTEM, rules.protection_days + 1, None))
    async with sessions() as session:
        for target, by, after, note in steps:
            await change_status(
                session,
                registration_id=registration.id,
                target=target,
                by=by,
                at=registered + dt.timedelta(days=after),
                note=note,
            )
            if target == Status.WON and planned.outcome == Status.WON:
                # Before staff since it was reported: /pending shows it, overdue.
                await open_item(
                    session,
                    rules=rules,
                    registration_id=registration.id,
                    kind=ItemKind.WON,
                    now=registered + dt.timedelta(days=after),
                )
        await session.commit()


def _why(rules: Rules, report: ImportReport) -> str:
    return describe_rejection(Texts("en"), report.rejected[0], country=rules.country)
