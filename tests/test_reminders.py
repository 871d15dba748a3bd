"""Reminders through weeks of programme time: the clock moves, the tick runs, users read."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from collections.abc import AsyncIterator
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from bot.app.demo.telegram import TelegramError
from bot.domain.outbox import ReminderKind, ReminderStatus
from bot.jobs.reminders import run_tick
from bot.services.accounts import unlink_salesperson
from bot.services.reminders import (
    Recipient,
    _nudge_candidates,
    claim_reminders,
    due_reminders,
    nudge_due,
)
from models import Partner, Registration, Reminder, Salesperson, StatusChange
from tests.conftest import BACKENDS, database_url_for, reset_postgresql
from tests.factories import VATS, add_partners
from tests.harness import Harness, buttons, running_bot
from tests.test_conversations import join, load_programme, register_one

ROME = ZoneInfo("Europe/Rome")


NOW_MINUS_YEAR = dt.datetime(2025, 3, 1, 9, tzinfo=dt.UTC)


def rome(year: int, month: int, day: int, hour: int = 10, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=ROME)


@pytest.fixture(params=BACKENDS)
async def bot(request, tmp_path, rules) -> AsyncIterator[Harness]:
    url = database_url_for(request.param, tmp_path)
    if request.param == "postgresql":
        await reset_postgresql(url)
    async with running_bot(tmp_path, database_url=url) as harness:
        await load_programme(harness, rules, tmp_path)
        yield harness


async def tick_at(bot: Harness, moment: dt.datetime):
    bot.clock.set(moment)
    return await run_tick(bot.app)


def nudges(chat) -> list[dict]:
    return [m for m in chat.messages() if "has registered no deal" in m["text"]]


async def reminders(bot: Harness) -> list[Reminder]:
    async with bot.sessions() as session:
        return list((await session.execute(select(Reminder).order_by(Reminder.id))).scalars())


# --- nudges ------------------------------------------------------------------------


async def test_a_nudge_comes_after_inactivity_days_and_again_after_as_many_more(bot):
    chat = await join(bot, 11, language="en")  # Tuesday 24 November 2026
    day = rome(2026, 11, 25)
    sent_on = []
    while day < rome(2027, 1, 12):
        await tick_at(bot, day)
        await tick_at(bot, day + dt.timedelta(hours=3))  # a second tick the same day
        if len(nudges(chat)) > len(sent_on):
            sent_on.append(day.date())
        day += dt.timedelta(days=1)
    # 21 days after joining, then 21 more; both Tuesdays.
    assert sent_on == [dt.date(2026, 12, 15), dt.date(2027, 1, 5)]
    first = nudges(chat)[0]
    assert "Acme Informatica & Figli has registered no deal in 21 days" in first["text"]
    assert (
        "Loyalty: 0 registrations in the last 365 days: ×1.00; 3 more reach ×1.10"
        in (first["text"])
    )
    assert [label for label, _ in buttons(first)] == ["📝 Register a deal"]


async def test_a_registration_starts_the_count_again(bot):
    chat = await join(bot, 11, language="en")
    await tick_at(bot, rome(2026, 12, 8))
    await register_one(chat, VATS[0])  # 8 December
    await tick_at(bot, rome(2026, 12, 15))  # 21 days after joining, 7 after the deal
    assert nudges(chat) == []
    await tick_at(bot, rome(2026, 12, 29))  # 21 days after the registration
    [nudge] = nudges(chat)
    assert "1 registration in the last 365 days: ×1.00; 2 more reach ×1.10" in nudge["text"]


async def test_the_nudges_button_starts_a_registration(bot):
    chat = await join(bot, 11, language="en")
    await tick_at(bot, rome(2026, 12, 15))
    [nudge] = nudges(chat)
    [question] = await chat.press(nudge, "Register a deal")
    assert "Send the VAT number" in question["text"]
    [verdict] = await chat.send(VATS[1])  # with the next question
    assert "new customer" in verdict["text"]
    assert "deal value" in verdict["text"]


async def test_nothing_is_sent_in_quiet_hours_or_at_weekends_but_at_the_next_allowed_moment(
    bot,
):
    chat = await join(bot, 11, language="en")
    bot.clock.set(rome(2026, 11, 28, 11))  # a Saturday: due 21 days later, a Saturday too
    other = await join(bot, 12, language="en")
    await tick_at(bot, rome(2026, 12, 15, 20))  # the first one's day, but evening: quiet
    assert nudges(chat) == []
    await tick_at(bot, rome(2026, 12, 16, 8, 55))
    assert nudges(chat) == []
    await tick_at(bot, rome(2026, 12, 16, 9, 0))  # quiet hours over: it goes now
    assert len(nudges(chat)) == 1
    for moment in (rome(2026, 12, 19, 10), rome(2026, 12, 20, 15), rome(2026, 12, 21, 8)):
        await tick_at(bot, moment)  # Saturday, Sunday, Monday before nine
    assert nudges(other) == []
    await tick_at(bot, rome(2026, 12, 21, 9, 5))
    assert len(nudges(other)) == 1
    assert len(nudges(chat)) == 1


async def test_reminders_turned_off_reach_nobody_and_on_again_they_resume(bot):
    chat = await join(bot, 11, language="en")
    [settings] = await chat.send("/settings")
    await chat.press(settings, "Turn reminders off")
    await tick_at(bot, rome(2026, 12, 15))
    assert nudges(chat) == []
    await chat.press(settings, "Turn reminders on")
    await tick_at(bot, rome(2026, 12, 16))
    assert len(nudges(chat)) == 1


async def test_every_linked_salesperson_gets_the_nudge_in_their_own_language(bot):
    english = await join(bot, 11, language="en")
    italian = await join(bot, 12, language="it")
    await tick_at(bot, rome(2026, 12, 15))
    assert len(nudges(english)) == 1
    [nudge] = [
        m for m in italian.messages() if "non registra nuove opportunità da 21 giorni" in m["text"]
    ]
    assert "Fedeltà: 0 registrazioni" in nudge["text"]


async def test_nothing_is_sent_twice_across_a_restart_between_ticks(tmp_path, rules):
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    async with running_bot(tmp_path, database_url=url) as first:
        await load_programme(first, rules, tmp_path)
        chat = await join(first, 11, language="en")
        await tick_at(first, rome(2026, 12, 15))
        assert len(nudges(chat)) == 1
        api = first.api
    async with running_bot(tmp_path, api, database_url=url) as second:
        report = await tick_at(second, rome(2026, 12, 15, 10, 5))
        assert report.sent == 0
        assert len(nudges(chat)) == 1


# --- follow-ups, expiry -------------------------------------------------------------


async def test_a_follow_up_comes_on_the_close_date_and_before_protection_ends(bot):
    chat = await join(bot, 11, language="en")
    await register_one(chat, VATS[1])  # 24 Nov, close in 45 days (8 Jan), protected to 22 Feb
    [registration] = await registrations(bot)
    followups = []
    for moment in (rome(2027, 1, 7), rome(2027, 1, 8), rome(2027, 1, 11), rome(2027, 2, 8)):
        await tick_at(bot, moment)
        followups = [m for m in chat.messages() if registration.reference in m["text"]]
    close, protection = [m for m in followups if "How" in m["text"]]
    assert "You expected to close it by 8 Jan 2027" in close["text"]
    assert "Its protection ends on 22 Feb 2027" in protection["text"]
    assert [label for label, _ in buttons(protection)] == [
        "🏆 Won",
        "Lost",
        "Still open",
        "⏳ Ask for more time",  # the last 14 days of protection: more time can be asked
    ]


async def test_follow_up_buttons_update_the_registration_in_the_same_message(bot):
    chat = await join(bot, 11, language="en")
    for vat in (VATS[0], VATS[1], VATS[3]):  # VATS[2] bought today: not new
        await register_one(chat, vat)
    await tick_at(bot, rome(2027, 2, 8))  # 14 days before protection ends
    won, lost, still = [m for m in chat.messages() if "protection ends on" in m["text"]]
    await chat.press(won, "Won")
    assert "marked won" in won["text"]
    assert "Send the order or the invoice" in won["text"]  # proof, asked in the same message
    assert [label for label, _ in buttons(won)] == ["Skip"]
    await chat.press(lost, "Lost")
    assert "Why was" in lost["text"]
    await chat.press(lost, "competitor")
    assert "marked lost (Went to a competitor)" in lost["text"]
    await chat.press(still, "Still open")
    assert "still open, protected until 22 Feb 2027" in still["text"]
    async with bot.sessions() as session:
        rows = (await session.execute(select(Registration).order_by(Registration.id))).scalars()
        statuses = [r.status for r in rows]
        notes = (
            (
                await session.execute(
                    select(StatusChange.note).where(StatusChange.to_status == "lost")
                )
            )
            .scalars()
            .all()
        )
    assert statuses == ["won", "lost", "qualified"]
    assert notes == ["reason: competitor"]


async def test_a_stale_or_repeated_follow_up_press_changes_nothing_and_says_so(bot):
    chat = await join(bot, 11, language="en")
    await register_one(chat, VATS[1])
    await tick_at(bot, rome(2027, 2, 8))
    [followup] = [m for m in chat.messages() if "protection ends on" in m["text"]]
    won_data = dict(buttons(followup))["🏆 Won"]
    lost_data = dict(buttons(followup))["Lost"]
    await chat.press_data(followup, won_data)
    await chat.press_data(followup, won_data)  # a second tap, from a slow phone
    assert "is won already: nothing changed" in followup["text"]
    await chat.press_data(followup, lost_data.replace(":l:", ":r:") + ":price")
    assert "is won already" in followup["text"]
    async with bot.sessions() as session:
        moves = (await session.execute(select(StatusChange.to_status))).scalars().all()
    assert moves == ["qualified", "won"]


async def test_a_follow_up_goes_to_colleagues_when_the_salesperson_left(bot):
    chat = await join(bot, 11, language="en")
    colleague = await join(bot, 12, language="en")
    await register_one(chat, VATS[1])
    async with bot.sessions() as session:
        await unlink_salesperson(session=session, telegram_user_id=11, now=bot.clock.now())
    await tick_at(bot, rome(2027, 2, 8))
    assert [m for m in colleague.messages() if "protection ends on" in m["text"]]
    assert not [m for m in chat.messages() if "protection ends on" in m["text"]]


async def test_protection_ending_without_an_outcome_expires_it_and_says_so_once(bot):
    chat = await join(bot, 11, language="en")
    await register_one(chat, VATS[1])
    [settings] = await chat.send("/settings")
    for moment in (rome(2027, 2, 22, 18), rome(2027, 2, 23, 7), rome(2027, 2, 23, 10)):
        await tick_at(bot, moment)
    [registration] = await registrations(bot)
    assert registration.status == "expired"  # by the night's tick, before anyone looked
    notices = [m for m in chat.messages() if "expired" in m["text"]]
    assert len(notices) == 1
    assert "ended on 22 Feb 2027" in notices[0]["text"]
    for moment in (rome(2027, 2, 24), rome(2027, 2, 25)):
        await tick_at(bot, moment)
    assert len([m for m in chat.messages() if "expired" in m["text"]]) == 1
    async with bot.sessions() as session:
        moves = (
            await session.execute(
                select(StatusChange.to_status, StatusChange.changed_by).order_by(StatusChange.id)
            )
        ).all()
    assert moves == [("qualified", "telegram:11"), ("expired", "system")]
    assert settings is not None


async def test_expiry_notices_respect_the_reminders_setting(bot):
    chat = await join(bot, 11, language="en")
    await register_one(chat, VATS[1])
    [settings] = await chat.send("/settings")
    await chat.press(settings, "Turn reminders off")
    await tick_at(bot, rome(2027, 2, 24))
    [registration] = await registrations(bot)
    assert registration.status == "expired"
    assert not [m for m in chat.messages() if "expired" in m["text"]]


# --- Telegram's bad days -----------------------------------------------------------


async def test_a_reminder_that_failed_on_the_network_is_sent_at_the_next_tick_once(bot):
    chat = await join(bot, 11, language="en")
    bot.api.chat_failures[11] = [TelegramError(502, "Bad Gateway")]
    report = await tick_at(bot, rome(2026, 12, 15))
    assert (report.sent, report.retry) == (0, 1)
    assert nudges(chat) == []
    report = await tick_at(bot, rome(2026, 12, 15, 10, 5))
    assert (report.sent, report.retry) == (1, 0)
    await tick_at(bot, rome(2026, 12, 15, 10, 10))
    assert len(nudges(chat)) == 1


async def test_someone_who_blocked_the_bot_is_skipped_until_they_talk_to_it_again(bot):
    chat = await join(bot, 11, language="en")
    bot.api.chat_failures[11] = [TelegramError(403, "Forbidden: bot was blocked by the user")]
    report = await tick_at(bot, rome(2026, 12, 15))
    assert report.blocked == 1
    async with bot.sessions() as session:
        person = (await session.execute(select(Salesperson))).scalars().one()
    assert person.unreachable_at is not None
    await tick_at(bot, rome(2027, 1, 5))  # the next cycle: skipped
    assert nudges(chat) == []
    await chat.send("/help")  # back
    await tick_at(bot, rome(2027, 1, 26))
    assert len(nudges(chat)) == 1


async def test_status_shows_the_loyalty_standing_at_the_top(bot):
    chat = await join(bot, 11, language="en")
    for vat in (VATS[0], VATS[1], VATS[3]):  # VATS[2] bought today: not new
        await register_one(chat, vat)
    [status] = await chat.send("/status")
    standing = status["text"].splitlines()[1]
    assert standing.startswith("Loyalty: 3 registrations in the last 365 days: ×1.10")
    assert "1 more before 25 Nov 2027 keeps you there; 3 more reach ×1.25" in standing


async def registrations(bot: Harness) -> list[Registration]:
    async with bot.sessions() as session:
        return list(
            (await session.execute(select(Registration).order_by(Registration.id))).scalars()
        )


async def test_two_ticks_at_once_send_each_reminder_once(bot):
    import asyncio

    chats = [await join(bot, 11 + i, language="en") for i in range(4)]
    bot.clock.set(rome(2026, 12, 15))
    reports = await asyncio.gather(run_tick(bot.app), run_tick(bot.app))
    assert sum(report.sent for report in reports) == 4
    assert [len(nudges(chat)) for chat in chats] == [1, 1, 1, 1]


async def test_a_crash_between_the_send_and_its_record_never_sends_it_again(bot, monkeypatch):
    import bot.jobs.reminders as reminders_module

    chat = await join(bot, 11, language="en")

    real_advance = reminders_module.advance_reminders

    async def crash(**kwargs):
        if any(result.outcome == "sent" for result in kwargs["done"]):
            raise RuntimeError("the process died here, after the send")
        return await real_advance(**kwargs)

    monkeypatch.setattr(reminders_module, "advance_reminders", crash)
    with pytest.raises(RuntimeError):
        await tick_at(bot, rome(2026, 12, 15))
    assert len(nudges(chat)) == 1  # it went out; its record did not
    monkeypatch.undo()
    report = await tick_at(bot, rome(2026, 12, 15, 10, 5))
    assert report.sent == 0
    assert len(nudges(chat)) == 1
    [reminder] = await reminders(bot)
    assert reminder.status == "sending"  # claimed, maybe sent: never sent again


async def test_a_nudge_waiting_for_a_retry_is_dropped_once_the_partner_registered(bot):
    chat = await join(bot, 11, language="en")
    bot.api.chat_failures[11] = [TelegramError(502, "Bad Gateway")]
    assert (await tick_at(bot, rome(2026, 12, 15))).retry == 1
    await register_one(chat, VATS[0])
    report = await tick_at(bot, rome(2026, 12, 15, 10, 5))
    assert (report.sent, report.skipped) == (0, 1)
    assert nudges(chat) == []


# --- what the review found --------------------------------------------------------


async def test_an_unexpected_telegram_error_on_one_reminder_does_not_stop_the_others(bot):
    chats = [await join(bot, 11 + i, language="en") for i in range(3)]
    bot.api.chat_failures[11] = [TelegramError(404, "Not Found")]
    report = await tick_at(bot, rome(2026, 12, 15))
    assert (report.sent, report.failed) == (2, 1)
    assert [len(nudges(chat)) for chat in chats] == [0, 1, 1]


async def test_reminders_claimed_but_never_tried_go_at_the_next_tick(bot, monkeypatch):
    import bot.jobs.reminders as reminders_module

    chats = [await join(bot, 11 + i, language="en") for i in range(3)]
    real_send = reminders_module.send_reminder

    async def broken_first(bot_, rules, item):
        if item.due.recipient.telegram_user_id == 11:
            raise RuntimeError("a bug while rendering")
        await real_send(bot_, rules, item)

    monkeypatch.setattr(reminders_module, "send_reminder", broken_first)
    with pytest.raises(RuntimeError):
        await tick_at(bot, rome(2026, 12, 15))
    monkeypatch.undo()
    assert [len(nudges(chat)) for chat in chats] == [0, 0, 0]
    report = await tick_at(bot, rome(2026, 12, 15, 10, 5))
    # The first was handed over when the bug struck (maybe delivered): never again.
    assert report.sent == 2
    assert [len(nudges(chat)) for chat in chats] == [0, 1, 1]


async def test_a_nudge_sent_late_is_followed_by_the_next_only_a_full_period_later(bot):
    chat = await join(bot, 11, language="en")
    [settings] = await chat.send("/settings")
    await chat.press(settings, "Turn reminders off")
    await tick_at(bot, rome(2026, 12, 15))
    await chat.press(settings, "Turn reminders on")
    await tick_at(bot, rome(2027, 1, 4))  # overdue since 15 December: goes now
    assert len(nudges(chat)) == 1
    for day in range(5, 25):
        await tick_at(bot, rome(2027, 1, day, 11))
    assert len(nudges(chat)) == 1  # not on 5 January, the old schedule's day
    await tick_at(bot, rome(2027, 1, 25))
    assert len(nudges(chat)) == 2


async def test_a_send_that_may_have_reached_telegram_is_never_sent_again(bot):
    from bot.app.demo.telegram import Timeout

    await join(bot, 11, language="en")
    bot.api.chat_failures[11] = [Timeout()]  # the answer never came: delivered or not?
    await tick_at(bot, rome(2026, 12, 15))
    await tick_at(bot, rome(2026, 12, 15, 10, 5))
    sends = [
        params
        for method, params in bot.api.calls
        if method == "sendMessage" and "no deal" in str(params.get("text"))
    ]
    assert len(sends) == 1


async def test_a_colleague_gets_the_follow_up_when_the_salesperson_blocked_the_bot(bot):
    chat = await join(bot, 11, language="en")
    colleague = await join(bot, 12, language="en")
    await register_one(chat, VATS[1])
    bot.api.chat_failures[11] = [TelegramError(403, "Forbidden: bot was blocked by the user")]
    await tick_at(bot, rome(2027, 2, 8))  # the nudge finds the bot blocked; the rest skipped
    assert not [m for m in chat.messages() if "protection ends on" in m["text"]]
    await tick_at(bot, rome(2027, 2, 8, 10, 5))
    assert len([m for m in colleague.messages() if "protection ends on" in m["text"]]) == 1


async def test_follow_ups_come_on_their_days_and_not_before(bot):
    chat = await join(bot, 11, language="en")
    await register_one(chat, VATS[1])  # close expected 8 Jan 2027, protected to 22 Feb
    [registration] = await registrations(bot)

    def followups() -> int:
        return len([m for m in chat.messages() if registration.reference in m["text"]])

    before = followups()  # the confirmation names it too
    expected = {
        rome(2027, 1, 7): 0,
        rome(2027, 1, 8): 1,  # the close date
        rome(2027, 2, 5): 1,
        rome(2027, 2, 8): 2,  # 14 days before 22 February
        rome(2027, 2, 9): 2,
    }
    for moment, count in expected.items():
        await tick_at(bot, moment)
        assert followups() - before == count, moment


async def test_still_open_is_kept_in_the_history(bot):
    chat = await join(bot, 11, language="en")
    await register_one(chat, VATS[1])
    await tick_at(bot, rome(2027, 2, 8))
    [followup] = [m for m in chat.messages() if "protection ends on" in m["text"]]
    await chat.press(followup, "Still open")
    async with bot.sessions() as session:
        notes = (
            await session.execute(
                select(
                    StatusChange.from_status, StatusChange.to_status, StatusChange.note
                ).order_by(StatusChange.id)
            )
        ).all()
    assert notes[-1] == ("qualified", "qualified", "still open")


async def test_a_late_lost_press_says_the_deal_moved_on_without_asking_why(bot):
    chat = await join(bot, 11, language="en")
    await register_one(chat, VATS[1])
    await tick_at(bot, rome(2027, 2, 8))
    [followup] = [m for m in chat.messages() if "protection ends on" in m["text"]]
    lost = dict(buttons(followup))["Lost"]
    await chat.press(followup, "Won")
    await chat.press_data(followup, lost)
    assert "is won already: nothing changed" in followup["text"]
    assert "Why was" not in followup["text"]


async def test_the_tick_forgets_conversations_left_for_a_day(bot):
    """A half-typed registration holds a VAT number: it does not stay in the database."""
    chat = await join(bot, 31, language="en")
    await chat.send(f"/new {VATS[5]}")
    assert await bot.resources.conversations.load(31, "registration") is not None
    await tick_at(bot, bot.clock.now() + dt.timedelta(hours=23))
    assert await bot.resources.conversations.load(31, "registration") is not None
    await tick_at(bot, bot.clock.now() + dt.timedelta(hours=2))
    assert await bot.resources.conversations.load(31, "registration") is None


# --- who is due a nudge: the database's cut against everyone read -------------------

# Far ahead of UTC, far behind, and Havana, whose clocks jump at midnight (8 March 2026).
ZONES = ("Europe/Rome", "Pacific/Kiritimati", "Pacific/Pago_Pago", "America/Havana")
NUDGE_STATUSES = [s.value for s in ReminderStatus]


async def nudges_reading_everyone(session, rules, today: dt.date) -> set[tuple]:
    """Every reachable salesperson read, with all registrations and all nudges, and
    nudge_due asked for each: what the database's cut must never lose."""
    every = dt.timedelta(days=rules.reminders.inactivity_days)
    people = (await session.execute(select(Salesperson))).scalars().all()
    last_registered: dict[int, dt.date] = {}
    for partner_id, day in (
        await session.execute(select(Registration.partner_id, Registration.registered_on))
    ).all():
        last_registered[partner_id] = max(day, last_registered.get(partner_id, day))
    last_nudge: dict[tuple[int, int], Reminder] = {}
    for nudge in (
        await session.execute(select(Reminder).where(Reminder.kind == ReminderKind.NUDGE))
    ).scalars():
        key = (nudge.salesperson_id, nudge.partner_id)
        if key not in last_nudge or last_nudge[key].id < nudge.id:
            last_nudge[key] = nudge
    due = set()
    for person in people:
        if person.unlinked_at or person.unreachable_at or not person.reminders_enabled:
            continue
        last = last_nudge.get((person.id, person.partner_id))
        found = nudge_due(
            Recipient.of(person, rules.timezone),
            last_registered.get(person.partner_id),
            None
            if last is None
            else (last.created_at.astimezone(rules.timezone).date(), last.status),
            today,
            every,
        )
        if found is not None:
            due.add((found.recipient.salesperson_id, found.period, found.due_on))
    return due


