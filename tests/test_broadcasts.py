"""Broadcasts: written, previewed and sent by staff; each reachable partner gets one copy."""

from __future__ import annotations

import sqlite3
import time

import pytest
from sqlalchemy import select

import bot.jobs.broadcasts as broadcasts_module
from bot.app.demo.telegram import FakeBotApi, TelegramError
from models import Broadcast, BroadcastDelivery, Salesperson
from tests.conftest import BACKENDS, database_url_for, reset_postgresql
from tests.factories import link_salesperson
from tests.harness import Harness, button_data, buttons, running_bot
from tests.test_conversations import load_programme
from tests.test_ratelimit import most_in_one_second

STAFF = 900
TEXT = "Big news: the Gold incentive rises in March"
PARTNERS_PER_LEVEL = 6


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch):
    monkeypatch.setattr(broadcasts_module, "BACKOFF", (0.01, 0.02, 0.03, 0.04))
    monkeypatch.setattr(broadcasts_module, "PROGRESS_EVERY", 0.0)


@pytest.fixture
async def bot(tmp_path, rules):
    async with running_bot(tmp_path, pai_admin_ids=frozenset({STAFF})) as harness:
        await load_programme(harness, rules, tmp_path)  # ACME gold, BETA certified
        for index in range(PARTNERS_PER_LEVEL):
            await link_salesperson(harness.sessions, "ACME", 2000 + index, now=harness.clock.now())
            await link_salesperson(harness.sessions, "BETA", 3000 + index, now=harness.clock.now())
        yield harness


ACME_PEOPLE = [2000 + i for i in range(PARTNERS_PER_LEVEL)]
BETA_PEOPLE = [3000 + i for i in range(PARTNERS_PER_LEVEL)]


def copies(bot: Harness, user_id: int) -> int:
    return len([m for m in bot.api.sent_to(user_id) if TEXT in m["text"]])


async def write_and_preview(bot: Harness, audience: str) -> dict:
    staff = bot.chat(STAFF, "en")
    [ask] = await staff.send("/broadcast")
    assert "Send the message for partners" in ask["text"]
    bold = {"type": "bold", "offset": 0, "length": 8}
    [question] = await staff.send(TEXT, entities=[bold])
    preview, confirm = await staff.press(question, audience)
    assert preview["html"] == f"<b>Big news</b>{TEXT[8:]}"  # as partners will see it
    return confirm


async def send_and_wait(bot: Harness, confirm: dict) -> str:
    staff = bot.chat(STAFF, "en")
    [progress] = await staff.press(confirm, "Send to")
    await bot.wait_until(lambda: "recipients:" in progress["text"], within=20)
    return progress["text"]


async def test_staff_write_preview_and_send_and_each_partner_gets_one_copy(bot):
    confirm = await write_and_preview(bot, "All partners")
    assert "goes to 12 salespeople (All partners)" in confirm["text"]
    report = await send_and_wait(bot, confirm)
    assert "12 recipients: 12 delivered, 0 blocked the bot, 0 failed" in report
    assert [copies(bot, user) for user in ACME_PEOPLE + BETA_PEOPLE] == [1] * 12
    [sent] = [m for m in bot.api.sent_to(ACME_PEOPLE[0]) if TEXT in m["text"]]
    assert sent["html"].startswith("<b>Big news</b>")
    [listed] = await bot.chat(STAFF, "en").send("/broadcasts")
    assert "12 recipients: 12 delivered" in listed["text"]


async def test_staff_read_the_report_in_their_language_with_the_audience_in_words(bot):
    italian = bot.chat(STAFF, "it")
    await italian.send("/broadcast")
    [question] = await italian.send(TEXT)
    _preview, confirm = await italian.press(question, "Gold")
    [progress] = await italian.press(confirm, "Invia a")
    await bot.wait_until(lambda: "destinatari:" in progress["text"], within=20)
    report = progress["text"]
    assert "6 destinatari: 6 consegnati" in report
    assert "Partner Gold" in report and "level:" not in report  # the audience in words
    assert "24 nov 2026, 10:30" in report  # the programme's time (Rome), not UTC
    assert "UTC" not in report


