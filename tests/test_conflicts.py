"""Conflicts settled in chat (PRODUCT.md §5): a refusal contested and decided with both
sides on record, more time asked, proof of a won deal, staff's deadlines and digest."""

from __future__ import annotations

import asyncio
import datetime as dt
from importlib import resources

import pytest
from sqlalchemy import select

from bot.app.cli import main
from bot.domain.lifecycle import Status
from bot.jobs.reminders import run_tick
from handlers import callbacks
from models import Attachment, Dispute, Registration, StaffDigest, StaffItem, StatusChange
from tests.conftest import BACKENDS, database_url_for, reset_postgresql
from tests.factories import VATS
from tests.harness import Harness, buttons, running_bot
from tests.test_conversations import join, load_programme, register_one

STAFF = (900, 901)
ESCALATION = 950
PHOTO = [{"file_id": "AgACphoto-evidence", "file_unique_id": "u1", "width": 800, "height": 600}]
PDF = {
    "file_id": "BQACorder-pdf",
    "file_unique_id": "u2",
    "file_name": "order.pdf",
    "mime_type": "application/pdf",
    "file_size": 120_000,
}


@pytest.fixture(params=BACKENDS)
async def bot(request, tmp_path, rules):
    """The bot with the seed programme, on SQLite and on PostgreSQL: the first decision
    counts, the digest goes once, on both."""
    url = database_url_for(request.param, tmp_path)
    if request.param == "postgresql":
        await reset_postgresql(url)
    async with running_bot(
        tmp_path,
        database_url=url,
        pai_admin_ids=frozenset(STAFF),
        pai_escalation_ids=frozenset({ESCALATION}),
    ) as harness:
        await load_programme(harness, rules, tmp_path)
        yield harness


async def rows(bot: Harness, table):  # type: ignore[no-untyped-def]
    async with bot.sessions() as session:
        return list((await session.execute(select(table))).scalars())


async def registration(bot: Harness, reference: str) -> Registration:
    async with bot.sessions() as session:
        return (
            await session.execute(select(Registration).where(Registration.reference == reference))
        ).scalar_one()


def staff_copy(bot: Harness, staff_id: int, marker: str) -> dict:
    return [m for m in bot.api.sent_to(staff_id) if marker in m["text"]][-1]


async def contest(chat, vat: str, *, reason_button: str | None = None, typed: str | None = None):
    """From the refusal of /new VAT to the summary, with a photo as evidence."""
    [refusal] = await chat.send(f"/new {vat}")
    assert [label for label, _ in buttons(refusal)] == ["⚖️ Contest"]
    [why] = await chat.press(refusal, "Contest")
    assert "Why should this customer count for you?" in why["text"]
    if reason_button:
        await chat.press(why, reason_button)
    else:
        await chat.send(typed or "We met them at a fair in March")
    [kept] = await chat.send(photo=PHOTO)
    assert "Evidence received." in kept["text"]
    if "company" in kept["text"]:
        await chat.send("Cliente Srl")
    await chat.send("2500")
    await chat.send("Server")
    [summary] = await chat.send("2027-03-01")
    return refusal, summary


async def protected_by_beta(bot: Harness, vat: str = VATS[1]) -> tuple[object, str]:
    beta = await join(bot, 21, partner="BETA", language="en")
    await register_one(beta, vat)
    [held] = [r for r in await rows(bot, Registration) if r.vat == vat]
    return beta, held.reference


# --- contest a protection ---------------------------------------------------------


