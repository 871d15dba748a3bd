"""Programme staff in chat: deciding on won deals, /pending, /find; nobody else can."""

from __future__ import annotations

import datetime as dt
import html
import json

import pytest
from sqlalchemy import select

from handlers import callbacks
from handlers.common import in_messages
from models import NOTE_LENGTH, Registration, StatusChange
from tests.factories import VATS
from tests.harness import START, Harness, buttons, running_bot
from tests.test_conversations import join, load_programme, register_one

STAFF = (900, 901)


@pytest.fixture
async def bot(tmp_path, rules):
    async with running_bot(tmp_path, pai_admin_ids=frozenset(STAFF)) as harness:
        await load_programme(harness, rules, tmp_path)
        yield harness


async def won_deal(bot: Harness, vat: str = VATS[1]):
    """A salesperson registers a deal and reports it won from /status."""
    chat = await join(bot, 11, language="en")
    await register_one(chat, vat)
    reference = (await registrations(bot))[-1].reference
    [status] = await chat.send("/status")
    await chat.press(status, reference)
    await chat.press(status, "Won")
    return chat, reference


async def registrations(bot: Harness) -> list[Registration]:
    async with bot.sessions() as session:
        return list(
            (await session.execute(select(Registration).order_by(Registration.id))).scalars()
        )


def notice(bot: Harness, staff_id: int) -> dict:
    [message] = [m for m in bot.api.sent_to(staff_id) if "waiting for your decision" in m["text"]]
    return message


async def test_every_staff_member_is_asked_and_the_first_decision_counts(bot):
    chat, reference = await won_deal(bot)
    first, second = bot.chat(STAFF[0], "en"), bot.chat(STAFF[1], "en")
    asked = notice(bot, STAFF[0])
    assert reference in asked["text"]
    assert "ACME (Acme Informatica & Figli)" in asked["text"]
    assert [label for label, _ in buttons(asked)] == ["✅ Approve", "✖ Reject"]
    late = notice(bot, STAFF[1])
    late_approve = dict(buttons(late))["✅ Approve"]
    await first.press(asked, "Approve")
    assert "Approved by Giulia" in asked["text"]
    assert "Approved by Giulia" in late["text"]  # the other staff member's message too
    assert not buttons(late)
    [told] = [m for m in chat.messages() if "approved by the programme staff" in m["text"]]
    assert "€500.00, to be paid" in told["text"]
    # Pressed before the edit showed: said at once, by name, and nothing else is sent.
    assert await second.press_data(late, late_approve) == []
    assert f"{reference} is approved already, by Giulia" in second.popups()[-1]
    assert "nothing changed" in second.popups()[-1]
    async with bot.sessions() as session:
        moves = (
            await session.execute(
                select(StatusChange.to_status, StatusChange.changed_by).order_by(StatusChange.id)
            )
        ).all()
    assert moves[-2:] == [("won", "telegram:11"), ("approved", "staff:900")]


async def test_a_rejection_asks_for_the_reason_and_the_partner_reads_it(bot):
    chat, reference = await won_deal(bot)
    staff = bot.chat(STAFF[0], "en")
    asked = notice(bot, STAFF[0])
    [why] = await staff.press(asked, "Reject")
    assert f"Why is {reference} rejected?" in why["text"]
    [kept] = await staff.send("/cancel")
    assert "still waits for a decision" in kept["text"]
    [why] = await staff.press(asked, "Reject")
    [done] = await staff.send("Customer bought before the registration")
    assert "Rejected by Giulia: Customer bought before the registration" in done["text"]
    [told] = [m for m in chat.messages() if "rejected by the programme staff" in m["text"]]
    assert "Reason: Customer bought before the registration" in told["text"]
    [registration] = await registrations(bot)
    assert registration.status == "rejected"
    assert registration.protection_key is None  # the customer is free again


async def test_a_rejection_left_waiting_for_hours_takes_no_later_text_as_its_reason(bot):
    await won_deal(bot)
    staff = bot.chat(STAFF[0], "en")
    await staff.press(notice(bot, STAFF[0]), "Reject")
    bot.clock.advance(dt.timedelta(hours=3))
    await staff.send("Customer bought before the registration")
    [registration] = await registrations(bot)
    assert registration.status == "won"  # nothing decided: the text was not a reason
    assert await bot.resources.conversations.load(STAFF[0], "rejection") is None


async def test_a_reason_too_long_is_explained_and_asked_again(bot):
    _chat, reference = await won_deal(bot)
    staff = bot.chat(STAFF[0], "en")
    await staff.press(notice(bot, STAFF[0]), "Reject")
    [again] = await staff.send("x" * (NOTE_LENGTH + 1))
    assert f"That is too long: {NOTE_LENGTH} characters at most." in again["text"]
    assert f"Why is {reference} rejected?" in again["text"]
    [registration] = await registrations(bot)
    assert registration.status == "won"  # nothing decided yet
    [done] = await staff.send("Duplicate of an older deal")
    assert "Rejected by Giulia: Duplicate of an older deal" in done["text"]


