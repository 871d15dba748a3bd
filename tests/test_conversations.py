"""Conversations end to end: updates in through a fake Bot API, what the user sees out."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from decimal import Decimal

import pytest
from babel.dates import format_date
from sqlalchemy import select

from bot.app.demo.telegram import TelegramError, Timeout
from bot.services.accounts import create_invite
from bot.services.imports import import_partners, import_purchases
from bot.telegram import ratelimit
from handlers import callbacks
from models import Customer, Registration, Salesperson, StatusChange
from tests.factories import VATS, italian_vat, write_csv
from tests.harness import START, Chat, Harness, button_data, buttons, running_bot

TODAY = START.date()  # 24 Nov 2026, the harness clock's day in Rome too
SOON = TODAY + dt.timedelta(days=45)


async def load_programme(bot: Harness, rules, tmp_path) -> None:
    partners = write_csv(
        tmp_path / "partners.csv",
        "code,company,level\nACME,Acme Informatica & Figli,gold\nBETA,Beta Srl,certified\n",
    )
    purchases = write_csv(
        tmp_path / "purchases.csv",
        "vat,customer_name,purchase_date\n"
        f"{VATS[1]},Bianchi SpA,2020-01-10\n"  # known, bought long ago: qualifies
        f"{VATS[2]},Verdi Srl,{TODAY.isoformat()}\n",  # bought today: not new
    )
    async with bot.sessions() as session:
        await import_partners(session=session, rules=rules, path=partners, now=START)
        await import_purchases(session=session, rules=rules, path=purchases, today=TODAY)


@pytest.fixture
async def bot(tmp_path, rules):
    async with running_bot(tmp_path) as harness:
        await load_programme(harness, rules, tmp_path)
        yield harness


async def join(bot: Harness, user_id: int, partner: str = "ACME", language: str = "it") -> Chat:
    async with bot.sessions() as session:
        invite = await create_invite(session=session, partner_code=partner, now=bot.clock.now())
    chat = bot.chat(user_id, language)
    await chat.send(f"/start {invite.token}")
    return chat


async def reach_summary(chat, vat=VATS[1], *, value="100", company="Cliente Srl"):
    """Answer every question of /new for `vat`; return the summary with its buttons."""
    await chat.send(f"/new {vat}")
    if "company" in chat.last["text"] or "ragione" in chat.last["text"]:
        await chat.send(company)
    await chat.send(value)
    await chat.send("Mouse")
    [summary] = await chat.send(SOON.isoformat())
    return summary


async def register_one(chat, vat, value="1000", company="Cliente Srl"):
    """Register a deal for `vat`; return the summary, turned into the confirmation."""
    summary = await reach_summary(chat, vat, value=value, company=company)
    await chat.press(summary, "Confirm")
    return summary


async def registrations(bot: Harness) -> list[Registration]:
    async with bot.sessions() as session:
        return list(
            (await session.execute(select(Registration).order_by(Registration.id))).scalars()
        )


async def reference_of(bot: Harness, vat: str) -> str:
    return next(r.reference for r in await registrations(bot) if r.vat == vat)


# --- joining -------------------------------------------------------------------


async def test_invite_link_links_the_account_and_welcomes_by_company(bot):
    async with bot.sessions() as session:
        invite = await create_invite(session=session, partner_code="ACME", now=bot.clock.now())
    chat = bot.chat(11, "it")
    [welcome] = await chat.send(f"/start {invite.token}")
    assert "Acme Informatica & Figli" in welcome["text"]
    assert "/new" in welcome["text"]
    async with bot.sessions() as session:
        linked = (await session.execute(select(Salesperson))).scalars().one()
    assert (linked.telegram_user_id, linked.telegram_language, linked.display_name) == (
        11,
        "it",
        "Giulia",
    )


async def test_the_telegram_language_is_kept_as_it_changes_for_messages_the_bot_starts(bot):
    chat = await join(bot, 11, language="it")
    chat.user.language_code = "de"
    [answer] = await chat.send("/help")
    assert "new customers" in answer["text"]  # German Telegram: the help text in English
    async with bot.sessions() as session:
        linked = (await session.execute(select(Salesperson))).scalars().one()
    assert linked.telegram_language == "de"


async def test_used_invite_links_nobody_else(bot):
    async with bot.sessions() as session:
        invite = await create_invite(session=session, partner_code="ACME", now=bot.clock.now())
    await bot.chat(11).send(f"/start {invite.token}")
    [refusal] = await bot.chat(12, "en").send(f"/start {invite.token}")
    assert "already used or it expired" in refusal["text"]
    [answer] = await bot.chat(12, "en").send("/new")
    assert "invite link" in answer["text"]


@pytest.mark.parametrize(
    "text", ["/start", "/new", "/status", "/check IT12345670587", "/help", "ciao"]
)
async def test_unlinked_user_only_learns_how_to_join(bot, text):
    [answer] = await bot.chat(99, "en").send(text)
    assert "invite" in answer["text"]
    assert not buttons(answer)
    assert await registrations(bot) == []


async def test_opening_another_partners_invite_asks_before_moving(bot):
    chat = await join(bot, 11, "ACME", "en")
    await register_one(chat, VATS[0])
    async with bot.sessions() as session:
        invite = await create_invite(session=session, partner_code="BETA", now=bot.clock.now())
    [question] = await chat.send(f"/start {invite.token}")
    assert "You are linked to Acme Informatica & Figli. Move to Beta Srl?" in question["text"]
    assert "registrations stay with Acme" in question["text"]
    [stay] = await chat.press(question, "Stay")
    assert "nothing changed" in stay["text"]
    [status] = await chat.send("/status")
    assert "Acme Informatica" in status["text"]
    [question] = await chat.send(f"/start {invite.token}")  # the invite was not used
    [welcome] = await chat.press(question, "Move to Beta")
    assert "Beta Srl" in welcome["text"]
    [status] = await chat.send("/status")
    assert "no registrations" in status["text"]
    [acme_deal] = await registrations(bot)
    assert acme_deal.partner_id == 1  # it stayed with ACME


async def test_opening_an_invite_of_ones_own_partner_changes_nothing(bot):
    chat = await join(bot, 11, "ACME", "en")
    async with bot.sessions() as session:
        invite = await create_invite(session=session, partner_code="ACME", now=bot.clock.now())
    [answer] = await chat.send(f"/start {invite.token}")
    assert "already set up for" in answer["text"]
    [welcome] = await bot.chat(12, "en").send(f"/start {invite.token}")  # it was not used
    assert "Acme Informatica" in welcome["text"]


# --- /new ----------------------------------------------------------------------


@dataclass(frozen=True)
class Tap:
    """A press of the button labelled `label` on the bot's latest message."""

    label: str


