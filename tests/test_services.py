"""Services against a real database: SQLite and PostgreSQL, each test on both."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import select, update
from sqlmodel import col

from bot.domain.errors import (
    AlreadyRegistered,
    CustomerNotNew,
    CustomerProtected,
    InvalidInput,
    InviteInvalid,
    NotLinked,
    RegistrationNotFound,
    TransitionNotAllowed,
)
from bot.domain.lifecycle import Status
from bot.domain.references import is_reference
from bot.services.accounts import (
    Visitor,
    create_invite,
    find_account,
    list_salespeople,
    mark_unreachable,
    note_visit,
    preview_invite,
    recognise,
    recognise_in_one_read,
    redeem_invite,
    unlink_salesperson,
)
from bot.services.eligibility import (
    check_eligibility,
    register_opportunity,
    release_lapsed_protection,
    staff_verdict,
)
from bot.services.history import change_status
from bot.services.imports import import_partners, import_purchases
from bot.services.registrations import (
    export_registrations,
    get_registration,
    list_registrations,
    report_outcome,
)
from bot.storage.conversations import PostgresConversations, open_conversations
from bot.storage.database import Timeouts
from bot.storage.rows import open_row_reads
from models import Customer, Registration, StatusChange
from tests.conftest import count_rows
from tests.factories import (
    NOW,
    VATS,
    add_partners,
    add_purchases,
    italian_vat,
    link_salesperson,
    opportunity,
    register,
    report,
    write_csv,
)

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
        report = await import_purchases(session=session, rules=rules, path=path, today=TODAY)
    assert (report.read, report.added, report.rejected) == (2, 2, [])
    async with sessions() as session:
        assert (await session.get(Customer, "IT12345670587")).name == "Rossi S.r.l."


async def test_reimporting_the_same_purchases_adds_nothing(sessions, rules, tmp_path):
    rows = "IT12345670587,Rossi,2026-03-01\nIT00743110157,Bianchi,2025-01-10\n"
    await add_purchases(sessions, rules, tmp_path, rows)
    path = write_csv(tmp_path / "again.csv", "vat,customer_name,purchase_date\n" + rows)
    async with sessions() as session:
        report = await import_purchases(session=session, rules=rules, path=path, today=TODAY)
    assert (report.added, report.unchanged) == (0, 2)
    assert await count_rows(sessions, "purchase") == 2


async def test_bad_purchase_rows_are_reported_by_line_and_skipped(sessions, rules, tmp_path):
    path = write_csv(
        tmp_path / "p.csv",
        "vat,customer_name,purchase_date\n"
        "IT12345670587,Rossi,2026-03-01\n"
        "IT12345670588,Bad check digit,2026-03-01\n"
        "\n"
        "IT00743110157,Bad date,2026-03-32\n"
        "IT01114601006,Good,2024-12-31\n",
    )
    async with sessions() as session:
        report = await import_purchases(session=session, rules=rules, path=path, today=TODAY)
    assert [(r.line, r.problem) for r in report.rejected] == [(3, "vat"), (5, "date")]
    assert report.rejected[0].values == {"value": "IT12345670588", "why": "vat_checksum"}
    assert report.added == 2


async def test_partner_import_updates_the_partner_with_the_same_code(sessions, rules, tmp_path):
    await add_partners(sessions, rules, tmp_path, "ACME,Acme,certified\n")
    path = write_csv(
        tmp_path / "p2.csv",
        "code;company;level\nacme;Acme Informatica;Gold\n"
        "NEW;New Co;platinum\nBETA;Beta;registered\n",
    )
    async with sessions() as session:
        report = await import_partners(session=session, rules=rules, path=path, now=NOW)
    assert (report.added, report.updated) == (1, 1)
    assert [(r.line, r.problem, r.values["value"]) for r in report.rejected] == [
        (3, "level", "platinum")
    ]
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
    # Three earlier registrations in the 365 days up to today: the 1.1 step.
    quote = same_day.quote
    assert (quote.earlier_registrations, quote.loyalty_min_registrations) == (3, 3)
    assert quote.amount == Decimal("550.00")
    assert quote.version == dt.date(2025, 7, 1)
    assert quote.level == "gold"


async def test_a_partners_third_registration_of_the_day_is_quoted_with_the_two_before_it(
    sessions, rules, programme
):
    acme, beta = programme
    first = await register(sessions, rules, acme, VATS[0], now=NOW)
    await register(sessions, rules, beta, VATS[1], now=NOW)  # another partner's: not counted
    second = await register(sessions, rules, acme, VATS[2], now=NOW + dt.timedelta(hours=1))
    third = await register(sessions, rules, acme, VATS[3], now=NOW + dt.timedelta(hours=2))
    fourth = await register(sessions, rules, acme, VATS[4], now=NOW + dt.timedelta(hours=3))
    assert [r.quote.earlier_registrations for r in (first, second, third, fourth)] == [0, 1, 2, 3]
    assert fourth.quote.amount == Decimal("550.00")  # the fourth reaches the 1.1 step


async def test_a_rejected_registration_does_not_count_for_loyalty(sessions, rules, programme):
    acme, _ = programme
    for vat in VATS[:3]:
        await register(sessions, rules, acme, vat, now=NOW)
    async with sessions() as session:
        rejected = (
            await session.execute(select(Registration).where(Registration.vat == VATS[0]))
        ).scalar_one()
        for target in (Status.WON, Status.REJECTED):
            await change_status(
                session, registration_id=rejected.id, target=target, by="staff", at=NOW
            )
        await session.commit()
    async with sessions() as session:
        verdict = await check_eligibility(
            session=session, rules=rules, account=acme, vat=VATS[5], now=NOW
        )
    assert verdict.quote.earlier_registrations == 2


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
            session=session, token=invite.token, visitor=Visitor(7), now=NOW
        )
    assert account.company == "Acme"
    async with sessions() as session:
        with pytest.raises(InviteInvalid):
            await redeem_invite(session=session, token=invite.token, visitor=Visitor(8), now=NOW)
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
                visitor=Visitor(7),
                now=NOW + dt.timedelta(days=7, seconds=1),
            )
        with pytest.raises(InviteInvalid):
            await redeem_invite(session=session, token="made-up", visitor=Visitor(7), now=NOW)


# --- status and outcomes ------------------------------------------------------


async def test_a_partner_sees_only_its_own_registrations(sessions, rules, programme):
    acme, beta = programme
    mine = await register(sessions, rules, acme, VATS[0], now=NOW)
    await register(sessions, rules, beta, VATS[1], now=NOW)
    async with sessions() as session:
        page = await list_registrations(session=session, rules=rules, account=acme, now=NOW)
        with pytest.raises(RegistrationNotFound):
            await get_registration(session=session, account=beta, reference=mine.reference)
        with pytest.raises(RegistrationNotFound):
            await report_outcome(
                session=session,
                rules=rules,
                account=beta,
                reference=mine.reference,
                outcome=Status.LOST,
                now=NOW,
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
            reference=lost.reference,
            outcome=Status.LOST,
            now=NOW,
        )
        view = await report_outcome(
            session=session,
            rules=rules,
            account=acme,
            reference=won.reference,
            outcome=Status.WON,
            now=NOW,
        )
        with pytest.raises(TransitionNotAllowed):
            await report_outcome(
                session=session,
                rules=rules,
                account=acme,
                reference=won.reference,
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
        ("ACME", Decimal("500.00"), "qualified"),
        ("BETA", Decimal("300.00"), "qualified"),
    ]
    assert rows[0]["deal_value"] == Decimal("12500.00")
    assert rows[0]["loyalty_multiplier"] == Decimal("1.0")
    assert rows[0]["registered_on"] == TODAY


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
                reference=old.reference,
                outcome=Status.WON,
                now=later,
            )
    assert [r.status for r in page.registrations] == ["qualified", "expired"]
    assert page.totals.expected == Decimal("500.00")  # only the one still protected
    assert refused.value.current == "expired"


# --- the lifecycle: one function moves every status -----------------------------

ALLOWED_MOVES = {
    ("qualified", "won"),
    ("qualified", "lost"),
    ("qualified", "expired"),
    ("won", "approved"),
    ("won", "rejected"),
    ("approved", "paid"),
    ("qualified", "revoked"),
    ("won", "revoked"),
    ("disputed", "qualified"),
    ("disputed", "refused"),
}
# How to bring a fresh registration to each status through allowed moves.
PATH_TO = {
    "qualified": [],
    "won": ["won"],
    "approved": ["won", "approved"],
    "paid": ["won", "approved", "paid"],
    "lost": ["lost"],
    "expired": ["expired"],
    "rejected": ["won", "rejected"],
    "revoked": ["revoked"],
    # Disputes are born disputed: the test puts the fresh registration there first.
    "disputed": [],
    "refused": ["refused"],
}
BORN_DISPUTED = {"disputed", "refused"}


async def test_every_move_between_the_ten_statuses_is_allowed_or_refused_as_the_lifecycle_says(
    sessions, rules, programme
):
    acme, _ = programme
    for index, (start, path) in enumerate(PATH_TO.items()):
        registration = await register(sessions, rules, acme, italian_vat(700 + index), now=NOW)
        async with sessions() as session:
            if start in BORN_DISPUTED:
                await session.execute(
                    update(Registration)
                    .where(col(Registration.id) == registration.id)
                    .values(status="disputed", protection_key=None)
                )
            for step in path:
                await change_status(
                    session, registration_id=registration.id, target=Status(step), by="t", at=NOW
                )
            await session.commit()
        for target in Status:
            async with sessions() as session:
                if (start, target.value) in ALLOWED_MOVES:
                    left = await change_status(
                        session, registration_id=registration.id, target=target, by="t", at=NOW
                    )
                    assert left == start
                    await session.rollback()  # keep `start` for the next target
                else:
                    with pytest.raises(TransitionNotAllowed) as refused:
                        await change_status(
                            session,
                            registration_id=registration.id,
                            target=target,
                            by="t",
                            at=NOW,
                        )
                    assert (refused.value.current, refused.value.target) == (start, target.value)
            async with sessions() as session:
                assert (await session.get(Registration, registration.id)).status == start


async def test_a_status_move_keeps_who_and_when_and_frees_the_customer_when_it_ends(
    sessions, rules, programme
):
    acme, beta = programme
    registration = await register(sessions, rules, acme, VATS[0], now=NOW)
    async with sessions() as session:
        await change_status(
            session,
            registration_id=registration.id,
            target=Status.LOST,
            by="telegram:1001",
            at=NOW,
            note="price",
        )
        await session.commit()
    async with sessions() as session:
        moves = (
            await session.execute(
                select(StatusChange.from_status, StatusChange.to_status, StatusChange.note)
                .where(StatusChange.registration_id == registration.id)
                .order_by(StatusChange.id)
            )
        ).all()
    assert moves == [(None, "qualified", None), ("qualified", "lost", "price")]
    await register(sessions, rules, beta, VATS[0], now=NOW)  # the customer is free again


async def test_two_colleagues_reporting_opposite_outcomes_at_once_only_one_counts(
    sessions, rules, programme
):
    acme, _ = programme
    colleague = await link_salesperson(sessions, "ACME", 1003)
    registration = await register(sessions, rules, acme, VATS[0], now=NOW)

    async def report_or_refusal(account, outcome):
        try:
            return await report(sessions, rules, account, registration, outcome)
        except TransitionNotAllowed as refused:
            return refused

    outcomes = await asyncio.gather(
        report_or_refusal(acme, Status.WON), report_or_refusal(colleague, Status.LOST)
    )
    assert sum(isinstance(o, TransitionNotAllowed) for o in outcomes) == 1
    async with sessions() as session:
        moves = (
            await session.execute(
                select(StatusChange.to_status).where(
                    StatusChange.registration_id == registration.id
                )
            )
        ).all()
    assert len(moves) == 2  # created, then exactly one outcome


# --- references ----------------------------------------------------------------


async def test_references_are_random_unambiguous_and_unique(sessions, rules, programme):
    acme, _ = programme
    references = [
        (await register(sessions, rules, acme, italian_vat(900 + i), now=NOW)).reference
        for i in range(30)
    ]
    assert len(set(references)) == 30
    for reference in references:
        assert is_reference(reference)
        assert not set(reference[4:]) & set("01OIL")
    # Not a counter: neither the first one nor their order says how many exist.
    assert references[0] != "PAI-000001"
    assert references not in (sorted(references), sorted(references, reverse=True))


async def test_the_database_refuses_a_second_registration_with_the_same_reference(
    sessions, rules, programme, monkeypatch
):
    import bot.services.eligibility as eligibility

    acme, _ = programme
    clashing = iter(["PAI-ABCDEF", "PAI-ABCDEF", "PAI-GHJKMN"])
    monkeypatch.setattr(eligibility, "new_reference", lambda: next(clashing))
    first = await register(sessions, rules, acme, VATS[0], now=NOW)
    second = await register(sessions, rules, acme, VATS[1], now=NOW)  # clashes once, retries
    assert (first.reference, second.reference) == ("PAI-ABCDEF", "PAI-GHJKMN")
    assert await count_rows(sessions, "registration") == 2


# --- privacy: what one partner typed stays with its registration ----------------


async def test_a_name_a_partner_typed_is_never_shown_to_another_partner(
    sessions, rules, programme, tmp_path
):
    acme, beta = programme
    registered = await register(sessions, rules, acme, VATS[0], now=NOW, name="Typed by Acme")
    await report(sessions, rules, acme, registered, Status.LOST)
    async with sessions() as session:
        verdict = await check_eligibility(
            session=session, rules=rules, account=beta, vat=VATS[0], now=NOW
        )
        assert await session.get(Customer, VATS[0]) is None
    assert verdict.known_name is None  # beta is asked for the name, not told acme's
    async with sessions() as session:
        staff = await staff_verdict(session=session, rules=rules, vat=VATS[0], now=NOW)
    assert staff.vendor_name is None
    # Once the vendor's history names the customer, that name is everyone's.
    await add_purchases(sessions, rules, tmp_path, f"{VATS[0]},Vendor Name SpA,2020-01-01\n")
    async with sessions() as session:
        verdict = await check_eligibility(
            session=session, rules=rules, account=beta, vat=VATS[0], now=NOW
        )
    assert verdict.known_name == "Vendor Name SpA"


async def test_staff_see_the_holder_and_the_name_it_typed(sessions, rules, programme):
    acme, _ = programme
    registered = await register(sessions, rules, acme, VATS[0], now=NOW, name="Typed by Acme")
    async with sessions() as session:
        staff = await staff_verdict(session=session, rules=rules, vat=VATS[0], now=NOW)
    assert staff.holder is not None
    assert (staff.holder.partner_code, staff.holder.reference, staff.holder.typed_name) == (
        "ACME",
        registered.reference,
        "Typed by Acme",
    )


async def test_a_customer_row_an_older_version_made_from_a_typed_name_is_not_shared(
    sessions, rules, programme
):
    _, beta = programme
    async with sessions() as session:
        session.add(Customer(vat=VATS[0], name="Typed long ago"))
        await session.commit()
        verdict = await check_eligibility(
            session=session, rules=rules, account=beta, vat=VATS[0], now=NOW
        )
    assert verdict.known_name is None


# --- accounts: invites that move people, people who leave -------------------------


async def test_an_invite_preview_says_whether_it_moves_the_account(sessions, rules, programme):
    acme, _ = programme
    async with sessions() as session:
        beta_invite = await create_invite(session=session, partner_code="BETA", now=NOW)
        acme_invite = await create_invite(session=session, partner_code="ACME", now=NOW)
    async with sessions() as session:
        move = await preview_invite(
            session=session,
            token=beta_invite.token,
            telegram_user_id=acme.telegram_user_id,
            now=NOW,
        )
        same = await preview_invite(
            session=session,
            token=acme_invite.token,
            telegram_user_id=acme.telegram_user_id,
            now=NOW,
        )
        newcomer = await preview_invite(
            session=session, token=beta_invite.token, telegram_user_id=555, now=NOW
        )
    assert (move.moves, move.current.code, move.partner.code) == (True, "ACME", "BETA")
    assert (same.moves, newcomer.moves, newcomer.current) == (False, False, None)
    async with sessions() as session:  # previewing used nothing
        await redeem_invite(session=session, token=beta_invite.token, visitor=Visitor(555), now=NOW)


async def test_an_unlinked_salesperson_loses_access_and_the_partner_keeps_the_registrations(
    sessions, rules, programme
):
    acme, _ = programme
    registered = await register(sessions, rules, acme, VATS[0], now=NOW)
    async with sessions() as session:
        person = await unlink_salesperson(
            session=session, telegram_user_id=acme.telegram_user_id, now=NOW
        )
        assert person.partner_code == "ACME"
        assert await find_account(session=session, telegram_user_id=acme.telegram_user_id) is None
        with pytest.raises(NotLinked):
            await unlink_salesperson(
                session=session, telegram_user_id=acme.telegram_user_id, now=NOW
            )
        assert [p.telegram_user_id for p in await list_salespeople(session=session)] == [2002]
    colleague = await link_salesperson(sessions, "ACME", 1009)
    async with sessions() as session:
        page = await list_registrations(session=session, rules=rules, account=colleague, now=NOW)
    assert [r.reference for r in page.registrations] == [registered.reference]
    back = await link_salesperson(sessions, "ACME", acme.telegram_user_id)  # a new invite
    assert back.partner_code == "ACME"


async def see(sessions, visitor, now):
    """Recognise a visitor and note the visit, as the bot does (the note runs beside)."""
    async with sessions() as session:
        found = await recognise(session=session, visitor=visitor, now=now)
    if found is not None and found.visit:
        async with sessions() as session:
            await note_visit(
                session=session, telegram_user_id=visitor.telegram_user_id, visit=found.visit
            )
    return found


async def test_telegram_language_name_and_last_seen_are_kept_as_they_change(
    sessions, rules, programme
):
    acme, _ = programme
    visitor = Visitor(acme.telegram_user_id, "de", "Anna Weber", "anna_w")
    found = await see(sessions, visitor, NOW)
    assert found.account.telegram_language == "de"
    later = NOW + dt.timedelta(hours=1)
    found = await see(sessions, dataclasses.replace(visitor, language_code="it"), later)
    assert found.account.telegram_language == "it"
    async with sessions() as session:
        [person] = await list_salespeople(session=session, partner_code="acme")
    assert (person.display_name, person.username, person.last_seen_at) == (
        "Anna Weber",
        "anna_w",
        later,
    )
    assert await see(sessions, Visitor(99999), NOW) is None


async def test_recognising_a_visitor_only_reads_and_says_what_changed(sessions, rules, programme):
    acme, _ = programme
    visitor = Visitor(acme.telegram_user_id, "it\x00", "Anna\u202e", None)
    later = NOW + dt.timedelta(minutes=20)  # joined at NOW
    first = await see(sessions, visitor, later)
    assert first.visit == {
        "telegram_language": "it",
        "display_name": "Anna",
        "last_seen_at": later,
    }
    async with sessions() as session:
        again = await recognise(
            session=session, visitor=visitor, now=later + dt.timedelta(minutes=14)
        )
    assert again.visit == {}  # nothing new, seen within the quarter hour: no write at all


async def test_the_one_read_of_every_update_sees_what_a_session_sees_and_an_unlink_at_once(
    sessions, rules, programme
):
    """The account read on every update goes to the driver in one round trip (SQLite's
    text moments, PostgreSQL's booleans through the columns' own types): the same
    account and the same visit as through a session; nothing cached."""
    acme, _ = programme
    engine = sessions.kw["bind"]
    talks = await open_conversations(str(engine.url), engine, Timeouts())
    pool = talks.pool if isinstance(talks, PostgresConversations) else None
    rows = await open_row_reads(engine.url.render_as_string(False), engine, pool, Timeouts())
    try:
        visitor = Visitor(acme.telegram_user_id, "de", "Anna Weber", "anna_w")
        await see(sessions, visitor, NOW)
        async with sessions() as session:
            await mark_unreachable(session=session, people=[acme.salesperson_id], now=NOW)
            await session.commit()
        later = NOW + dt.timedelta(hours=2)
        async with sessions() as session:
            through_session = await recognise(session=session, visitor=visitor, now=later)
        quick = await recognise_in_one_read(rows=rows, visitor=visitor, now=later)
        assert quick == through_session
        assert quick.visit == {"last_seen_at": later, "unreachable_at": None}
        assert quick.account.reminders_enabled is True

        async with sessions() as session:
            await unlink_salesperson(
                session=session, telegram_user_id=acme.telegram_user_id, now=later
            )
        assert await recognise_in_one_read(rows=rows, visitor=visitor, now=later) is None
    finally:
        await rows.close()
        await talks.close()


# --- imports ---------------------------------------------------------------------


async def test_a_purchase_dated_after_today_is_rejected_unless_allowed(sessions, rules, tmp_path):
    path = write_csv(
        tmp_path / "p.csv",
        f"vat,customer_name,purchase_date\n{VATS[0]},Rossi,2026-11-28\n{VATS[1]},Verdi,2026-11-29\n",
    )
    async with sessions() as session:
        report = await import_purchases(session=session, rules=rules, path=path, today=TODAY)
    assert [(r.line, r.problem) for r in report.rejected] == [(3, "future")]
    async with sessions() as session:
        report = await import_purchases(
            session=session, rules=rules, path=path, today=TODAY, allow_future=True
        )
    assert (report.added, report.rejected) == (1, [])


async def test_a_code_repeated_in_a_partners_file_takes_the_later_row(sessions, rules, tmp_path):
    path = write_csv(
        tmp_path / "p.csv",
        "code,company,level\nACME,Acme Old,gold\nBETA,Beta,gold\nacme,Acme New,certified\n",
    )
    async with sessions() as session:
        report = await import_partners(session=session, rules=rules, path=path, now=NOW)
    assert (report.added, report.repeated) == (2, [4])
    acme = await link_salesperson(sessions, "ACME", 5)
    assert (acme.company, acme.level) == ("Acme New", "certified")


async def test_control_characters_in_a_file_are_cleaned_before_they_are_stored(
    sessions, rules, tmp_path
):
    path = write_csv(
        tmp_path / "p.csv",
        f"vat,customer_name,purchase_date\n{VATS[0]},Ros\x00si\x07 Srl,2026-01-10\n",
    )
    async with sessions() as session:
        report = await import_purchases(session=session, rules=rules, path=path, today=TODAY)
        assert report.rejected == []
        assert (await session.get(Customer, VATS[0])).name == "Rossi Srl"


async def test_a_won_deal_past_its_protection_lets_the_customer_go_once_and_for_good(
    sessions, rules, programme
):
    acme, _ = programme
    won = await register(sessions, rules, acme, VATS[0], now=NOW)
    await report(sessions, rules, acme, won, Status.WON)
    later = NOW + dt.timedelta(days=91)
    async with sessions() as session:
        await list_registrations(session=session, rules=rules, account=acme, now=later)
    async with sessions() as session:
        registration = await session.get(Registration, won.id)
        assert (registration.status, registration.protection_key) == ("won", None)
        # Nothing left to release: a second look writes nothing.
        changed = await release_lapsed_protection(
            session=session, today=rules.today(later), at=later, partner_id=acme.partner_id
        )
    assert changed == 0