async def test_a_broadcast_still_going_is_listed_as_sending(bot):
    confirm = await write_and_preview(bot, "All partners")
    bot.api.rate_limit = 1  # slow enough to ask while it goes
    staff = bot.chat(STAFF, "en")
    await staff.press(confirm, "Send to")
    [listed] = await staff.send("/broadcasts")
    assert "Sending:" in listed["text"]
    assert "without an answer" not in listed["text"]


@pytest.mark.parametrize(
    ("audience", "expected"),
    [("Gold", ACME_PEOPLE), ("Certified", BETA_PEOPLE), ("With open registrations", [])],
)
async def test_the_audience_decides_who_gets_it(bot, audience, expected):
    confirm = await write_and_preview(bot, audience)
    if not expected:
        assert "goes to 0 salespeople" in confirm["text"]
        return
    await send_and_wait(bot, confirm)
    for user in ACME_PEOPLE + BETA_PEOPLE:
        assert copies(bot, user) == (1 if user in expected else 0)


async def test_under_telegrams_limit_with_blocked_users_and_bad_gateways_one_copy_each(bot):
    bot.api.rate_limit = 5  # messages a second: the bot must wait, not lose or repeat
    bot.api.chat_failures[2001] = [TelegramError(403, "Forbidden: bot was blocked by the user")]
    bot.api.chat_failures[3002] = [TelegramError(502, "Bad Gateway")] * 2
    bot.api.chat_failures[3003] = [TelegramError(400, "Bad Request: chat not found")]
    confirm = await write_and_preview(bot, "All partners")
    report = await send_and_wait(bot, confirm)
    assert "12 recipients: 10 delivered, 1 blocked the bot, 1 failed" in report
    for user in ACME_PEOPLE + BETA_PEOPLE:
        assert copies(bot, user) == (0 if user in (2001, 3003) else 1)
    async with bot.sessions() as session:
        blocked = (
            (
                await session.execute(
                    select(Salesperson.telegram_user_id).where(
                        Salesperson.unreachable_at.is_not(None)
                    )
                )
            )
            .scalars()
            .all()
        )
    assert blocked == [2001]  # skipped by later broadcasts and reminders
    documents = [p for m, p in bot.api.calls if m == "sendDocument"]
    assert len(documents) == 1  # the ones not reached, as CSV


async def test_when_the_progress_message_fails_the_broadcast_goes_and_the_report_comes_anew(bot):
    confirm = await write_and_preview(bot, "Gold")
    bot.api.chat_failures[STAFF] = [TelegramError(502, "Bad Gateway")]  # the progress message
    await bot_press(bot, confirm)
    await bot.wait_until(lambda: "recipients:" in bot.api.sent_to(STAFF)[-1]["text"], within=20)
    assert "6 recipients: 6 delivered" in bot.api.sent_to(STAFF)[-1]["text"]
    assert [copies(bot, user) for user in ACME_PEOPLE] == [1] * PARTNERS_PER_LEVEL


async def test_a_broadcast_interrupted_by_a_stop_resumes_at_start_and_repeats_nobody(
    tmp_path, rules, monkeypatch
):
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    slow = {"pai_broadcast_rate": 2}  # two a second: the stop comes in the middle
    async with running_bot(
        tmp_path, database_url=url, pai_admin_ids=frozenset({STAFF}), **slow
    ) as first:
        await load_programme(first, rules, tmp_path)
        for index in range(PARTNERS_PER_LEVEL):
            await link_salesperson(first.sessions, "ACME", 2000 + index, now=first.clock.now())
        api = first.api
        confirm = await write_and_preview(first, "Gold")
        await bot_press(first, confirm)
        await first.wait_until(lambda: sum(copies(first, u) for u in ACME_PEOPLE) >= 2, within=10)
    sent_before = sum(copies(first, u) for u in ACME_PEOPLE)
    assert sent_before < PARTNERS_PER_LEVEL
    with sqlite3.connect(tmp_path / "bot.db") as db:
        statuses = [status for (status,) in db.execute("SELECT status FROM broadcastdelivery")]
    # Senders waiting for their turn at the stop gave their rows back: none is left
    # "maybe delivered", so the restart sends them all.
    assert sorted(statuses) == ["delivered"] * sent_before + ["pending"] * (
        PARTNERS_PER_LEVEL - sent_before
    )
    async with running_bot(
        tmp_path, api, database_url=url, pai_admin_ids=frozenset({STAFF})
    ) as second:
        await second.wait_until(lambda: all(copies(second, u) == 1 for u in ACME_PEOPLE), within=10)
        await second.wait_until(lambda: "recipients:" in second.api.sent_to(STAFF)[-1]["text"])
        async with second.sessions() as session:
            broadcast = (await session.execute(select(Broadcast))).scalars().one()
        assert broadcast.status == "done"
    assert [copies(second, u) for u in ACME_PEOPLE] == [1] * PARTNERS_PER_LEVEL