async def messages_per_step(chat: Chat, steps: list[str | Tap]) -> list[list[str]]:
    """Take the steps; return, for each, the bot's calls that sent or edited a message."""
    spent = []
    for step in steps:
        before = len(chat.message_calls())
        if isinstance(step, Tap):
            await chat.press(chat.last, step.label)
        else:
            await chat.send(step)
        spent.append(chat.message_calls()[before:])
    return spent


# Every message sent or edited spends Telegram's send budget (and a new one buzzes a
# phone): a registration answers each step of the user with one, never two.
REGISTRATIONS = {
    "unknown customer": ["/new", VATS[0], "Rossi Srl", "1000", "Mouse", Tap("30"), Tap("Conf")],
    "known customer": ["/new", VATS[1], "1000", "Mouse", Tap("60 days"), Tap("Confirm")],
    "VAT with /new, date typed": [f"/new {VATS[1]}", "1000", "Mouse", "2027-01-08", Tap("Conf")],
    "amount read two ways": [
        *("/new", VATS[0], "Rossi Srl", "12.500"),
        *(Tap("€12,500.00"), "Mouse", Tap("90 days"), Tap("Confirm")),
    ],
    "wrong answers": [
        *("/new", "12345670588", VATS[1], "abc", "1000", "Mouse", "yesterday"),
        *(Tap("30 days"), "yes", Tap("Confirm")),
    ],
}


@pytest.mark.parametrize("steps", REGISTRATIONS.values(), ids=REGISTRATIONS.keys())
async def test_every_step_of_a_registration_gets_exactly_one_message(bot, steps):
    chat = await join(bot, 11, language="en")
    spent = await messages_per_step(chat, steps)
    assert [len(calls) for calls in spent] == [1] * len(steps), spent
    assert "Registered" in chat.last["text"]
    assert len(await registrations(bot)) == 1


async def test_registering_an_unknown_customer_takes_seven_messages_for_its_seven_steps(bot):
    chat = await join(bot, 11, language="en")
    spent = await messages_per_step(chat, REGISTRATIONS["unknown customer"])
    # Five questions typed answers bring, then two taps that change the tapped message.
    assert spent == [["sendMessage"]] * 5 + [["editMessageText"]] * 2
    assert sum(len(calls) for calls in spent) == 7


async def test_registering_an_unknown_customer_end_to_end_in_italian(bot):
    chat = await join(bot, 11)
    [question] = await chat.send("/new")
    assert "partita IVA" in question["text"]
    [verdict] = await chat.send("123 456 705 87")  # the verdict and the next question
    assert "cliente nuovo" in verdict["text"]
    assert "500,00\xa0€" in verdict["text"]
    assert "Livello Gold" in verdict["text"]
    assert "Fedeltà: 0 registrazioni negli ultimi 365 giorni: ×1,00" in verdict["text"]
    assert "ne mancano 3 per arrivare a ×1,10" in verdict["text"]
    assert verdict["text"].endswith(
        "Qual è la ragione sociale del cliente?\nPer esempio Rossi Impianti S.r.l."
    )
    [ask_value] = await chat.send("Rossi Impianti S.r.l.")
    assert "euro" in ask_value["text"]
    [which] = await chat.send("12.500")  # twelve thousand five hundred, or twelve fifty?
    assert [label for label, _ in buttons(which)] == ["12.500,00\xa0€", "12,50\xa0€"]
    assert await chat.press(which, "12.500,00") == []  # the same message asks the next
    assert which["text"].startswith(
        "Valore della trattativa: 12.500,00\xa0€ ✓\n\nCosa stai vendendo?"
    )
    assert not buttons(which)
    [ask_close] = await chat.send("Gestionale, 10 utenti")
    assert [label for label, _ in buttons(ask_close)] == [
        "Tra 30 giorni",
        "Tra 60 giorni",
        "Tra 90 giorni",
    ]
    [summary] = await chat.send(f"{SOON:%d/%m/%Y}")
    assert "12.500,00\xa0€" in summary["text"]
    assert format_date(SOON, "medium", locale="it_IT") in summary["text"]
    assert await chat.press(summary, "Conferma") == []
    done = summary  # turned into the confirmation where it was tapped
    [registration] = await registrations(bot)
    assert registration.reference in done["text"]
    assert "Il cliente Rossi Impianti S.r.l. è protetto per te" in done["text"]
    # What the summary said stays in view: the confirmation took its place.
    assert (
        "Valore della trattativa: 12.500,00\xa0€\nCosa vendi: Gestionale, 10 utenti" in done["text"]
    )
    assert f"Chiusura prevista: {format_date(SOON, 'medium', locale='it_IT')}" in done["text"]
    assert not buttons(summary)  # Confirm cannot be pressed twice
    assert registration.customer_name == "Rossi Impianti S.r.l."
    assert registration.deal_value == Decimal("12500.00")
    assert registration.product == "Gestionale, 10 utenti"
    assert registration.expected_close == SOON
    assert registration.incentive_amount == Decimal("500.00")
    assert registration.protected_until.strftime("%d") in done["text"]
    async with bot.sessions() as session:
        # The name the salesperson typed stays with the registration.
        assert await session.get(Customer, VATS[0]) is None