async def test_a_contest_of_a_protection_reaches_staff_with_both_sides_and_a_grant_settles_it(bot):
    beta, held = await protected_by_beta(bot)
    acme = await join(bot, 11, language="en")
    _refusal, summary = await contest(acme, VATS[1], reason_button="We contacted them first")
    assert "Why: We contacted them first" in summary["text"]
    assert "Evidence: 1 file" in summary["text"]
    await acme.press(summary, "Send to staff")  # the summary turns into the answer
    assert "Contest sent" in summary["text"]
    assert "Staff will answer by" in summary["text"]
    [disputed] = [r for r in await rows(bot, Registration) if r.status == "disputed"]
    assert disputed.protection_key is None  # protects nothing while it waits
    [dispute] = await rows(bot, Dispute)
    assert dispute.reason == "We contacted them first"
    [evidence] = await rows(bot, Attachment)
    assert (evidence.purpose, evidence.kind, evidence.file_id) == (
        "evidence",
        "photo",
        "AgACphoto-evidence",
    )

    # Staff see both sides in one message, and the evidence after it.
    asked = staff_copy(bot, STAFF[0], "Contest PAI-")
    assert "From: ACME (Acme Informatica & Figli) · Gold" in asked["text"]
    assert f"by {held}" in asked["text"] and "BETA (Beta Srl)" in asked["text"]
    assert "Why: We contacted them first" in asked["text"]
    assert [label for label, _ in buttons(asked)] == ["✅ Grant", "✖ Refuse"]
    shown = [p for m, p in bot.api.calls if m == "sendPhoto" and p["chat_id"] == STAFF[0]]
    assert shown[-1]["photo"] == "AgACphoto-evidence"

    other = staff_copy(bot, STAFF[1], "Contest PAI-")
    await bot.chat(STAFF[0], "en").press(asked, "Grant")
    assert "Granted by" in asked["text"]
    assert "Granted by" in other["text"] and not buttons(other)  # the other copy too

    granted = await registration(bot, disputed.reference)
    assert granted.status == "qualified"
    assert granted.protection_key == VATS[1]
    assert granted.protected_until == bot.today() + dt.timedelta(days=90)
    assert granted.incentive_amount == disputed.incentive_amount  # quoted as on the day
    assert (await registration(bot, held)).status == "revoked"
    [told] = [m for m in acme.messages() if "was granted" in m["text"]]
    assert disputed.reference in told["text"]
    [revoked] = [m for m in beta.messages() if "ended the protection" in m["text"]]
    # Partners never learn each other's names: not the contester's, in any message.
    for message in beta.messages():
        assert "ACME" not in message["text"] and "Acme" not in message["text"]
    for message in acme.messages():
        assert "BETA" not in message["text"] and "Beta Srl" not in message["text"]
    assert held in revoked["text"]


async def test_a_refused_contest_tells_the_partner_why_and_counts_for_nothing(bot):
    await protected_by_beta(bot)
    acme = await join(bot, 11, language="en")
    _refusal, summary = await contest(acme, VATS[1], typed="Our customer since 2019")
    await acme.press(summary, "Send to staff")
    staff = bot.chat(STAFF[0], "en")
    asked = staff_copy(bot, STAFF[0], "Contest PAI-")
    [why] = await staff.press(asked, "Refuse")
    assert "Why is PAI-" in why["text"]
    [done] = await staff.send("BETA registered it with a signed offer")
    assert "Refused by" in done["text"]
    [refused] = [r for r in await rows(bot, Registration) if r.partner_id != 2]
    assert refused.status == "refused"
    assert refused.dispute_key is None
    [told] = [m for m in acme.messages() if "was not granted" in m["text"]]
    assert "Reason: BETA registered it with a signed offer" in told["text"]
    # Its holder keeps the customer.
    assert [r.status for r in await rows(bot, Registration) if r.partner_id == 2] == ["qualified"]


async def test_a_contest_of_a_not_new_customer_shows_staff_the_purchase(bot):
    acme = await join(bot, 11, language="en")
    _refusal, summary = await contest(acme, VATS[2], reason_button="The past purchase isn't theirs")
    await acme.press(summary, "Send to staff")
    asked = staff_copy(bot, STAFF[0], "Contest PAI-")
    assert "not new: last purchase on" in asked["text"]
    assert "Verdi Srl" in asked["text"]
    await bot.chat(STAFF[0], "en").press(asked, "Grant")
    [granted] = await rows(bot, Registration)
    assert (granted.status, granted.protection_key) == ("qualified", VATS[2])