def random_moments(rng: random.Random, start: dt.datetime, zone: ZoneInfo):
    """Moments over 80 days, half of them within three hours of a local midnight, where
    a day's cut in UTC could go wrong."""

    def moment() -> dt.datetime:
        day = start.date() + dt.timedelta(days=rng.randrange(80))
        if rng.random() < 0.5:
            midnight = dt.datetime.combine(day, dt.time(), zone)
            return midnight + dt.timedelta(minutes=rng.randrange(-180, 180))
        return dt.datetime.combine(day, dt.time(), dt.UTC) + dt.timedelta(
            minutes=rng.randrange(24 * 60)
        )

    return moment


def random_programme(rng: random.Random, moment, partners: list[int]) -> list:
    """Salespeople joining over 80 days, registrations, and nudges in every status, some
    about a partner the person has left."""
    rows: list = []

    people = [
        Salesperson(
            telegram_user_id=9_000 + n,
            partner_id=rng.choice(partners),
            linked_at=moment(),
            reminders_enabled=rng.random() > 0.1,
            unlinked_at=moment() if rng.random() < 0.1 else None,
            unreachable_at=moment() if rng.random() < 0.1 else None,
        )
        for n in range(80)
    ]
    rows += people
    for n in range(30):
        day = moment().date()
        rows.append(
            Registration(
                reference=f"R{n:05d}",
                partner_id=rng.choice(partners),
                vat=f"IT{n:011d}",
                customer_name="Rossi S.r.l.",
                registered_on=day,
                protected_until=day + dt.timedelta(days=90),
                status="won",
                deal_value=Decimal("100.00"),
                product="x",
                expected_close=day,
                incentive_amount=Decimal("1.00"),
                currency="EUR",
                incentive_version=day,
                level="gold",
            )
        )
    return rows