async def test_known_customer_skips_the_company_question_and_buttons_pick_the_date(bot):
    chat = await join(bot, 11, language="en")
    await chat.send("/new")
    [verdict] = await chat.send(VATS[1])
    assert "Bianchi SpA" in verdict["text"]
    assert "company name" not in verdict["text"]
    assert "Estimated deal value in euro?" in verdict["text"]
    await chat.send("12,500.50")
    [ask_close] = await chat.send("Backup appliance")
    assert await chat.press(ask_close, "60 days") == []
    summary = ask_close  # the question became the summary, with the date chosen
    assert summary["text"].startswith("Please check and confirm")
    assert f"Expected close: {TODAY + dt.timedelta(days=60):%d %b %Y}" in summary["text"]
    assert "€12,500.50" in summary["text"]
    await chat.press(summary, "Confirm")
    assert "Registered" in summary["text"]
    [registration] = await registrations(bot)
    assert registration.expected_close == TODAY + dt.timedelta(days=60)
    assert registration.customer_name == "Bianchi SpA"


@pytest.mark.parametrize(
    ("language", "typed", "labels"),
    [
        ("en", "12.500", ["€12,500.00", "€12.50"]),
        ("en", "1,500", ["€1,500.00", "€1.50"]),
        ("it", "12,500", ["12.500,00\xa0€", "12,50\xa0€"]),
        ("it", "€ 12.500", ["12.500,00\xa0€", "12,50\xa0€"]),
        ("en", "12.500 €", ["€12,500.00", "€12.50"]),
    ],
)
async def test_an_amount_that_reads_two_ways_is_asked_back_never_guessed(
    bot, language, typed, labels
):
    chat = await join(bot, 11, language=language)
    await chat.send(f"/new {VATS[1]}")
    [which] = await chat.send(typed)
    assert [label for label, _ in buttons(which)] == labels
    assert await chat.press(which, labels[1]) == []
    assert labels[1] in which["text"]  # what was chosen, above the next question
    await chat.send("Mouse")
    [summary] = await chat.send(SOON.isoformat())
    await chat.press(summary, "Conf")
    [registration] = await registrations(bot)
    assert registration.deal_value * 1000 == Decimal(
        labels[0].strip("€\xa0").replace(".", "").replace(",", ".")
    ) or (registration.deal_value < 100)


@pytest.mark.parametrize(
    ("language", "typed", "value"),
    [
        ("en", "12500", "12500"),
        ("it", "12.500,50", "12500.50"),
        ("it", "12,500.50", "12500.50"),  # unambiguous in either convention
        ("en", "12k", "12000"),
        ("it", "12mila", "12000"),
        ("it", "1,2 mln", "1200000"),
        ("en", "EUR 12500", "12500"),
    ],
)
async def test_unambiguous_amounts_and_shorthand_go_straight_through(bot, language, typed, value):
    chat = await join(bot, 11, language=language)
    await chat.send(f"/new {VATS[1]}")
    [ask_product] = await chat.send(typed)
    assert not buttons(ask_product)
    await chat.send("Mouse")
    [summary] = await chat.send(SOON.isoformat())
    await chat.press(summary, "Conf")
    [registration] = await registrations(bot)
    assert registration.deal_value == Decimal(value)


async def test_a_near_miss_amount_offers_its_reading_as_a_button_and_typing_still_works(bot):
    chat = await join(bot, 11, language="en")
    await chat.send(f"/new {VATS[1]}")
    [offer] = await chat.send("12.500.50")
    assert "Did you mean" in offer["text"]
    assert [label for label, _ in buttons(offer)] == ["€12,500.50"]
    [again] = await chat.send("abc")  # typing something else instead of pressing
    assert "not an amount I can read" in again["text"]
    assert not buttons(again)
    await chat.press_data(offer, button_data(offer, "12,500.50"))  # the old offer expired
    assert "expired" in chat.popups()[-1]
    [ask_product] = await chat.send("12500.50")
    assert "selling" in ask_product["text"]


async def test_customer_who_bought_recently_is_refused_with_the_last_purchase_date(bot):
    chat = await join(bot, 11, language="en")
    [answer] = await chat.send(f"/new {VATS[2]}")
    assert "is not a new customer" in answer["text"]
    assert "last purchase on" in answer["text"]
    [after] = await chat.send("hello")  # the conversation ended
    assert "did not understand" in after["text"]


async def test_protected_customer_is_refused_without_naming_the_partner(bot):
    acme = await join(bot, 11, "ACME", "en")
    await register_one(acme, VATS[1])
    beta = await join(bot, 22, "BETA", "en")
    [answer] = await beta.send(f"/check {VATS[1]}")
    assert "protected until" in answer["text"]
    assert "Acme" not in answer["text"]
    assert "ACME" not in answer["text"]
    [mine] = await acme.send(f"/check {VATS[1]}")
    assert await reference_of(bot, VATS[1]) in mine["text"]


async def test_a_name_one_partner_typed_is_never_shown_to_another(bot):
    acme = await join(bot, 11, "ACME", "en")
    beta = await join(bot, 22, "BETA", "en")
    await register_one(acme, VATS[0], company="Secret Customer Srl")
    [status] = await acme.send("/status")
    await acme.press(status, await reference_of(bot, VATS[0]))
    await acme.press(status, "Lost")
    await acme.press(status, "Yes, it is lost")
    [verdict] = await beta.send(f"/check {VATS[0]}")
    assert "Secret" not in verdict["text"]
    [verdict] = await beta.send(f"/new {VATS[0]}")
    assert "Secret" not in verdict["text"]
    assert "company name" in verdict["text"]  # beta is asked, not told


async def test_wrong_answers_repeat_the_question_and_keep_what_was_typed(bot):
    chat = await join(bot, 11)
    await chat.send("/new")
    [bad_vat] = await chat.send("12345670588")
    assert "cifra di controllo" in bad_vat["text"]
    assert "Per esempio" in bad_vat["text"]
    assert "Invia la partita IVA" in bad_vat["text"]
    [words] = await chat.send("ciao")
    assert "una partita IVA ha 11 cifre" in words["text"]
    await chat.send(VATS[0])
    [empty] = await chat.send("   ")
    assert "ragione sociale" in empty["text"]
    await chat.send("Rossi <Impianti> & C.")
    [sticker] = await chat.send(
        sticker={
            "file_id": "x",
            "file_unique_id": "y",
            "type": "regular",
            "width": 1,
            "height": 1,
            "is_animated": False,
            "is_video": False,
        }
    )
    assert "messaggio di testo" in sticker["text"]
    [command] = await chat.send("/status")
    assert "/cancel" in command["text"]
    assert "euro" in command["text"]
    await chat.send("0,5")
    await chat.send("Consulenza")
    [past] = await chat.send("01/01/2020")
    assert "già passata" in past["text"]
    [nonsense] = await chat.send("domani")
    example = TODAY + dt.timedelta(days=30)
    # An example no reader takes the month for the day of, and typing it as shown works.
    assert f"{example:%d} dic {example:%Y} o {example.isoformat()}" in nonsense["text"]
    [summary] = await chat.send(f"{SOON:%d} {SOON:%b} {SOON:%Y}")  # "08 Jan 2027"
    assert "Rossi <Impianti> & C." in summary["text"]
    [typed] = await chat.send("sì")
    assert "Tocca Conferma" in typed["text"]
    await chat.press(typed, "Conferma")
    [registration] = await registrations(bot)
    assert (registration.customer_name, registration.deal_value) == (
        "Rossi <Impianti> & C.",
        Decimal("0.50"),
    )


