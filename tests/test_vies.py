"""VIES beside every verdict (PRODUCT.md §6), against a fake VIES over HTTP: valid,
invalid, each error, a hang; the cache, the tick's retries, staff's view, the limits."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import select

from bot.domain.lifecycle import Status
from bot.jobs.reminders import run_tick
from bot.services import vies as vies_service
from bot.services.accounts import find_account
from bot.services.registrations import report_outcome
from bot.services.vies import ViesAnswer, ViesClient, ViesOutcome, read_answer
from models import Registration, ViesCheck
from tests.conftest import BACKENDS, database_url_for, reset_postgresql
from tests.factories import VATS
from tests.fake_vies import FakeVies, serving_vies
from tests.harness import Harness, buttons, running_bot
from tests.test_conversations import join, load_programme

STAFF = 900
BIANCHI = VATS[1]  # in the vendor's history: the name is known, no company question
NEWCOMER = VATS[0]  # unknown to the vendor: the company is asked


@pytest.fixture
async def vies():
    async with serving_vies() as fake:
        yield fake


@pytest.fixture(params=BACKENDS)
async def bot(request, tmp_path, rules, vies: FakeVies):
    url = database_url_for(request.param, tmp_path)
    if request.param == "postgresql":
        await reset_postgresql(url)
    async with running_bot(
        tmp_path,
        database_url=url,
        pai_vies=True,
        pai_vies_url=vies.url,
        pai_admin_ids=frozenset({STAFF}),
    ) as harness:
        await load_programme(harness, rules, tmp_path)
        yield harness


async def kept(bot: Harness, vat: str) -> ViesCheck | None:
    async with bot.sessions() as session:
        return (
            await session.execute(select(ViesCheck).where(ViesCheck.vat == vat))
        ).scalar_one_or_none()


# --- VIES's replies, read ------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "text", "expected"),
    [
        (
            200,
            '{"valid": true, "name": "ROSSI SRL", "address": "VIA ROMA 1\\nMILANO"}',
            ViesAnswer(ViesOutcome.VALID, "ROSSI SRL", "VIA ROMA 1 MILANO"),
        ),
        (200, '{"valid": true, "name": "---", "address": "---"}', ViesAnswer(ViesOutcome.VALID)),
        (200, '{"isValid": false, "userError": "INVALID"}', ViesAnswer(ViesOutcome.INVALID)),
        (
            400,
            '{"actionSucceed": false, "errorWrappers": [{"error": "INVALID_INPUT"}]}',
            ViesAnswer(ViesOutcome.INVALID),
        ),
        (
            500,
            '{"actionSucceed": false, "errorWrappers": [{"error": "MS_UNAVAILABLE"}]}',
            ViesAnswer(ViesOutcome.UNAVAILABLE, error="MS_UNAVAILABLE"),
        ),
        (
            200,
            '{"isValid": false, "userError": "MS_MAX_CONCURRENT_REQ"}',
            ViesAnswer(ViesOutcome.UNAVAILABLE, error="MS_MAX_CONCURRENT_REQ"),
        ),
        (
            503,
            "<html>Service Unavailable</html>",
            ViesAnswer(ViesOutcome.UNAVAILABLE, error="HTTP_503"),
        ),
        (200, "{not json", ViesAnswer(ViesOutcome.UNAVAILABLE, error="GARBAGE")),
        (200, "[1, 2]", ViesAnswer(ViesOutcome.UNAVAILABLE, error="GARBAGE")),
        (200, '{"valid": "yes"}', ViesAnswer(ViesOutcome.UNAVAILABLE, error="GARBAGE")),
    ],
)
def test_each_reply_of_vies_is_read_as_an_answer_or_a_failure(status, text, expected):
    assert read_answer(status, text) == expected


def test_a_reply_nested_past_any_parser_is_no_answer():
    assert read_answer(200, "[" * 100_000).error == "GARBAGE"


# --- beside the verdict --------------------------------------------------------------


async def test_a_valid_number_shows_the_vies_name_and_offers_it_as_the_company_in_one_tap(
    bot, vies
):
    vies.behaviours[NEWCOMER] = ("valid", "ROSSI INFORMATICA SRL")
    chat = await join(bot, 11, language="en")
    [verdict] = await chat.send(f"/new {NEWCOMER}")
    assert "is a new customer" in verdict["text"]
    assert "VIES: a valid VAT number, registered to <b>ROSSI INFORMATICA SRL</b>" in verdict["html"]
    assert "What is the customer's company name?" in verdict["text"]
    assert [label for label, _ in buttons(verdict)] == ["Use: ROSSI INFORMATICA SRL"]
    [value] = await chat.press(verdict, "Use: ROSSI INFORMATICA SRL")
    assert "is a new customer" in verdict["text"]  # the verdict stays in view
    assert buttons(verdict) == []
    assert "Company: ROSSI INFORMATICA SRL ✓" in value["text"]
    assert "Estimated deal value" in value["text"]
    row = await kept(bot, NEWCOMER)
    assert row is not None
    assert (row.outcome, row.name, row.retry_at) == ("valid", "ROSSI INFORMATICA SRL", None)


async def test_an_answer_is_kept_thirty_days_and_asked_again_after(bot, vies):
    chat = await join(bot, 11, language="en")
    await chat.send(f"/check {BIANCHI}")
    await chat.send(f"/check {BIANCHI}")
    assert vies.asked == [BIANCHI]  # the second came from the database
    bot.clock.advance(dt.timedelta(days=31))
    [again] = await chat.send(f"/check {BIANCHI}")
    assert vies.asked == [BIANCHI, BIANCHI]
    assert "VIES: a valid VAT number" in again["text"]


async def test_an_invalid_number_is_a_warning_and_the_registration_goes_on(bot, vies):
    vies.behaviours[NEWCOMER] = ("invalid",)
    chat = await join(bot, 11, language="en")
    [verdict] = await chat.send(f"/new {NEWCOMER}")
    assert "is a new customer" in verdict["text"]
    assert "VIES says this VAT number is not valid. You can still register it" in verdict["text"]
    assert buttons(verdict) == []  # no name to offer
    assert "What is the customer's company name?" in verdict["text"]
    row = await kept(bot, NEWCOMER)
    assert row is not None and row.outcome == "invalid"


@pytest.mark.parametrize(
    "behaviour",
    [
        ("error", "MS_UNAVAILABLE"),
        ("error", "MS_MAX_CONCURRENT_REQ"),
        ("error", "GLOBAL_MAX_CONCURRENT_REQ"),
        ("error", "SERVICE_UNAVAILABLE"),
        ("error", "TIMEOUT"),
        ("html",),
        ("garbage",),
    ],
)
async def test_vies_unavailable_is_said_and_the_registration_goes_on(bot, vies, behaviour):
    vies.behaviours[BIANCHI] = behaviour
    chat = await join(bot, 11, language="en")
    [verdict] = await chat.send(f"/new {BIANCHI}")
    assert "is a new customer" in verdict["text"]  # newness never depends on VIES
    assert "VIES did not answer; it will be checked again." in verdict["text"]
    assert "Estimated deal value" in verdict["text"]
    row = await kept(bot, BIANCHI)
    assert row is not None
    assert row.outcome == "unavailable"
    assert row.answered_at is None  # a failure is not an answer: nothing cached
    assert row.retry_at == bot.clock.now() + dt.timedelta(hours=1)


async def test_a_hanging_vies_holds_the_verdict_no_longer_than_the_timeout(bot, vies):
    vies.behaviours[BIANCHI] = ("hang",)
    bot.resources._vies = ViesClient(vies.url, timeout=0.5)  # the test's own, short timeout
    chat = await join(bot, 11, language="en")
    started = asyncio.get_running_loop().time()
    [verdict] = await chat.send(f"/new {BIANCHI}")
    waited = asyncio.get_running_loop().time() - started
    assert "is a new customer" in verdict["text"]
    assert "VIES did not answer; it will be checked again." in verdict["text"]
    assert waited < 3  # the timeout (0.5 s), not the hang
    row = await kept(bot, BIANCHI)
    assert row is not None and row.error == "TIMEOUT"


async def test_the_verdict_waits_for_vies_no_longer_than_its_timeout_whatever_holds_it(
    bot, vies, monkeypatch
):
    monkeypatch.setattr("handlers.registration.VIES_TIMEOUT", 0.3)
    vies.behaviours[BIANCHI] = ("hang",)
    bot.resources._vies = ViesClient(vies.url, timeout=2)  # the client itself would wait longer
    chat = await join(bot, 11, language="en")
    started = asyncio.get_running_loop().time()
    [verdict] = await chat.send(f"/check {BIANCHI}")
    assert asyncio.get_running_loop().time() - started < 5
    assert "is a new customer" in verdict["text"]
    assert "VIES did not answer; it will be checked again." in verdict["text"]


async def test_a_vies_that_breaks_every_parser_costs_neither_the_verdict_nor_the_tick(
    bot, vies, monkeypatch
):
    vies.behaviours[BIANCHI] = ("deep",)
    chat = await join(bot, 11, language="en")
    [verdict] = await chat.send(f"/check {BIANCHI}")
    assert "is a new customer" in verdict["text"]
    assert "VIES did not answer; it will be checked again." in verdict["text"]
    bot.clock.advance(dt.timedelta(hours=1))
    report = await run_tick(bot.app)  # the reminders' tick runs through
    assert report.vies_retried == 1


async def test_a_failure_after_a_day_given_up_starts_a_new_day_of_retries(bot, vies):
    vies.behaviours[BIANCHI] = ("error", "MS_UNAVAILABLE")
    chat = await join(bot, 11, language="en")
    await chat.send(f"/check {BIANCHI}")
    for _ in range(25):
        bot.clock.advance(dt.timedelta(hours=1))
        await run_tick(bot.app)
    row = await kept(bot, BIANCHI)
    assert row is not None and row.retry_at is None  # given up
    bot.clock.advance(dt.timedelta(days=3))
    [again] = await chat.send(f"/check {BIANCHI}")  # asked again: no answer was kept
    assert "VIES did not answer; it will be checked again." in again["text"]
    row = await kept(bot, BIANCHI)
    assert row is not None and row.retry_at == bot.clock.now() + dt.timedelta(hours=1)


async def test_the_tick_asks_again_hourly_for_a_day_and_staff_see_the_outcome(bot, vies):
    vies.behaviours[BIANCHI] = ("error", "MS_UNAVAILABLE")
    chat = await join(bot, 11, language="en")
    await chat.send(f"/check {BIANCHI}")
    assert (await run_tick(bot.app)).vies_retried == 0  # not before its hour
    for hour in range(1, 24):
        bot.clock.advance(dt.timedelta(hours=1))
        assert (await run_tick(bot.app)).vies_retried == 1, hour
    bot.clock.advance(dt.timedelta(hours=1))
    assert (await run_tick(bot.app)).vies_retried == 1  # the 24th hour: the last try
    row = await kept(bot, BIANCHI)
    assert row is not None and row.retry_at is None  # given up
    bot.clock.advance(dt.timedelta(hours=1))
    assert (await run_tick(bot.app)).vies_retried == 0
    assert len(vies.asked) == 25
    staff = bot.chat(STAFF, "en")
    [found] = await staff.send(f"/find {BIANCHI}")
    assert "VIES: no answer for a day (MS_UNAVAILABLE), no longer asked" in found["text"]


async def test_a_retry_that_gets_an_answer_keeps_it_and_staff_see_the_flag(bot, vies):
    vies.behaviours[NEWCOMER] = ("error", "MS_UNAVAILABLE")
    chat = await join(bot, 11, language="en")
    await chat.send(f"/check {NEWCOMER}")
    staff = bot.chat(STAFF, "en")
    [found] = await staff.send(f"/find {NEWCOMER}")
    assert "VIES: no answer yet (MS_UNAVAILABLE), asked again every hour" in found["text"]
    vies.behaviours[NEWCOMER] = ("invalid",)
    bot.clock.advance(dt.timedelta(hours=1))
    assert (await run_tick(bot.app)).vies_retried == 1
    row = await kept(bot, NEWCOMER)
    assert row is not None
    assert (row.outcome, row.retry_at) == ("invalid", None)
    [found] = await staff.send(f"/find {NEWCOMER}")
    assert "VIES: not a valid VAT number" in found["text"]


async def test_staff_notice_of_a_won_deal_carries_the_vies_flag(bot, vies):
    vies.behaviours[NEWCOMER] = ("invalid",)
    chat = await join(bot, 11, language="en")
    await chat.send(f"/new {NEWCOMER}")
    await chat.send("Rossi Srl")
    await chat.send("2500")
    await chat.send("Server")
    [summary] = await chat.send("2027-03-01")
    await chat.press(summary, "Confirm")
    async with bot.sessions() as session:
        [made] = (await session.execute(select(Registration))).scalars()
        account = await find_account(session=session, telegram_user_id=11)
        assert account is not None
        await report_outcome(
            session=session,
            rules=bot.resources.rules,
            account=account,
            reference=made.reference,
            outcome=Status.WON,
            now=bot.clock.now(),
        )
    await bot.deliver()
    [notice] = [m for m in bot.api.sent_to(STAFF) if made.reference in m["text"]]
    assert "VIES: not a valid VAT number" in notice["text"]


async def test_vies_off_asks_nothing_and_says_nothing(tmp_path, rules, vies):
    async with running_bot(tmp_path, pai_vies=False, pai_vies_url=vies.url) as bot:
        await load_programme(bot, rules, tmp_path)
        chat = await join(bot, 11, language="en")
        [verdict] = await chat.send(f"/new {BIANCHI}")
        assert "is a new customer" in verdict["text"]
        assert "VIES" not in verdict["text"]
    assert vies.asked == []


async def test_a_number_outside_the_eu_is_not_asked(bot, vies):
    assert (
        await vies_service.look_up(
            sessions=bot.sessions,
            client=ViesClient(vies.url),
            vat="GB980780684",
            now=bot.clock.now(),
        )
        is None
    )
    assert vies.asked == []


async def test_at_most_a_few_requests_are_in_flight_at_once(vies):
    vies.gate = asyncio.Event()
    client = ViesClient(vies.url, at_once=vies_service.AT_ONCE)
    asking = [asyncio.create_task(client.ask(f"IT{n:011d}")) for n in range(12)]
    while vies.in_flight < vies_service.AT_ONCE:  # noqa: ASYNC110 (a count, not an event)
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)  # the others would have arrived by now, were they sent
    assert vies.in_flight == vies_service.AT_ONCE
    vies.gate.set()
    answers = await asyncio.gather(*asking)
    await client.close()
    assert all(a.outcome == ViesOutcome.VALID for a in answers)
    assert vies.most_in_flight == vies_service.AT_ONCE