async def test_nobody_contests_their_own_partners_protection_nor_twice_nor_too_late(bot):
    acme = await join(bot, 11, language="en")
    await register_one(acme, VATS[1])
    colleague = await join(bot, 12, language="en")
    [refusal] = await colleague.send(f"/new {VATS[1]}")
    assert not buttons(refusal)  # "already yours": nothing to contest
    # A forged Contest for one's own protection is refused in one sentence.
    forged = callbacks.Contest(VATS[1], bot.today()).data
    [said] = await colleague.press_data(refusal, forged)
    assert "Your own company protects" in said["text"]

    beta = await join(bot, 21, partner="BETA", language="en")
    _refusal, summary = await contest(beta, VATS[1])
    await beta.press(summary, "Send to staff")
    [again] = await beta.send(f"/new {VATS[1]}")
    [said] = await beta.press(again, "Contest")
    assert "You already contest" in said["text"]

    old = callbacks.Contest(VATS[1], bot.today() - dt.timedelta(days=8)).data
    assert await beta.press_data(again, old) == []
    assert "can no longer be contested" in beta.popups()[-1]
    assert len([r for r in await rows(bot, Registration) if r.status == "disputed"]) == 1


async def test_forged_decision_buttons_change_nothing_and_a_partner_cannot_decide(bot):
    await protected_by_beta(bot)
    acme = await join(bot, 11, language="en")
    _refusal, summary = await contest(acme, VATS[1])
    await acme.press(summary, "Send to staff")
    [item] = await rows(bot, StaffItem)
    # The partner presses staff's button with the real item number: nothing moves.
    await acme.press_data(summary, callbacks.Grant(item.id).data)
    staff = bot.chat(STAFF[0], "en")
    assert await staff.press_data(summary, callbacks.Grant(999_999).data) == []
    assert [r.status for r in await rows(bot, Registration)] == ["qualified", "disputed"]
    [pending] = await acme.send("/pending")
    assert "Contest" not in pending["text"]  # a partner's /pending is an unknown command


async def test_two_staff_granting_and_refusing_at_once_decide_once(bot):
    await protected_by_beta(bot)
    acme = await join(bot, 11, language="en")
    _refusal, summary = await contest(acme, VATS[1])
    await acme.press(summary, "Send to staff")
    first = staff_copy(bot, STAFF[0], "Contest PAI-")
    second = staff_copy(bot, STAFF[1], "Contest PAI-")
    grant = dict(buttons(second))["✅ Grant"]
    await bot.chat(STAFF[0], "en").press(first, "Grant")
    assert await bot.chat(STAFF[1], "en").press_data(second, grant) == []
    assert "granted already" in bot.chat(STAFF[1], "en").popups()[-1]
    [item] = await rows(bot, StaffItem)
    assert (item.outcome, item.decided_by) == ("granted", "staff:900")


# --- more time --------------------------------------------------------------------


async def test_more_time_is_offered_near_the_end_and_a_pending_request_stops_the_expiry(bot):
    acme = await join(bot, 11, language="en")
    await register_one(acme, VATS[1])
    [held] = await rows(bot, Registration)
    [status] = await acme.send("/status")
    await acme.press(status, held.reference)
    assert "Ask for more time" not in [label for label, _ in buttons(status)]
    bot.clock.advance(dt.timedelta(days=80))  # ten days before protection ends
    [status] = await acme.send("/status")
    await acme.press(status, held.reference)
    assert "⏳ Ask for more time" in [label for label, _ in buttons(status)]
    [why] = await acme.press(status, "Ask for more time")
    assert "Why do you need more time" in why["text"]
    [sent] = await acme.send("The customer's board meets next month")
    assert "Staff will answer by" in sent["text"] or "answer by" in sent["text"]
    bot.clock.advance(dt.timedelta(days=15))  # past the end: no expiry while it waits
    await run_tick(bot.app)
    assert (await registration(bot, held.reference)).status == "qualified"
    beta = await join(bot, 21, partner="BETA", language="en")
    [refusal] = await beta.send(f"/new {VATS[1]}")
    assert "already registered by another partner" in refusal["text"]
    asked = staff_copy(bot, STAFF[0], "More time asked")
    await bot.chat(STAFF[0], "en").press(asked, "Grant")
    extended = await registration(bot, held.reference)
    assert extended.protected_until == held.protected_until + dt.timedelta(days=30)
    assert not extended.awaiting_extension and extended.extensions == 1
    assert any("now protected until" in m["text"] for m in acme.messages())
    # The cap: one request per registration, then the button is gone.
    [status] = await acme.send("/status")
    await acme.press(status, held.reference)
    assert "⏳ Ask for more time" not in [label for label, _ in buttons(status)]
    await acme.press_data(status, callbacks.AskMoreTime(held.reference).data)
    assert "limit is reached" in acme.popups()[-1]