async def test_an_edited_message_is_never_read_as_an_answer(bot):
    chat = await join(bot, 11, language="en")
    await chat.send(f"/new {VATS[1]}")
    await chat.send("1000")
    value_message = chat.said
    [answer] = await chat.edit(value_message, "2000")
    assert "do not read edited messages" in answer["text"]
    assert "What are you selling" in answer["text"]  # the current question, again
    await chat.send("Mouse")
    [summary] = await chat.send(SOON.isoformat())
    assert "€1,000.00" in summary["text"]
    await chat.press(summary, "Confirm")
    [registration] = await registrations(bot)
    assert registration.deal_value == Decimal("1000.00")


async def test_new_in_the_middle_of_a_registration_starts_over_saying_so(bot):
    chat = await join(bot, 11, language="en")
    await chat.send(f"/new {VATS[1]}")
    await chat.send("1000")
    [question] = await chat.send("/new")
    assert "was dropped" in question["text"]
    assert "VAT number" in question["text"]
    [answer] = await chat.send(f"/new {VATS[0]}")
    dropped, verdict, ask = answer["text"].split("\n\n")
    assert "was dropped" in dropped
    assert "new customer" in verdict
    assert "company name" in ask


async def test_check_in_the_middle_of_a_registration_answers_and_asks_again(bot):
    chat = await join(bot, 11, language="en")
    await chat.send(f"/new {VATS[1]}")
    [answer] = await chat.send(f"/check {VATS[2]}")
    verdict, back = answer["text"].split("\n\nBack to your registration:\n\n")
    assert "is not a new customer" in verdict
    assert "deal value" in back
    await chat.send("1000")
    await chat.send("Mouse")
    [summary] = await chat.send(SOON.isoformat())
    assert "Bianchi SpA" in summary["text"]


async def test_start_with_an_invite_in_the_middle_of_a_registration_ends_it_and_follows(bot):
    chat = await join(bot, 11, "ACME", "en")
    await chat.send(f"/new {VATS[1]}")
    async with bot.sessions() as session:
        invite = await create_invite(session=session, partner_code="BETA", now=bot.clock.now())
    dropped, question = await chat.send(f"/start {invite.token}")
    assert "was dropped" in dropped["text"]
    assert "Move to Beta Srl?" in question["text"]
    [answer] = await chat.send("1000")  # no longer an answer to anything
    assert "did not understand" in answer["text"]


async def test_after_a_question_failed_to_arrive_the_next_message_gets_it_again(bot):
    chat = await join(bot, 11, language="en")
    await chat.send(f"/new {VATS[1]}")
    # A timeout: the question may or may not have arrived, and is not sent twice.
    bot.api.failures["sendMessage"] = [Timeout()]
    await chat.send("1000")  # kept; the question "what are you selling?" fails
    [again] = await chat.send("1000")  # sent again after the apology: not a product
    assert "may not have reached you" in again["text"]
    assert "What are you selling" in again["text"]
    await chat.send("Mouse")
    [summary] = await chat.send(SOON.isoformat())
    assert "Selling: Mouse" in summary["text"]
    assert "€1,000.00" in summary["text"]


async def test_a_partners_third_registration_of_the_day_is_quoted_with_the_two_before(bot):
    chat = await join(bot, 11, language="en")
    await register_one(chat, italian_vat(1))
    await register_one(chat, italian_vat(2))
    [verdict] = await chat.send(f"/new {italian_vat(3)}")
    assert (
        "Loyalty: 2 registrations in the last 365 days: ×1.00; 1 more reaches ×1.10"
        in (verdict["text"])
    )


async def test_a_colleague_confirming_in_between_changes_the_quote_and_confirm_says_so(bot):
    first = await join(bot, 11, "ACME", "en")
    colleague = await join(bot, 12, "ACME", "en")
    await register_one(first, italian_vat(1))
    await register_one(first, italian_vat(2))
    summary = await reach_summary(first, italian_vat(3), company="Uno Srl")
    assert "€500.00" in summary["text"]
    await register_one(colleague, italian_vat(4))  # the partner's third, before ours
    await first.press(summary, "Confirm")
    done = summary
    assert "incentive changed since the summary, which said €500.00" in done["text"]
    assert "€550.00" in done["text"]
    assert "3 registrations in the last 365 days: ×1.10" in done["text"]
    mine = next(r for r in await registrations(bot) if r.vat == italian_vat(3))
    assert (mine.loyalty_count, mine.incentive_amount) == (3, Decimal("550.00"))


async def test_cancel_leaves_at_any_step_and_registers_nothing(bot):
    chat = await join(bot, 11, language="en")
    await chat.send("/new")
    await chat.send(VATS[0])
    [cancelled] = await chat.send("/cancel")
    assert "nothing was registered" in cancelled["text"]
    [again] = await chat.send("/cancel")
    assert "nothing to cancel" in again["text"]
    assert await registrations(bot) == []


async def test_cancel_button_on_the_summary_registers_nothing(bot):
    chat = await join(bot, 11, language="en")
    summary = await reach_summary(chat)
    assert await chat.press(summary, "Cancel") == []
    assert summary["text"] == "Cancelled: nothing was registered."
    assert not buttons(summary)
    assert await registrations(bot) == []