def random_nudges(rng: random.Random, moment, people: list[Salesperson], partners):
    at = [moment() for _ in people]
    return [
        Reminder(
            kind=ReminderKind.NUDGE,
            subject=f"partner:{person.partner_id}",
            period=f"p{n}",
            salesperson_id=person.id,
            partner_id=person.partner_id if rng.random() > 0.1 else rng.choice(partners),
            due_on=when.date(),
            status=rng.choice(NUDGE_STATUSES),
            claim="t",
            created_at=when,
        )
        for n, (person, when) in enumerate(zip(people * 3, at * 3, strict=True))
        if rng.random() < 0.6
    ]


@pytest.mark.parametrize("zone", ZONES)
async def test_the_databases_cut_loses_no_nudge_that_reading_everyone_finds(
    sessions, rules, tmp_path, zone
):
    rules = dataclasses.replace(
        rules,
        timezone=ZoneInfo(zone),
        reminders=dataclasses.replace(rules.reminders, inactivity_days=7),
    )
    await add_partners(sessions, rules, tmp_path, "P1,Uno,gold\nP2,Due,gold\nP3,Tre,gold\n")
    rng = random.Random(zone)
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    async with sessions() as session:
        partners = list((await session.execute(select(Partner.id))).scalars())
        moment = random_moments(rng, start, rules.timezone)
        programme = random_programme(rng, moment, partners)
        session.add_all(programme)
        await session.commit()
        people = [row for row in programme if isinstance(row, Salesperson)]
        session.add_all(random_nudges(rng, moment, people, partners))
        await session.commit()
    found_any = 0
    for days in range(0, 100, 2):
        for hour in (0, 11, 23):
            now = start + dt.timedelta(days=days, hours=hour)
            today = rules.today(now)
            async with sessions() as session:
                due = await due_reminders(session=session, rules=rules, now=now)
                expected = await nudges_reading_everyone(session, rules, today)
            got = {(d.recipient.salesperson_id, d.period, d.due_on) for d in due}
            assert got == expected, now
            found_any += len(got)
    assert found_any > 100  # the cases are not all empty