async def test_more_time_outside_the_window_is_refused_in_one_sentence(bot):
    acme = await join(bot, 11, language="en")
    await register_one(acme, VATS[1])
    [held] = await rows(bot, Registration)
    [status] = await acme.send("/status")
    await acme.press_data(status, callbacks.AskMoreTime(held.reference).data)
    assert "only in the last 14 days" in acme.popups()[-1]
    assert (await registration(bot, held.reference)).extensions == 0


# --- proof ------------------------------------------------------------------------


async def test_proof_after_won_is_kept_and_shown_to_staff(bot):
    acme = await join(bot, 11, language="en")
    await register_one(acme, VATS[1])
    [held] = await rows(bot, Registration)
    [status] = await acme.send("/status")
    await acme.press(status, held.reference)
    [asked] = await acme.press(status, "Won")
    assert "Send the order or the invoice" in asked["text"]
    assert [label for label, _ in buttons(asked)] == ["Skip"]
    [big] = await acme.send(document={**PDF, "file_size": 21 * 1024 * 1024})
    assert "larger than 20 MB" in big["text"]
    [odd] = await acme.send(document={**PDF, "mime_type": "application/x-msdownload"})
    assert "photos and documents" in odd["text"]
    [kept] = await acme.send(document=PDF)
    assert "Proof received" in kept["text"]
    [proof] = await rows(bot, Attachment)
    assert (proof.purpose, proof.file_id, proof.file_name) == (
        "proof",
        "BQACorder-pdf",
        "order.pdf",
    )
    shown = [p for m, p in bot.api.calls if m == "sendDocument" and p["chat_id"] == STAFF[0]]
    assert shown[-1]["document"] == "BQACorder-pdf"
    [item] = await rows(bot, StaffItem)
    assert item.kind == "won"


async def test_with_proof_required_a_won_deal_reaches_staff_only_with_its_proof(tmp_path, rules):
    text = resources.files("bot.domain").joinpath("rules.toml").read_text(encoding="utf-8")
    strict = tmp_path / "strict.toml"
    strict.write_text(text.replace("require_proof = false", "require_proof = true"))
    async with running_bot(tmp_path, pai_rules_file=strict, pai_admin_ids=frozenset(STAFF)) as bot:
        await load_programme(bot, rules, tmp_path)
        acme = await join(bot, 11, language="en")
        await register_one(acme, VATS[1])
        [held] = await rows(bot, Registration)
        [status] = await acme.send("/status")
        await acme.press(status, held.reference)
        [asked] = await acme.press(status, "Won")
        assert "the staff will see the deal once it arrives" in asked["text"]
        assert not buttons(asked)
        assert await rows(bot, StaffItem) == []
        assert not [
            m for m in bot.api.sent_to(STAFF[0]) if "waiting for your decision" in m["text"]
        ]
        [kept] = await acme.send(photo=PHOTO)
        assert "Staff will answer by" in kept["text"]
        [item] = await rows(bot, StaffItem)
        assert item.kind == "won"
        assert [m for m in bot.api.sent_to(STAFF[0]) if "waiting for your decision" in m["text"]]


# --- deadlines, the digest, /pending, /stats ----------------------------------------