async def test_stale_confirm_button_after_the_conversation_ended_registers_nothing(bot):
    chat = await join(bot, 11, language="en")
    summary = await reach_summary(chat)
    await chat.send("/cancel")
    await chat.press_data(summary, button_data(summary, "Confirm"))
    assert "expired" in chat.popups()[-1]
    assert await registrations(bot) == []


async def test_a_confirm_button_of_an_older_registration_does_not_confirm_the_new_one(bot):
    chat = await join(bot, 11, language="en")
    old_summary = await reach_summary(chat, VATS[1])
    await chat.send("/new")  # drops it
    await reach_summary(chat, VATS[0])
    await chat.press_data(old_summary, button_data(old_summary, "Confirm"))
    assert "expired" in chat.popups()[-1]
    assert await registrations(bot) == []


async def test_a_registration_left_for_two_hours_is_dropped(bot):
    chat = await join(bot, 11, language="en")
    summary = await reach_summary(chat)
    bot.clock.advance(dt.timedelta(hours=2, minutes=1))
    await chat.press_data(summary, button_data(summary, "Confirm"))
    assert "expired" in chat.popups()[-1]
    [answer] = await chat.send("1000")
    assert "did not understand" in answer["text"]
    assert await registrations(bot) == []


async def test_a_second_partner_confirming_after_the_first_is_told_the_customer_is_protected(bot):
    acme = await join(bot, 11, "ACME", "en")
    beta = await join(bot, 22, "BETA", "en")
    summaries = []
    for chat in (acme, beta):  # both get the verdict before either confirms
        summaries.append(await reach_summary(chat))
    await acme.press(summaries[0], "Confirm")
    await beta.press(summaries[1], "Confirm")
    won, lost = summaries
    assert "Registered" in won["text"]
    assert "protected until" in lost["text"]
    assert not buttons(lost)
    assert len(await registrations(bot)) == 1


# --- /status, /settings, /help ---------------------------------------------------


async def test_status_lists_registrations_with_totals_and_marks_won_and_lost(bot):
    chat = await join(bot, 11, language="en")
    await register_one(chat, VATS[0])
    bot.clock.advance(dt.timedelta(minutes=1))
    await register_one(chat, VATS[1])
    first, second = await reference_of(bot, VATS[0]), await reference_of(bot, VATS[1])
    [status] = await chat.send("/status")
    assert "2 registrations" in status["text"]
    assert "Expected: €1,000.00" in status["text"]
    assert buttons(status)[0][0].startswith(second)  # newest first
    await chat.press(status, second)
    assert "Bianchi SpA" in status["text"]  # the same message now shows the detail
    assert "protected until" in status["text"]
    await chat.press(status, "Won")
    assert "won" in status["text"]
    assert "Won" not in [label for label, _ in buttons(status)]
    await chat.press(status, "All registrations")
    await chat.press(status, first)
    await chat.press(status, "Lost")
    assert "free for other partners" in status["text"]
    await chat.press(status, "Yes, it is lost")
    assert "lost" in status["text"]
    assert "protected until" not in status["text"]  # a lost deal protects nobody
    assert "no longer protected" in status["text"]
    async with bot.sessions() as session:
        moves = (
            await session.execute(
                select(StatusChange.to_status, StatusChange.changed_by).order_by(StatusChange.id)
            )
        ).all()
    assert moves[-2:] == [("won", "telegram:11"), ("lost", "telegram:11")]
    [status] = await chat.send("/status")
    assert "Expected: €500.00" in status["text"]


async def test_a_won_deal_past_its_protection_date_no_longer_says_it_is_protected(bot):
    chat = await join(bot, 11, language="en")
    await register_one(chat, VATS[0])
    [status] = await chat.send("/status")
    await chat.press(status, await reference_of(bot, VATS[0]))
    await chat.press(status, "Won")
    assert "protected until" in status["text"]
    bot.clock.advance(dt.timedelta(days=91))
    await chat.press(status, "All registrations")
    await chat.press(status, await reference_of(bot, VATS[0]))
    assert "won" in status["text"]
    assert "no longer protected" in status["text"]


async def test_an_open_registration_seen_after_its_protection_ended_offers_no_outcome(bot):
    chat = await join(bot, 11, language="en")
    await register_one(chat, VATS[0])
    [status] = await chat.send("/status")
    bot.clock.advance(dt.timedelta(days=91))
    await chat.press(status, await reference_of(bot, VATS[0]))  # from the old list
    assert "no longer protected" in status["text"]
    assert "Won" not in [label for label, _ in buttons(status)]


async def test_an_expired_registration_no_longer_says_it_is_protected(bot):
    chat = await join(bot, 11, language="en")
    await register_one(chat, VATS[0])
    bot.clock.advance(dt.timedelta(days=91))
    [status] = await chat.send("/status")
    await chat.press(status, await reference_of(bot, VATS[0]))
    assert "expired" in status["text"]
    assert "protected until" not in status["text"]


async def test_one_partner_never_sees_anothers_registrations(bot):
    acme = await join(bot, 11, "ACME", "en")
    beta = await join(bot, 22, "BETA", "en")
    await register_one(acme, VATS[0])
    reference = await reference_of(bot, VATS[0])
    [status] = await beta.send("/status")
    assert "no registrations" in status["text"]
    # Hand-made buttons for ACME's registration, well formed, get nothing.
    await beta.press_data(status, callbacks.OpenRegistration(reference, 0).data)
    assert "not among yours" in beta.popups()[-1]
    await beta.press_data(status, callbacks.ReportLost(reference, 0).data)
    [registration] = await registrations(bot)
    assert registration.status == "qualified"


async def test_names_with_html_characters_show_as_typed_in_messages_and_buttons(bot):
    chat = await join(bot, 11, language="en")
    await register_one(chat, VATS[0], company="Rossi & <Figli>")
    [status] = await chat.send("/status")
    assert "Rossi & <Figli>" in buttons(status)[0][0]
    await chat.press(status, await reference_of(bot, VATS[0]))
    assert "Rossi & <Figli>" in status["text"]
    assert "Rossi &amp; &lt;Figli&gt;" in status["html"]