async def test_staff_read_what_the_bot_starts_in_their_own_telegram_language(bot):
    italian, english = bot.chat(STAFF[0], "it"), bot.chat(STAFF[1], "en")
    await italian.send("/pending")  # the bot learns each one's language as they write
    await english.send("/pending")
    _chat, reference = await won_deal(bot)
    [asked_in_italian] = [m for m in italian.messages() if reference in m["text"]]
    assert "in attesa della tua decisione" in asked_in_italian["text"]
    assert [label for label, _ in buttons(asked_in_italian)] == ["✅ Approva", "✖ Respingi"]
    asked_in_english = notice(bot, STAFF[1])
    await english.press(asked_in_english, "Approve")
    assert "Approvata da" in asked_in_italian["text"]  # edited, each in its reader's language
    assert "Approved by" in asked_in_english["text"]


async def test_pending_lists_what_waits_with_its_buttons(bot):
    staff = bot.chat(STAFF[0], "en")
    [none] = await staff.send("/pending")
    assert "Nothing waits for a decision" in none["text"]
    _chat, reference = await won_deal(bot)
    head, deal = await staff.send("/pending")
    assert "1 item waits for a decision" in head["text"]
    assert reference in deal["text"]
    await staff.press(deal, "Approve")
    [none] = await staff.send("/pending")
    assert "Nothing waits for a decision" in none["text"]


async def test_the_stats_chart_counts_in_whole_registrations_in_the_readers_language(bot):
    from bot.i18n import Texts
    from bot.reports import chart
    from bot.services.stats import programme_numbers

    await won_deal(bot)  # one registration: an axis left alone would tick at 0.2, 0.4…
    async with bot.sessions() as session:
        numbers = await programme_numbers(session=session, rules=bot.resources.rules, now=START)
    figure = chart(numbers, bot.resources.rules.levels, Texts("it"))
    axes = figure.axes[0]
    assert all(float(tick).is_integer() for tick in axes.get_yticks())
    assert axes.get_ylabel() == "registrazioni"


async def test_staff_help_lists_staff_commands_one_line_each(bot):
    [help_] = await bot.chat(STAFF[0], "en").send("/help")
    for command in ("/pending", "/find", "/stats", "/broadcast", "/broadcasts"):
        assert command in help_["text"]
    assert "invite" not in help_["text"]  # not the stranger's answer
    [italian] = await bot.chat(STAFF[1], "it").send("/help")
    assert "Fai parte dello staff" in italian["text"]


async def test_approving_from_pending_turns_every_copy_into_the_outcome_at_once(bot):
    await won_deal(bot)
    first, second = bot.chat(STAFF[0], "en"), bot.chat(STAFF[1], "en")
    _head, listed = await first.send("/pending")
    _head, other = await second.send("/pending")
    asked = notice(bot, STAFF[1])
    assert await first.press(listed, "Approve") == []  # the press's answer is the edit
    for copy in (listed, other, asked):  # the pressed one, another /pending, the notice
        assert "Approved by Giulia" in copy["text"]
        assert not buttons(copy)


async def test_reject_on_a_decided_deal_says_who_decided_and_asks_no_reason(bot):
    _chat, reference = await won_deal(bot)
    first, second = bot.chat(STAFF[0], "en"), bot.chat(STAFF[1], "en")
    _head, listed = await second.send("/pending")
    stale_reject = dict(buttons(listed))["✖ Reject"]
    await first.press(notice(bot, STAFF[0]), "Approve")
    assert await second.press_data(listed, stale_reject) == []  # no "Why is … rejected?"
    assert f"{reference} is approved already, by Giulia" in second.popups()[-1]
    assert await bot.resources.conversations.load(STAFF[1], "rejection") is None
    [registration] = await registrations(bot)
    assert registration.status == "approved"


async def test_find_names_the_holder_and_shows_the_history(bot):
    _chat, reference = await won_deal(bot)
    [found] = await bot.chat(STAFF[0], "en").send(f"/find {VATS[1]}")
    text = found["text"]
    assert "Bianchi SpA" in text
    assert f"Protected for ACME (Acme Informatica & Figli) by {reference}" in text
    assert "open · Giulia" in text and "won · Giulia" in text  # by name, never an id
    assert "telegram:" not in text