async def test_after_everyone_was_nudged_the_tick_reads_nobody(sessions, rules, tmp_path):
    await add_partners(sessions, rules, tmp_path, "P1,Uno,gold\n")
    now = dt.datetime(2026, 3, 1, 9, tzinfo=dt.UTC)
    async with sessions() as session:
        partner = (await session.execute(select(Partner.id))).scalar_one()
        people = [
            Salesperson(telegram_user_id=9_000 + n, partner_id=partner, linked_at=NOW_MINUS_YEAR)
            for n in range(20)
        ]
        session.add_all(people)
        await session.commit()
        due = await due_reminders(session=session, rules=rules, now=now)
        assert len(due) == 20
        claimed = await claim_reminders(session=session, due=due, token="t", now=now)
        await session.execute(
            update(Reminder).where(Reminder.id.in_(claimed)).values(status=ReminderStatus.SENT)
        )
        await session.commit()
    for later in (dt.timedelta(0), dt.timedelta(days=20)):
        async with sessions() as session:
            every = dt.timedelta(days=rules.reminders.inactivity_days)
            today = rules.today(now + later)
            assert await _nudge_candidates(session, rules, today, every) == []
    async with sessions() as session:
        due = await due_reminders(session=session, rules=rules, now=now + dt.timedelta(days=21))
    assert len(due) == 20  # and a full period later, everyone again