async def test_colleagues_of_the_same_partner_share_registrations(bot):
    first = await join(bot, 11, "ACME", "en")
    second = await join(bot, 12, "ACME", "en")
    await register_one(first, VATS[0])
    [status] = await second.send("/status")
    assert await reference_of(bot, VATS[0]) in str(buttons(status))


async def test_settings_switch_language_and_reminders(bot):
    chat = await join(bot, 11, language="en")
    [settings] = await chat.send("/settings")
    assert "Language: English" in settings["text"]
    await chat.press(settings, "Italiano")
    assert "Lingua: Italiano" in settings["text"]
    await chat.press(settings, "Disattiva")
    assert "Promemoria: disattivati" in settings["text"]
    [help_text] = await chat.send("/help")
    assert "clienti nuovi" in help_text["text"]
    async with bot.sessions() as session:
        salesperson = (await session.execute(select(Salesperson))).scalars().one()
    assert (salesperson.language, salesperson.reminders_enabled) == ("it", False)


async def test_stickers_and_unknown_text_outside_a_conversation_get_a_pointer(bot):
    # (A photo outside a conversation starts /new with its VAT number: tests/test_photos.py.)
    chat = await join(bot, 11, language="en")
    [answer] = await chat.send(
        sticker={
            "file_id": "s",
            "file_unique_id": "q",
            "width": 1,
            "height": 1,
            "type": "regular",
            "is_animated": False,
            "is_video": False,
        }
    )
    assert "/new" in answer["text"]


async def test_a_telegram_error_while_answering_reaches_only_that_user(bot):
    chat = await join(bot, 11, language="en")
    other = await join(bot, 12, language="en")
    bot.api.failures["sendMessage"] = [Timeout()]  # a send never repeated: it may have arrived
    await chat.send("/help")  # fails, the error handler apologises
    assert "went wrong" in chat.last["text"]
    [answer] = await other.send("/help")
    assert "/new" in answer["text"]


async def test_the_apology_is_in_the_language_the_user_chose(bot):
    """Telegram says English; the user chose Italian in /settings. The error handler gets
    a context of its own from PTB: the account the update read reaches it all the same."""
    chat = await join(bot, 11, language="en")
    [settings] = await chat.send("/settings")
    await chat.press(settings, "Italiano")
    bot.api.failures["sendMessage"] = [Timeout()]
    await chat.send("/help")
    assert "qualcosa è andato storto" in chat.last["text"]


async def test_check_with_a_mistyped_vat_number_says_why_and_how(bot):
    chat = await join(bot, 11, language="en")
    [answer] = await chat.send("/check 12345670588")
    assert "check digit" in answer["text"]
    assert "/check IT12345670587" in answer["text"]
    [usage] = await chat.send("/check")
    assert "For example" in usage["text"]