async def test_pending_lists_overdue_first_and_one_digest_a_day_goes_to_staff_and_escalation(bot):
    await protected_by_beta(bot)
    acme = await join(bot, 11, language="en")
    _refusal, summary = await contest(acme, VATS[1])
    await acme.press(summary, "Send to staff")
    bot.clock.advance(dt.timedelta(hours=30))
    await register_one(acme, VATS[3])
    [status] = await acme.send("/status")
    [newest] = [r for r in await rows(bot, Registration) if r.vat == VATS[3]]
    await acme.press(status, newest.reference)
    await acme.press(status, "Won")
    bot.clock.advance(dt.timedelta(hours=20))  # the contest is 50 h old: overdue
    staff = bot.chat(STAFF[0], "en")
    answers = [m for m in await staff.send("/pending") if m["text"] and "📎" not in m["text"]]
    assert len(answers) == 3, [m["text"][:60] for m in answers]
    [head, first, second] = answers
    assert "2 items wait for a decision" in head["text"]
    assert "Contest PAI-" in first["text"] and "Overdue by 2 h" in first["text"]
    assert "Due by" in second["text"]

    # The first tick in allowed hours sends one digest to each; the next, none.
    moment = bot.clock.now()
    while not (9 <= moment.astimezone(bot.resources.rules.timezone).hour < 18) or (
        moment.astimezone(bot.resources.rules.timezone).weekday() >= 5
    ):
        bot.clock.advance(dt.timedelta(hours=1))
        moment = bot.clock.now()
    await run_tick(bot.app)
    await run_tick(bot.app)
    digests = [m for m in bot.api.sent_to(STAFF[0]) if "are overdue" in m["text"]]
    assert len(digests) == 1
    assert len([m for m in bot.api.sent_to(ESCALATION) if "are overdue" in m["text"]]) == 1
    assert len(await rows(bot, StaffDigest)) == 3

    # /stats: the median time to a decision and how many are overdue now.
    [stats] = (await staff.send("/stats"))[:1]
    assert "overdue now: " in stats["text"]


async def test_no_digest_when_nothing_is_overdue(bot):
    await run_tick(bot.app)
    assert await rows(bot, StaffDigest) == []


async def test_history_records_the_contest_and_its_decision(bot):
    await protected_by_beta(bot)
    acme = await join(bot, 11, language="en")
    _refusal, summary = await contest(acme, VATS[1], typed="Met them first")
    await acme.press(summary, "Send to staff")
    await bot.chat(STAFF[0], "en").press(staff_copy(bot, STAFF[0], "Contest PAI-"), "Grant")
    [disputed] = [r for r in await rows(bot, Registration) if r.partner_id != 2]
    async with bot.sessions() as session:
        moves = (
            await session.execute(
                select(StatusChange.from_status, StatusChange.to_status, StatusChange.note)
                .where(StatusChange.registration_id == disputed.id)
                .order_by(StatusChange.id)
            )
        ).all()
    assert moves == [(None, "disputed", "Met them first"), ("disputed", "qualified", None)]
    assert Status.DISPUTED.value == "disputed"


async def test_pai_bot_history_prints_the_contest_and_who_decided_it(bot, capsys, monkeypatch):
    await protected_by_beta(bot)
    acme = await join(bot, 11, language="en")
    _refusal, summary = await contest(acme, VATS[1], typed="Met them first")
    await acme.press(summary, "Send to staff")
    await bot.chat(STAFF[0], "en").press(staff_copy(bot, STAFF[0], "Contest PAI-"), "Grant")
    [contested] = [r for r in await rows(bot, Registration) if r.partner_id != 2]
    monkeypatch.setenv("DATABASE_URL", bot.resources.settings.database_url)
    # The shell's logging setup would outlive the test's captured stderr: not here.
    monkeypatch.setattr("bot.logs.configure_logging", lambda *_: None)
    # The CLI runs its own event loop, as in a shell: in a thread beside the bot's.
    code = await asyncio.to_thread(main, ["history", contested.reference.lower()])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[0].startswith(f"{contested.reference}  ACME (") and VATS[1] in out[0]
    assert out[1].startswith("now qualified; registered ")
    # Who, by the name Telegram gave (the fake names every user Giulia).
    assert out[2].endswith("  disputed  by Giulia: Met them first")
    assert out[3].endswith("  disputed -> qualified  by Giulia")
    assert await asyncio.to_thread(main, ["history", "PAI-NOSUCH"]) == 1
    assert "no registration has this reference" in capsys.readouterr().err