async def test_a_delivery_out_of_attempts_is_failed_and_the_broadcast_still_ends(tmp_path, rules):
    """A row left "retry" with every attempt used (two senders that once both held it)
    is marked failed, rather than fetched again and again forever."""
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    async with running_bot(
        tmp_path, database_url=url, pai_admin_ids=frozenset({STAFF}), pai_broadcast_rate=2
    ) as first:
        await load_programme(first, rules, tmp_path)
        for index in range(PARTNERS_PER_LEVEL):
            await link_salesperson(first.sessions, "ACME", 2000 + index, now=first.clock.now())
        api = first.api
        await bot_press(first, await write_and_preview(first, "Gold"))
        await first.wait_until(lambda: sum(copies(first, u) for u in ACME_PEOPLE) >= 1, within=10)
    with sqlite3.connect(tmp_path / "bot.db") as db:
        db.execute(
            "UPDATE broadcastdelivery SET status = 'retry', attempts = 5,"
            " next_attempt_at = '2000-01-01 00:00:00.000000' WHERE id = "
            "(SELECT max(id) FROM broadcastdelivery WHERE status = 'pending')"
        )
    async with running_bot(
        tmp_path, api, database_url=url, pai_admin_ids=frozenset({STAFF})
    ) as second:
        await second.wait_until(
            lambda: any("recipients:" in m.get("text", "") for m in second.api.sent_to(STAFF))
        )
    with sqlite3.connect(tmp_path / "bot.db") as db:
        statuses = sorted(
            status for (status,) in db.execute("SELECT status FROM broadcastdelivery")
        )
    assert statuses == ["delivered"] * (PARTNERS_PER_LEVEL - 1) + ["failed"]


async def bot_press(bot: Harness, confirm: dict) -> None:
    bot.api.user_presses(bot.chat(STAFF, "en").user, confirm, button_data(confirm, "Send to"))
    await bot.deliver()


async def test_partners_are_answered_first_while_a_broadcast_goes_out(tmp_path, rules):
    # The broadcast may use all of Telegram's budget: answers must still go first.
    rates = {"pai_telegram_rate": 4, "pai_broadcast_rate": 4}
    async with running_bot(tmp_path, pai_admin_ids=frozenset({STAFF}), **rates) as bot:
        await load_programme(bot, rules, tmp_path)
        for index in range(60):  # fifteen seconds of broadcast at 4 a second
            await link_salesperson(bot.sessions, "BETA", 5000 + index, now=bot.clock.now())
        salesperson = await link_salesperson(bot.sessions, "ACME", 11, now=bot.clock.now())
        assert salesperson.partner_code == "ACME"
        confirm = await write_and_preview(bot, "All partners")
        await bot_press(bot, confirm)
        await bot.wait_until(lambda: sum(copies(bot, 5000 + i) for i in range(60)) >= 3)
        chat = bot.chat(11, "en")
        started = time.monotonic()
        bot.api.user_sends(chat.user, "/check IT12345670587")
        await bot.post()
        waited = await bot.wait_until(
            lambda: any("new customer" in m["text"] for m in chat.messages())
        )
        assert time.monotonic() - started < 1.0
        assert waited < 1.0
        still_sending = sum(copies(bot, 5000 + i) for i in range(60))
        assert still_sending < 60  # the answer did not wait for the broadcast to end


async def test_broadcast_commands_answer_nobody_else(bot):
    from tests.test_conversations import join

    chat = await join(bot, 11, language="en")
    [answer] = await chat.send("/broadcast")
    assert "did not understand" in answer["text"]
    [answer] = await chat.send("/broadcasts")
    assert "did not understand" in answer["text"]
    async with bot.sessions() as session:
        assert (await session.execute(select(BroadcastDelivery))).first() is None
    assert buttons(answer) == []