async def test_confirm_that_fails_unexpectedly_can_be_pressed_again(bot, monkeypatch):
    import handlers.registration as registration

    real = registration.register_opportunity
    calls = {"n": 0}

    async def flaky(**kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("database went away")
        return await real(**kwargs)

    monkeypatch.setattr(registration, "register_opportunity", flaky)
    chat = await join(bot, 11, language="en")
    summary = await reach_summary(chat)
    [apology] = await chat.press(summary, "Confirm")
    assert "went wrong" in apology["text"]
    assert await registrations(bot) == []
    assert await chat.press(summary, "Confirm") == []  # the draft and the button survived
    assert "Registered" in summary["text"]
    assert len(await registrations(bot)) == 1


async def test_telegram_asking_to_slow_down_delays_the_answer_and_sends_it_once(bot):
    chat = await join(bot, 11, language="en")
    bot.api.failures["sendMessage"] = [
        TelegramError(429, "Too Many Requests: retry after 1", retry_after=1)
    ]
    answers = await chat.send("/help")
    assert len(answers) == 1
    assert "/new" in answers[0]["text"]
    attempts = [m for m, params in bot.api.calls if m == "sendMessage" and params["chat_id"] == 11]
    assert len(attempts) == len(chat.messages()) + 1  # one refused attempt, then one delivery


async def test_a_user_who_blocked_the_bot_breaks_nothing(bot):
    chat = await join(bot, 11, language="en")
    bot.api.failures["sendMessage"] = [
        TelegramError(403, "Forbidden: bot was blocked by the user"),
        TelegramError(403, "Forbidden: bot was blocked by the user"),
    ]
    assert await chat.send("/status") == []
    [answer] = await chat.send("/status")
    assert "no registrations" in answer["text"]


async def test_status_shows_each_deals_amount_and_marks_a_name_it_cuts(bot):
    chat = await join(bot, 11, language="en")
    long_name = "Impianti Elettrici e Fotovoltaici del Nord Est S.r.l."
    await register_one(chat, VATS[0], company=long_name)
    [status] = await chat.send("/status")
    [(label, _data)] = buttons(status)
    assert label.endswith("open · €500.00")  # what the deal is worth, on the list
    assert "Impianti Elettrici e Fo…" in label  # a cut name says it was cut
    assert long_name not in label


async def test_status_pages_through_older_registrations(bot):
    chat = await join(bot, 11, language="en")
    vats = [italian_vat(5000 + i) for i in range(10)]
    for vat in vats:
        await register_one(chat, vat)
        bot.clock.advance(dt.timedelta(minutes=1))
    newest_first = [await reference_of(bot, vat) for vat in reversed(vats)]
    [status] = await chat.send("/status")
    assert "10 registrations" in status["text"]
    labels = [label for label, _ in buttons(status)]
    assert [label[:10] for label in labels if label.startswith("PAI-")] == newest_first[:8]
    await chat.press(status, "Older")
    labels = [label for label, _ in buttons(status)]
    assert [label[:10] for label in labels if label.startswith("PAI-")] == newest_first[8:]
    await chat.press(status, "Newer")
    assert buttons(status)[0][0].startswith(newest_first[0])


async def test_the_bot_stays_silent_in_group_chats(bot):
    chat = await join(bot, 11, language="en")
    for text in ("/new", "/status", "/start", "hello"):
        bot.api.user_sends(chat.user, text, group=-100123)
    await bot.deliver()
    assert bot.api.sent_to(-100123) == []


# --- what a bad day at Telegram does to Confirm and the close date --------------

BEST_EFFORT_FAILURES = [
    TelegramError(502, "Bad Gateway"),
    TelegramError(500, "Internal Server Error"),
    Timeout(),
]
# Failures queued for "Telegram keeps failing": more than the bot tries, however many
# times that is; the test clears them when Telegram is back.
FOR_A_WHILE = 20


@pytest.fixture
def no_pauses(monkeypatch):
    """Try again at once after a failure: a test of Telegram failing for a while waits for
    nothing."""
    monkeypatch.setattr(ratelimit, "BACKOFF", (0.0,) * len(ratelimit.BACKOFF))


@pytest.mark.parametrize("failure", BEST_EFFORT_FAILURES, ids=["502", "500", "timeout"])
async def test_a_spinner_telegram_fails_to_stop_on_confirm_never_costs_the_confirmation(
    bot, failure
):
    chat = await join(bot, 11, language="en")
    summary = await reach_summary(chat)
    bot.api.failures["answerCallbackQuery"] = [failure]
    await chat.press(summary, "Confirm")
    assert "Registered" in summary["text"]
    assert await reference_of(bot, VATS[1]) in summary["text"]
    assert "went wrong" not in str(chat.messages())


@pytest.mark.parametrize("failure", BEST_EFFORT_FAILURES, ids=["502", "500", "timeout"])
async def test_a_spinner_telegram_fails_to_stop_on_a_close_date_button_keeps_the_conversation(
    bot, failure
):
    chat = await join(bot, 11, language="en")
    await chat.send(f"/new {VATS[1]}")
    await chat.send("1000")
    [ask_close] = await chat.send("Mouse")
    bot.api.failures["answerCallbackQuery"] = [failure]
    await chat.press(ask_close, "30 days")
    assert "Please check and confirm" in ask_close["text"]
    await chat.press(ask_close, "Confirm")
    assert "Registered" in ask_close["text"]


@pytest.mark.parametrize("failure", BEST_EFFORT_FAILURES, ids=["502", "500", "timeout"])
async def test_a_summary_that_failed_to_replace_the_question_comes_with_the_next_tap(
    bot, failure, no_pauses
):
    chat = await join(bot, 11, language="en")
    await chat.send(f"/new {VATS[1]}")
    await chat.send("1000")
    [ask_close] = await chat.send("Mouse")
    bot.api.failures["editMessageText"] = [failure] * FOR_A_WHILE
    [apology] = await chat.press(ask_close, "30 days")
    assert "went wrong" in apology["text"]
    bot.api.failures.clear()
    assert "Please check" not in ask_close["text"]
    # The same button again: no longer a date to take, but the summary it should have brought.
    assert await chat.press(ask_close, "60 days") == []
    assert ask_close["text"].startswith("My last message may not have reached you.")
    assert f"Expected close: {TODAY + dt.timedelta(days=30):%d %b %Y}" in ask_close["text"]
    await chat.press(ask_close, "Confirm")
    assert "Registered" in ask_close["text"]
    [registration] = await registrations(bot)
    assert registration.expected_close == TODAY + dt.timedelta(days=30)


@pytest.mark.parametrize("failure", BEST_EFFORT_FAILURES, ids=["502", "500", "timeout"])
async def test_the_confirmation_is_shown_again_when_showing_it_fails(bot, failure):
    chat = await join(bot, 11, language="en")
    summary = await reach_summary(chat)
    bot.api.failures["editMessageText"] = [failure]
    assert await chat.press(summary, "Confirm") == []
    assert "Registered" in summary["text"]
    assert len(await registrations(bot)) == 1


async def test_a_summary_telegram_will_not_edit_gets_the_confirmation_as_a_new_message(bot):
    chat = await join(bot, 11, language="en")
    summary = await reach_summary(chat)
    bot.api.failures["editMessageText"] = [
        TelegramError(400, "Bad Request: message can't be edited")
    ]
    [done] = await chat.press(summary, "Confirm")
    assert "Registered" in done["text"]
    assert await reference_of(bot, VATS[1]) in done["text"]


async def test_a_confirmation_telegram_keeps_refusing_arrives_with_the_next_message(bot, no_pauses):
    chat = await join(bot, 11, language="en")
    summary = await reach_summary(chat)
    confirm = button_data(summary, "Confirm")
    bot.api.failures["editMessageText"] = [TelegramError(502, "Bad Gateway")] * FOR_A_WHILE
    assert await chat.press_data(summary, confirm) == []  # tried again and again, in vain
    assert "Registered" not in summary["text"]
    bot.api.failures.clear()
    # The next tap brings it, as a new message since it comes late, and registers nothing.
    [done] = await chat.press_data(summary, confirm)
    assert "Registered" in done["text"]
    assert await reference_of(bot, VATS[1]) in done["text"]
    assert "expired" in chat.popups()[-1]
    assert not buttons(summary)
    [status] = await chat.send("/status")  # delivered once, not again
    assert "1 registration" in status["text"]
    assert len(await registrations(bot)) == 1


async def test_a_late_confirmation_is_sent_again_when_sending_it_fails(bot, no_pauses):
    chat = await join(bot, 11, language="en")
    summary = await reach_summary(chat)
    bot.api.failures["editMessageText"] = [TelegramError(502, "Bad Gateway")] * FOR_A_WHILE
    await chat.press(summary, "Confirm")
    bot.api.failures.clear()
    bot.api.failures["sendMessage"] = [TelegramError(502, "Bad Gateway")]
    done, status = await chat.send("/status")
    assert "Registered" in done["text"]
    assert "1 registration" in status["text"]


async def test_a_late_confirmation_that_timed_out_is_not_sent_twice_in_a_row(bot, no_pauses):
    """The one rule for sending again: a send that timed out may have arrived, so it is not
    repeated at once, be it the confirmation or any other message."""
    chat = await join(bot, 11, language="en")
    summary = await reach_summary(chat)
    bot.api.failures["editMessageText"] = [TelegramError(502, "Bad Gateway")] * FOR_A_WHILE
    await chat.press(summary, "Confirm")
    bot.api.failures.clear()
    bot.api.failures["sendMessage"] = [Timeout()]
    before = len(bot.api.calls)
    assert await chat.send("/status") == []
    tries = [m for m, p in bot.api.calls[before:] if m == "sendMessage" and p["chat_id"] == 11]
    assert len(tries) == 1  # tried once: it may have arrived
    [done, status] = await chat.send("/status")  # comes with the next message
    assert "Registered" in done["text"]
    assert "1 registration" in status["text"]


# --- forged and broken input ----------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        "new:close:3000",  # the old format, with a date in 2035
        "1:n:c:AAAAAAAA:3000",
        "1:n:c:AAAAAAAA:45",  # a number the bot never offers
        "1:s:p:99999999999999999999999999",
        "1:s:o:ABCDEF:99999999999999999999",
        "1:s:o:abcdef:0",
        "st:open:1:0",
        "1:g:rem:maybe",
        "1:g:lang:fr",
        "1:i:move:short",
        "",
        None,
        "1:n:ok:AAAAAAAA:extra",
    ],
)
async def test_forged_button_data_is_answered_as_an_expired_button(bot, data, caplog):
    chat = await join(bot, 11, language="en")
    [settings] = await chat.send("/settings")
    assert await chat.press_data(settings, data) == []
    assert "expired" in chat.popups()[-1]
    assert "Traceback" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    async with bot.sessions() as session:
        salesperson = (await session.execute(select(Salesperson))).scalars().one()
    assert salesperson.reminders_enabled


