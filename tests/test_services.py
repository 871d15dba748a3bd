"""Services against a real database: SQLite and PostgreSQL, each test on both."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import select

from bot.errors import (
    AlreadyRegistered,
    CustomerNotNew,
    CustomerProtected,
    InvalidInput,
    InviteInvalid,
    RegistrationNotFound,
    TransitionNotAllowed,
)
from bot.lifecycle import Status
from bot.services.accounts import create_invite, find_account, redeem_invite
from bot.services.eligibility import check_eligibility, register_opportunity
from bot.services.imports import import_partners, import_purchases
from bot.services.registrations import (
    export_registrations,
    get_registration,
    list_registrations,
    report_outcome,
)
from models import Customer, Registration, StatusChange
from tests.conftest import count_rows
from tests.factories import (
    VATS,
    add_partners,
    add_purchases,
    link_salesperson,
    opportunity,
    register,
    write_csv,
)

NOW = dt.datetime(2026, 11, 28, 10, 0, tzinfo=dt.UTC)
TODAY = dt.date(2026, 11, 28)


@pytest.fixture
async def programme(sessions, rules, tmp_path):
    """Two partners (gold ACME, certified BETA), one salesperson each."""
    await add_partners(
        sessions, rules, tmp_path, "ACME,Acme Informatica,gold\nBETA,Beta Srl,certified\n"
    )
    acme = await link_salesperson(sessions, "ACME", 1001)
    beta = await link_salesperson(sessions, "BETA", 2002)
    return acme, beta


# --- imports ---------------------------------------------------------------


async def test_purchases_import_tolerates_bom_semicolons_and_extra_columns(
    sessions, rules, tmp_path
):
    path = write_csv(
        tmp_path / "p.csv",
        "\ufeffVAT;Customer_Name;purchase_date;amount\n"
        "123 456 705 87;Rossi S.r.l.;2026-03-01;1.200,00\n"
        "IT00743110157;Bianchi SpA;2025-01-10;99\n",
    )
    async with sessions() as session:
        report = await import_purchases(session=session, rules=rules, path=path)
    assert (report.read, report.added, report.rejected) == (2, 2, [])
    async with sessions() as session:
        assert (await session.get(Customer, "IT12345670587")).name == "Rossi S.r.l."


async def test_reimporting_the_same_purchases_adds_nothing(sessions, rules, tmp_path):
    rows = "IT12345670587,Rossi,2026-03-01\nIT00743110157,Bianchi,2025-01-10\n"
    await add_purchases(sessions, rules, tmp_path, rows)
    path = write_csv(tmp_path / "again.csv", "vat,customer_name,purchase_date\n" + rows)
    async with sessions() as session:
        report = await import_purchases(session=session, rules=rules, path=path)
    assert (report.added, report.unchanged) == (0, 2)
    assert await count_rows(sessions, "purchase") == 2


async def test_bad_purchase_rows_are_reported_by_line_and_skipped(sessions, rules, tmp_path):
    path = write_csv(
        tmp_path / "p.csv",
        "vat,customer_name,purchase_date\n"
        "IT12345670587,Rossi,2026-03-01\n"
        "IT12345670588,Bad check digit,2026-03-01\n"
        "\n"
        "IT00743110157,Bad date,01/03/2026\n"
        "IT01114601006,Good,2024-12-31\n",
    )
    async with sessions() as session:
        report = await import_purchases(session=session, rules=rules, path=path)
    assert [(r.line, r.reason.split(" ")[0]) for r in report.rejected] == [
        (3, "VAT"),
        (5, "purchase_date"),
    ]
    assert report.added == 2


async def test_partner_import_updates_the_partner_with_the_same_code(sessions, rules, tmp_path):
    await add_partners(sessions, rules, tmp_path, "ACME,Acme,certified\n")
    path = write_csv(
        tmp_path / "p2.csv",
        "code;company;level\nacme;Acme Informatica;Gold\n"
        "NEW;New Co;platinum\nBETA;Beta;registered\n",
    )
    async with sessions() as session:
        report = await import_partners(session=session, rules=rules, path=path)
    assert (report.added, report.updated) == (1, 1)
    assert [(r.line, "platinum" in r.reason) for r in report.rejected] == [(3, True)]
    acme = await link_salesperson(sessions, "ACME", 5)
    assert (acme.company, acme.level) == ("Acme Informatica", "gold")


# --- verdicts --------------------------------------------------------------


async def test_customer_without_purchases_qualifies_with_the_partners_quote(
    sessions, rules, programme
):
    acme, beta = programme
    async with sessions() as session:
        gold = await check_eligibility(
            session=session, rules=rules, account=acme, vat=VATS[0], now=NOW
        )
        certified = await check_eligibility(
            session=session, rules=rules, account=beta, vat=VATS[0], now=NOW
        )
    assert gold.quote.amount == Decimal("500.00")
    assert certified.quote.amount == Decimal("300.00")
    assert gold.protected_until == dt.date(2027, 2, 26)
    assert gold.known_name is None


async def test_customer_who_bought_exactly_six_months_ago_is_not_new(
    sessions, rules, programme, tmp_path
):
    acme, _ = programme
    await add_purchases(
        sessions, rules, tmp_path, f"{VATS[0]},Rossi,2026-05-28\n{VATS[1]},Verdi,2026-05-27\n"
    )
    async with sessions() as session:
        with pytest.raises(CustomerNotNew) as caught:
            await check_eligibility(
                session=session, rules=rules, account=acme, vat=VATS[0], now=NOW
            )
        day_before = await check_eligibility(
            session=session, rules=rules, account=acme, vat=VATS[1], now=NOW
        )
    assert caught.value.last_purchase == dt.date(2026, 5, 28)
    assert day_before.known_name == "Verdi"
    assert day_before.last_purchase == dt.date(2026, 5, 27)


async def test_protected_customer_is_refused_to_others_without_naming_the_holder(
    sessions, rules, programme
):
    acme, beta = programme
    registered = await register(sessions, rules, acme, VATS[0], now=NOW)
    async with sessions() as session:
        with pytest.raises(CustomerProtected) as caught:
            await check_eligibility(
                session=session, rules=rules, account=beta, vat=VATS[0], now=NOW
            )
        with pytest.raises(AlreadyRegistered) as mine:
            await check_eligibility(
                session=session, rules=rules, account=acme, vat=VATS[0], now=NOW
            )
    assert caught.value.until == dt.date(2027, 2, 26)
    assert vars(caught.value) == {"until": dt.date(2027, 2, 26)}
    assert mine.value.reference == registered.reference


async def test_protection_ends_after_protection_days_and_the_old_registration_expires(
    sessions, rules, programme
):
    acme, beta = programme
    first = await register(sessions, rules, acme, VATS[0], now=NOW)
    last_protected_day = NOW + dt.timedelta(days=90)
    async with sessions() as session:
        with pytest.raises(CustomerProtected):
            await check_eligibility(
                session=session, rules=rules, account=beta, vat=VATS[0], now=last_protected_day
            )
    second = await register(sessions, rules, beta, VATS[0], now=NOW + dt.timedelta(days=91))
    assert second.status == Status.QUALIFIED
    async with sessions() as session:
        old = await session.get(Registration, first.id)
        assert (old.status, old.protection_key) == (Status.EXPIRED, None)
        changes = (
            await session.execute(
                select(StatusChange.to_status, StatusChange.changed_by)
                .where(StatusChange.registration_id == first.id)
                .order_by(StatusChange.id)
            )
        ).all()
    assert changes == [("qualified", "telegram:1001"), ("expired", "system")]


async def test_registration_freezes_the_quote_with_version_level_and_loyalty(
    sessions, rules, programme
):
    acme, _ = programme
    for index, days_ago in enumerate([400, 300, 200, 100]):  # the first is outside the window
        await register(sessions, rules, acme, VATS[index], now=NOW - dt.timedelta(days=days_ago))
    same_day = await register(sessions, rules, acme, VATS[4], now=NOW)
    fourth = await register(sessions, rules, acme, VATS[5], now=NOW)
    # Three earlier registrations in the 365 days before today: the 1.1 step.
    assert (same_day.loyalty_count, same_day.loyalty_min_registrations) == (3, 3)
    assert same_day.incentive_amount == Decimal("550.00")
    assert fourth.loyalty_count == 3  # registrations of the same day are not "before" it
    assert same_day.incentive_version == dt.date(2025, 7, 1)
    assert same_day.level == "gold"


async def test_an_unknown_customer_needs_a_company_name(sessions, rules, programme):
    acme, _ = programme
    async with sessions() as session:
        with pytest.raises(InvalidInput, match="company_missing"):
            await register_opportunity(
                session=session,
                rules=rules,
                account=acme,
                opportunity=opportunity(VATS[0], None),
                now=NOW,
            )
    assert await count_rows(sessions, "registration") == 0


async def test_two_partners_confirming_the_same_customer_at_once_only_one_qualifies(
    sessions, rules, programme
):
    acme, beta = programme

    async def attempt(account, vat):
        try:
            return await register(sessions, rules, account, vat, now=NOW)
        except CustomerProtected as refused:
            return refused

    for vat in VATS[:4]:
        outcomes = await asyncio.gather(attempt(acme, vat), attempt(beta, vat))
        winners = [o for o in outcomes if not isinstance(o, Exception)]
        refused = [o for o in outcomes if isinstance(o, CustomerProtected)]
        assert (len(winners), len(refused)) == (1, 1)
        assert refused[0].until == winners[0].protected_until
    async with sessions() as session:
        holders = (
            await session.execute(
                select(Registration.vat).where(Registration.protection_key.is_not(None))
            )
        ).all()
    assert sorted(h[0] for h in holders) == sorted(VATS[:4])
    assert await count_rows(sessions, "registration") == 4


async def test_many_partners_racing_for_many_customers_each_customer_gets_one(
    sessions, rules, tmp_path
):
    rows = "".join(f"P{i},Partner {i},gold\n" for i in range(6))
    await add_partners(sessions, rules, tmp_path, rows)
    accounts = [await link_salesperson(sessions, f"P{i}", 100 + i) for i in range(6)]

    async def attempt(account, vat):
        try:
            return await register(sessions, rules, account, vat, now=NOW)
        except (CustomerProtected, AlreadyRegistered) as refused:
            return refused

    outcomes = await asyncio.gather(*(attempt(a, v) for v in VATS[:3] for a in accounts))
    assert sum(not isinstance(o, Exception) for o in outcomes) == 3
    assert all(isinstance(o, CustomerProtected) for o in outcomes if isinstance(o, Exception))
    assert await count_rows(sessions, "registration") == 3


# --- accounts ---------------------------------------------------------------


async def test_invite_links_one_account_once(sessions, rules, tmp_path):
    await add_partners(sessions, rules, tmp_path, "ACME,Acme,gold\n")
    async with sessions() as session:
        invite = await create_invite(session=session, partner_code="acme", now=NOW)
    async with sessions() as session:
        account = await redeem_invite(
            session=session, token=invite.token, telegram_user_id=7, now=NOW
        )
    assert account.company == "Acme"
    async with sessions() as session:
        with pytest.raises(InviteInvalid):
            await redeem_invite(session=session, token=invite.token, telegram_user_id=8, now=NOW)
        assert await find_account(session=session, telegram_user_id=8) is None


async def test_invite_expires_after_seven_days(sessions, rules, tmp_path):
    await add_partners(sessions, rules, tmp_path, "ACME,Acme,gold\n")
    async with sessions() as session:
        invite = await create_invite(session=session, partner_code="ACME", now=NOW)
    async with sessions() as session:
        with pytest.raises(InviteInvalid):
            await redeem_invite(
                session=session,
                token=invite.token,
                telegram_user_id=7,
                now=NOW + dt.timedelta(days=7, seconds=1),
            )
        with pytest.raises(InviteInvalid):
            await redeem_invite(session=session, token="made-up", telegram_user_id=7, now=NOW)


# --- status and outcomes ------------------------------------------------------


async def test_a_partner_sees_only_its_own_registrations(sessions, rules, programme):
    acme, beta = programme
    mine = await register(sessions, rules, acme, VATS[0], now=NOW)
    await register(sessions, rules, beta, VATS[1], now=NOW)
    async with sessions() as session:
        page = await list_registrations(session=session, rules=rules, account=acme, now=NOW)
        with pytest.raises(RegistrationNotFound):
            await get_registration(session=session, account=beta, registration_id=mine.id)
        with pytest.raises(RegistrationNotFound):
            await report_outcome(
                session=session,
                rules=rules,
                account=beta,
                registration_id=mine.id,
                outcome=Status.LOST,
            )
    assert [r.vat for r in page.registrations] == [VATS[0]]
    assert page.totals.expected == Decimal("500.00")


async def test_lost_deal_frees_the_customer_and_won_keeps_it(sessions, rules, programme):
    acme, beta = programme
    lost = await register(sessions, rules, acme, VATS[0], now=NOW)
    won = await register(sessions, rules, acme, VATS[1], now=NOW)
    async with sessions() as session:
        await report_outcome(
            session=session,
            rules=rules,
            account=acme,
            registration_id=lost.id,
            outcome=Status.LOST,
            now=NOW,
        )
        view = await report_outcome(
            session=session,
            rules=rules,
            account=acme,
            registration_id=won.id,
            outcome=Status.WON,
            now=NOW,
        )
        with pytest.raises(TransitionNotAllowed):
            await report_outcome(
                session=session,
                rules=rules,
                account=acme,
                registration_id=won.id,
                outcome=Status.LOST,
                now=NOW,
            )
    assert view.status == "won"
    await register(sessions, rules, beta, VATS[0], now=NOW)
    with pytest.raises(CustomerProtected):
        await register(sessions, rules, beta, VATS[1], now=NOW)


async def test_export_lists_every_registration_with_quote_and_status(sessions, rules, programme):
    acme, beta = programme
    await register(sessions, rules, acme, VATS[0], now=NOW)
    await register(sessions, rules, beta, VATS[1], now=NOW)
    async with sessions() as session:
        rows = [row async for row in export_registrations(session=session)]
    assert [(r["partner_code"], r["incentive_amount"], r["status"]) for r in rows] == [
        ("ACME", "500.00", "qualified"),
        ("BETA", "300.00", "qualified"),
    ]
    assert rows[0]["deal_value"] == "12500.00"
    assert rows[0]["loyalty_multiplier"] == "1.0"


async def test_the_database_refuses_a_second_protection_even_when_the_check_was_passed(
    sessions, rules, programme, monkeypatch
):
    """A race lost between check and insert: the unique constraint, not Python, decides."""
    import bot.services.eligibility as eligibility

    acme, beta = programme
    await register(sessions, rules, acme, VATS[0], now=NOW)
    real = eligibility.assess_customer
    stale = {"reads": 0}

    async def stale_first_read(**kwargs):
        stale["reads"] += 1
        if stale["reads"] == 1:  # what beta would have seen before acme committed
            free = await real(**{**kwargs, "vat": VATS[6]})
            return dataclasses.replace(free, vat=VATS[0], known_name="Rossi S.r.l.")
        return await real(**kwargs)

    monkeypatch.setattr(eligibility, "assess_customer", stale_first_read)
    with pytest.raises(CustomerProtected) as refused:
        await register(sessions, rules, beta, VATS[0], now=NOW)
    assert refused.value.until == dt.date(2027, 2, 26)
    assert stale["reads"] == 2  # the insert failed, then the verdict was read again
    assert await count_rows(sessions, "registration") == 1


async def test_a_salesperson_who_moves_company_sees_only_the_new_partners_data(
    sessions, rules, programme
):
    acme, _beta = programme
    await register(sessions, rules, acme, VATS[0], now=NOW)
    moved = await link_salesperson(sessions, "BETA", acme.telegram_user_id)
    assert moved.partner_code == "BETA"
    async with sessions() as session:
        page = await list_registrations(session=session, rules=rules, account=moved, now=NOW)
        again = await find_account(session=session, telegram_user_id=acme.telegram_user_id)
    assert page.total_count == 0
    assert again.company == "Beta Srl"


async def test_status_shows_registrations_past_protection_as_expired_and_refuses_outcomes(
    sessions, rules, programme
):
    acme, _ = programme
    old = await register(sessions, rules, acme, VATS[0], now=NOW)
    await register(sessions, rules, acme, VATS[1], now=NOW + dt.timedelta(days=60))
    later = NOW + dt.timedelta(days=91)
    async with sessions() as session:
        page = await list_registrations(session=session, rules=rules, account=acme, now=later)
        with pytest.raises(TransitionNotAllowed) as refused:
            await report_outcome(
                session=session,
                rules=rules,
                account=acme,
                registration_id=old.id,
                outcome=Status.WON,
                now=later,
            )
    assert [r.status for r in page.registrations] == ["qualified", "expired"]
    assert page.totals.expected == Decimal("500.00")  # only the one still protected
    assert refused.value.current == "expired"