async def test_the_not_reached_file_defuses_a_name_typed_as_a_formula(bot):
    from sqlalchemy import update

    formula = '=HYPERLINK("http://evil.example","x")'
    async with bot.sessions() as session:
        await session.execute(
            update(Salesperson)
            .where(Salesperson.telegram_user_id == 2001)
            .values(display_name=formula)
        )
        await session.commit()
    bot.api.chat_failures[2001] = [TelegramError(403, "Forbidden: bot was blocked by the user")]
    await send_and_wait(bot, await write_and_preview(bot, "Gold"))
    [(name, content)] = [f for (chat, _), f in bot.api.files.items() if chat == STAFF]
    assert name.endswith("-not-reached.csv")
    text = content.decode("utf-8")
    assert f"'{formula}" in text.replace('""', '"')
    assert f",{formula}" not in text.replace('""', '"')


@pytest.fixture(params=BACKENDS)
async def paid_bot(request, tmp_path, rules):
    """A bot that pays for broadcasts (PAI_PAID_BROADCAST=1), on each database, against a
    Bot API that allows 5 ordinary messages a second and 300 paid ones."""
    url = database_url_for(request.param, tmp_path)
    if url.startswith("postgres"):
        await reset_postgresql(url)
    api = FakeBotApi(rate_limit=5, paid_rate_limit=300)
    paid_rates = {"pai_telegram_rate": 5, "pai_paid_broadcast": True, "pai_broadcast_rate": 300}
    async with running_bot(
        tmp_path, api, database_url=url, pai_admin_ids=frozenset({STAFF}), **paid_rates
    ) as harness:
        await load_programme(harness, rules, tmp_path)
        for index in range(PAID_AUDIENCE):
            await link_salesperson(harness.sessions, "BETA", 5000 + index, now=harness.clock.now())
        yield harness


PAID_AUDIENCE = 250


async def test_a_paid_broadcast_goes_past_the_free_rate_once_each_and_answers_still_come_first(
    paid_bot, monkeypatch
):
    bot = paid_bot
    # Staff's progress message is an answer too: edited twice a second, not at every send.
    monkeypatch.setattr(broadcasts_module, "PROGRESS_EVERY", 0.5)
    sent: list[tuple[dict, float]] = []
    bot.api.after_call = lambda method, params, code, body, at: (
        sent.append((params, at)) if method == "sendMessage" and code == 200 else None
    )
    await bot_press(bot, await write_and_preview(bot, "All partners"))
    await bot.wait_until(lambda: sum(copies(bot, 5000 + i) for i in range(PAID_AUDIENCE)) >= 20)
    # A salesperson asks something in the middle of it: answered at once.
    salesperson = await link_salesperson(bot.sessions, "ACME", 11, now=bot.clock.now())
    assert salesperson.partner_code == "ACME"
    chat = bot.chat(11, "en")
    bot.api.user_sends(chat.user, "/check IT12345670587")
    await bot.post()
    await bot.wait_until(lambda: any("new customer" in m["text"] for m in chat.messages()))
    answered_during = sum(copies(bot, 5000 + i) for i in range(PAID_AUDIENCE)) < PAID_AUDIENCE

    await bot.wait_until(
        lambda: any("recipients:" in m.get("text", "") for m in bot.api.sent_to(STAFF)), within=30
    )

    assert [copies(bot, 5000 + i) for i in range(PAID_AUDIENCE)] == [1] * PAID_AUDIENCE
    to_partners = [(p, at) for p, at in sent if p["chat_id"] != STAFF]  # not staff's preview
    broadcast = [(p, at) for p, at in to_partners if TEXT[8:] in str(p.get("text", ""))]
    assert len(broadcast) == PAID_AUDIENCE
    assert all(str(p.get("allow_paid_broadcast")).lower() == "true" for p, _ in broadcast)
    paid_for = {id(p) for p, _ in broadcast}
    others = [p for p, _ in sent if id(p) not in paid_for]
    assert not any(p.get("allow_paid_broadcast") for p in others)  # answers are not paid for
    busiest = most_in_one_second([at for _, at in broadcast])
    assert 5 < busiest <= 300  # past the free limit, within the paid one
    assert bot.api.too_many == 0
    assert answered_during
    async with bot.sessions() as session:
        statuses = (await session.execute(select(BroadcastDelivery.status))).scalars().all()
    assert sorted(set(statuses)) == ["delivered"] and len(statuses) == PAID_AUDIENCE