async def test_a_nul_byte_or_control_characters_in_a_name_are_cleaned_away(bot):
    chat = await join(bot, 11, language="en")
    await chat.send(f"/new {VATS[0]}")
    await chat.send("Rossi\x00 Srl\x07\u202e")
    await chat.send("1000")
    await chat.send("Mouse\x1b[31m")
    [summary] = await chat.send(SOON.isoformat())
    await chat.press(summary, "Confirm")
    [registration] = await registrations(bot)
    assert (registration.customer_name, registration.product) == ("Rossi Srl", "Mouse[31m")


async def test_an_update_telegram_should_never_send_is_skipped_without_its_content(bot, caplog):
    chat = await join(bot, 11, language="en")
    bot.api.queue_raw(
        {"message": {"message_id": 1, "chat": {"id": 11, "type": "private"}, "text": "IT-SECRET"}}
    )
    bot.api.queue_raw({"message": {"message_id": 2, "date": 1, "text": "no chat, VAT IT-SECRET"}})
    caplog.set_level(logging.INFO)
    [answer] = await chat.send("/help")  # the next update is handled as usual
    assert "/new" in answer["text"]
    skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(skipped) == 2
    assert "SECRET" not in caplog.text


async def test_a_salesperson_who_left_keeps_no_access(bot):
    from bot.services.accounts import unlink_salesperson

    chat = await join(bot, 11, language="en")
    await register_one(chat, VATS[0])
    [status] = await chat.send("/status")
    async with bot.sessions() as session:
        await unlink_salesperson(session=session, telegram_user_id=11, now=bot.clock.now())
    assert await chat.press(status, await reference_of(bot, VATS[0])) == []
    assert "expired" in chat.popups()[-1]
    [answer] = await chat.send("/status")
    assert "invite link" in answer["text"]
    colleague = await join(bot, 12, language="en")
    [theirs] = await colleague.send("/status")
    assert "1 registration" in theirs["text"]


async def test_one_users_messages_are_handled_in_the_order_sent(bot):
    chat = await join(bot, 11, language="en")
    for text in (f"/new {VATS[1]}", "1000", "Mouse", SOON.isoformat()):
        bot.api.user_sends(chat.user, text)
    await bot.deliver()
    summary = chat.last
    assert "Please check and confirm" in summary["text"]
    assert "Selling: Mouse" in summary["text"]


async def test_one_users_wait_after_telegram_says_slow_down_does_not_hold_up_the_others(bot):
    slowed = await join(bot, 11, language="en")
    other = await join(bot, 12, language="en")
    bot.api.chat_failures[11] = [TelegramError(429, "Too Many Requests", retry_after=3)]
    bot.api.user_sends(slowed.user, "/help")
    bot.api.user_sends(other.user, "/help")
    await bot.post()
    waited = await bot.wait_until(lambda: len(other.messages()) == 2, within=2.5)
    assert len(slowed.messages()) == 1  # still waiting out its 3 seconds
    assert waited < 2.5
    await bot.app.update_queue.join()
    assert "/new" in slowed.last["text"]
    assert len(slowed.messages()) == 2  # delivered once, after the wait


async def test_a_confirmation_pending_while_telegram_fails_cannot_be_cancelled_away(bot, no_pauses):
    chat = await join(bot, 11, language="en")
    summary = await reach_summary(chat)
    bot.api.failures["editMessageText"] = [TelegramError(502, "Bad Gateway")] * FOR_A_WHILE
    bot.api.failures["sendMessage"] = [TelegramError(502, "Bad Gateway")] * FOR_A_WHILE
    assert await chat.press(summary, "Confirm") == []  # every try fails
    assert await chat.send("/cancel") == []  # the pending one fails again
    bot.api.failures.clear()
    done, answer = await chat.send("/cancel")  # Telegram is back
    assert "Registered" in done["text"]
    assert "nothing to cancel" in answer["text"]
    assert len(await registrations(bot)) == 1


async def test_an_update_telegram_sends_again_is_handled_once(bot, caplog):
    """Telegram sends an update again when its 200 never arrived: at the deal-value
    question, the same value twice used to be taken as the value, then as the product."""
    chat = await join(bot, 11, language="en")
    await chat.send(f"/new {VATS[1]}")
    said = bot.api.user_sends(chat.user, "25000")
    bot.api.pending.append(dict(said))  # the very same update, id and all, once more
    await bot.deliver()
    answers = [m for m in chat.messages() if "sell" in m["text"].lower()]
    assert len(answers) == 1  # one answer, not a second one to "25000" as the product
    draft = await bot.resources.drafts.load(11)
    assert draft is not None
    assert (draft.deal_value, draft.product) == (Decimal("25000.00"), None)
    [skipped] = [r for r in caplog.records if getattr(r, "outcome", None) == "duplicate"]
    assert skipped.update_id == said["update_id"]  # type: ignore[attr-defined]