async def test_find_with_a_long_history_answers_in_several_whole_messages(bot):
    await won_deal(bot)
    staff = bot.chat(STAFF[0], "en")
    [deal] = await registrations(bot)
    async with bot.sessions() as session:
        for n in range(60):  # notes pile up on a deal staff argue about
            session.add(
                StatusChange(
                    registration_id=deal.id,
                    from_status="won",
                    to_status="won",
                    changed_by="staff:900",
                    note=f"<checked> call number {n} " + "x" * 80,
                )
            )
        await session.commit()
    answers = await staff.send(f"/find {VATS[1]}")
    assert len(answers) >= 2
    assert all(len(a["text"]) <= 4096 for a in answers)
    text = "\n".join(a["text"] for a in answers)
    assert "Bianchi SpA" in answers[0]["text"]
    assert all(f"<checked> call number {n} " in text for n in range(60))  # escaped, none lost


def test_long_text_is_split_between_lines_only():
    lines = [f"<b>{n}</b> " + "y" * 90 for n in range(100)]
    messages = in_messages(lines, limit=1000)
    assert all(len(m) <= 1000 for m in messages)
    assert "\n".join(messages).split("\n") == lines
    huge = "<b>Note</b> " + "&amp; <i>x</i> " * 400  # longer than a message on its own
    pieces = in_messages(["first", huge, "last"], limit=1000)
    assert all(len(m) <= 1000 for m in pieces)
    assert pieces[0].startswith("first\n") and pieces[-1].endswith("\nlast")
    sent = "".join(pieces).replace("\n", "")
    assert "<" not in sent  # no tag cut in half: the long line goes as plain text
    assert html.unescape(sent) == "first" + "Note " + "& x " * 400 + "last"


@pytest.mark.parametrize("command", ["/pending", f"/find {VATS[1]}"])
async def test_staff_commands_answer_nobody_else_and_reveal_nothing(bot, command):
    await won_deal(bot)
    [linked] = await bot.chat(11, "en").send(command)
    assert "did not understand" in linked["text"]
    [stranger] = await bot.chat(555, "en").send(command)
    assert "invite" in stranger["text"]
    for answer in (linked, stranger):
        assert "ACME" not in answer["text"]
        assert "PAI-" not in answer["text"]


async def test_a_forged_approve_from_a_partner_changes_nothing(bot):
    chat, reference = await won_deal(bot)
    [status] = await chat.send("/status")
    await chat.press_data(status, callbacks.Approve(reference).data)
    assert "expired" in chat.popups()[-1]
    [registration] = await registrations(bot)
    assert registration.status == "won"


def sent_json(value):
    """A parameter as PTB sent it: objects arrive JSON-encoded or already decoded."""
    return json.loads(value) if isinstance(value, str) else value


async def test_staff_have_their_own_command_menu(bot):
    menus = [params for method, params in bot.api.calls if method == "setMyCommands"]
    scoped = [p for p in menus if "scope" in p]
    assert {sent_json(p["scope"])["chat_id"] for p in scoped} == set(STAFF)
    for menu in menus:
        commands = json.dumps(sent_json(menu["commands"]))
        assert ("pending" in commands) == ("scope" in menu)  # partners never see them


async def test_the_partner_sees_an_approved_deal_turn_paid_in_status(bot, tmp_path):
    from bot.services.payouts import mark_paid
    from tests.factories import write_csv

    chat, reference = await won_deal(bot)
    await bot.chat(STAFF[0], "en").press(notice(bot, STAFF[0]), "Approve")
    [status] = await chat.send("/status")
    assert "Approved: €500.00" in status["text"]
    path = write_csv(tmp_path / "pay.csv", f"reference\n{reference}\n")
    async with bot.sessions() as session:
        await mark_paid(session=session, path=path, now=bot.clock.now(), paid_on=bot.today())
    [status] = await chat.send("/status")
    assert "Paid: €500.00" in status["text"]
    assert "Approved: €0.00" in status["text"]
    await chat.press(status, reference)
    assert "paid" in status["text"]


async def test_stats_gives_the_programme_numbers_and_a_chart(bot):
    chat, _reference = await won_deal(bot)  # one registration, won
    await chat.send(f"/check {VATS[2]}")  # bought today: not new
    await chat.send(f"/check {VATS[0]}")  # new
    staff = bot.chat(STAFF[0], "en")
    [numbers] = [m for m in await staff.send("/stats") if m["text"]]
    text = numbers["text"]
    assert "Active partners (registered in the last 365 days) / all: Gold 1/1, Certified 0/1" in (
        text
    )
    assert "Registrations: 1 this month · 1 this quarter · 1 this year" in text
    assert "Deals won with new customers this year: 1" in text
    assert "Incentives expected €500.00 · approved €0.00 · paid €0.00" in text
    assert "ACME (Acme Informatica & Figli): 1" in text
    # Verdicts: the one before registering, and the two checks (one of three not new).
    assert "Verdicts this year: 3, new customers: 67%" in text
    photos = [params for method, params in bot.api.calls if method == "sendPhoto"]
    assert len(photos) == 1
    [answer] = await chat.send("/stats")
    assert "did not understand" in answer["text"]
