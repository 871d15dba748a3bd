"""Conversations end to end: updates in through a fake Bot API, what the user sees out."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from babel.dates import format_date
from sqlalchemy import select

from bot.rules import load_rules
from bot.services.accounts import create_invite
from bot.services.imports import import_partners, import_purchases
from models import Customer, Registration, Salesperson, StatusChange
from tests.factories import VATS, italian_vat, write_csv
from tests.harness import Harness, button_data, buttons, running_bot

TODAY = load_rules().today()
SOON = TODAY + dt.timedelta(days=45)


@pytest.fixture
async def bot(tmp_path, rules):
    async with running_bot(tmp_path) as harness:
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
        async with harness.sessions() as session:
            await import_partners(session=session, rules=rules, path=partners)
            await import_purchases(session=session, rules=rules, path=purchases)
        yield harness


async def join(bot: Harness, user_id: int, partner: str = "ACME", language: str = "it"):
    async with bot.sessions() as session:
        invite = await create_invite(session=session, partner_code=partner)
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


async def registrations(bot: Harness) -> list[Registration]:
    async with bot.sessions() as session:
        return list(
            (await session.execute(select(Registration).order_by(Registration.id))).scalars()
        )


# --- joining -------------------------------------------------------------------


async def test_invite_link_links_the_account_and_welcomes_by_company(bot):
    async with bot.sessions() as session:
        invite = await create_invite(session=session, partner_code="ACME")
    chat = bot.chat(11, "it")
    [welcome] = await chat.send(f"/start {invite.token}")
    assert "Acme Informatica & Figli" in welcome["text"]
    assert "/new" in welcome["text"]
    async with bot.sessions() as session:
        linked = (await session.execute(select(Salesperson))).scalars().one()
    assert linked.telegram_user_id == 11


async def test_used_invite_links_nobody_else(bot):
    async with bot.sessions() as session:
        invite = await create_invite(session=session, partner_code="ACME")
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


# --- /new ----------------------------------------------------------------------


async def test_registering_an_unknown_customer_end_to_end_in_italian(bot):
    chat = await join(bot, 11)
    [question] = await chat.send("/new")
    assert "partita IVA" in question["text"]
    verdict, ask_company = await chat.send("123 456 705 87")
    assert "cliente nuovo" in verdict["text"]
    assert "500,00\xa0€" in verdict["text"]
    assert "Livello Gold" in verdict["text"]
    assert "ragione sociale" in ask_company["text"]
    [ask_value] = await chat.send("Rossi Impianti S.r.l.")
    assert "euro" in ask_value["text"]
    [_ask_product] = await chat.send("12.500")
    [ask_close] = await chat.send("Gestionale, 10 utenti")
    assert [label for label, _ in buttons(ask_close)] == [
        "Tra 30 giorni",
        "Tra 60 giorni",
        "Tra 90 giorni",
    ]
    [summary] = await chat.send(f"{SOON:%d/%m/%Y}")
    assert "12.500,00\xa0€" in summary["text"]
    assert format_date(SOON, "medium", locale="it_IT") in summary["text"]
    [done] = await chat.press(summary, "Conferma")
    assert "PAI-000001" in done["text"]
    assert not buttons(summary)  # Confirm cannot be pressed twice
    [registration] = await registrations(bot)
    assert registration.customer_name == "Rossi Impianti S.r.l."
    assert registration.deal_value == Decimal("12500.00")
    assert registration.product == "Gestionale, 10 utenti"
    assert registration.expected_close == SOON
    assert registration.incentive_amount == Decimal("500.00")
    assert registration.protected_until.strftime("%d") in done["text"]
    async with bot.sessions() as session:
        assert (await session.get(Customer, VATS[0])).name == "Rossi Impianti S.r.l."


async def test_known_customer_skips_the_company_question_and_buttons_pick_the_date(bot):
    chat = await join(bot, 11, language="en")
    await chat.send("/new")
    verdict, ask_value = await chat.send(VATS[1])
    assert "Bianchi SpA" in verdict["text"]
    assert "value" in ask_value["text"]
    await chat.send("12,500.50")
    [ask_close] = await chat.send("Backup appliance")
    [summary] = await chat.press(ask_close, "60 days")
    assert "€12,500.50" in summary["text"]
    [done] = await chat.press(summary, "Confirm")
    assert "Registered" in done["text"]
    [registration] = await registrations(bot)
    assert registration.expected_close == TODAY + dt.timedelta(days=60)
    assert registration.customer_name == "Bianchi SpA"


async def test_customer_who_bought_recently_is_refused_with_the_last_purchase_date(bot):
    chat = await join(bot, 11, language="en")
    [answer] = await chat.send(f"/new {VATS[2]}")
    assert "not a new customer" in answer["text"]
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
    assert "PAI-000001" in mine["text"]


async def test_wrong_answers_repeat_the_question_and_keep_what_was_typed(bot):
    chat = await join(bot, 11)
    await chat.send("/new")
    [bad_vat] = await chat.send("12345670588")
    assert "cifra di controllo" in bad_vat["text"]
    assert "Per esempio" in bad_vat["text"]
    assert "Invia la partita IVA" in bad_vat["text"]
    await chat.send(VATS[0])
    [empty] = await chat.send("   ")
    assert "ragione sociale" in empty["text"]
    await chat.send("Rossi <Impianti> & C.")
    [bad_value] = await chat.send("12,500.50")
    assert "12.500,50" in bad_value["text"]  # the Italian reading is suggested
    assert "euro" in bad_value["text"]
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
    assert f"{TODAY + dt.timedelta(days=30):%d/%m/%Y}" in nonsense["text"]
    [summary] = await chat.send(SOON.isoformat())
    assert "Rossi <Impianti> & C." in summary["text"]
    await chat.press(summary, "Conferma")
    [registration] = await registrations(bot)
    assert (registration.customer_name, registration.deal_value) == (
        "Rossi <Impianti> & C.",
        Decimal("0.50"),
    )


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
    [cancelled] = await chat.press(summary, "Cancel")
    assert "Cancelled" in cancelled["text"]
    assert await registrations(bot) == []


async def test_stale_confirm_button_after_the_conversation_ended_registers_nothing(bot):
    chat = await join(bot, 11, language="en")
    summary = await reach_summary(chat)
    await chat.send("/cancel")
    await chat.press_data(summary, button_data(summary, "Confirm"))
    assert "ended" in bot.api.answers()[-1]["text"]
    assert await registrations(bot) == []


async def test_a_second_partner_confirming_after_the_first_is_told_the_customer_is_protected(bot):
    acme = await join(bot, 11, "ACME", "en")
    beta = await join(bot, 22, "BETA", "en")
    summaries = []
    for chat in (acme, beta):  # both get the verdict before either confirms
        summaries.append(await reach_summary(chat))
    [won] = await acme.press(summaries[0], "Confirm")
    [lost] = await beta.press(summaries[1], "Confirm")
    assert "Registered" in won["text"]
    assert "protected until" in lost["text"]
    assert len(await registrations(bot)) == 1


# --- /status, /settings, /help ---------------------------------------------------


async def register_one(chat, vat, value="1000", company="Cliente Srl"):
    summary = await reach_summary(chat, vat, value=value, company=company)
    await chat.press(summary, "Confirm")


async def test_status_lists_registrations_with_totals_and_marks_won_and_lost(bot):
    chat = await join(bot, 11, language="en")
    await register_one(chat, VATS[0])
    await register_one(chat, VATS[1])
    [status] = await chat.send("/status")
    assert "2 registrations" in status["text"]
    assert "Expected: €1,000.00" in status["text"]
    await chat.press(status, "PAI-000002")
    assert "Bianchi SpA" in status["text"]  # the same message now shows the detail
    await chat.press(status, "Won")
    assert "won" in status["text"]
    assert "Won" not in [label for label, _ in buttons(status)]
    await chat.press(status, "All registrations")
    await chat.press(status, "PAI-000001")
    await chat.press(status, "Lost")
    assert "free for other partners" in status["text"]
    await chat.press(status, "Yes, it is lost")
    assert "lost" in status["text"]
    async with bot.sessions() as session:
        moves = (
            await session.execute(
                select(StatusChange.to_status, StatusChange.changed_by).order_by(StatusChange.id)
            )
        ).all()
    assert moves[-2:] == [("won", "telegram:11"), ("lost", "telegram:11")]
    [status] = await chat.send("/status")
    assert "Expected: €500.00" in status["text"]


async def test_one_partner_never_sees_anothers_registrations(bot):
    acme = await join(bot, 11, "ACME", "en")
    beta = await join(bot, 22, "BETA", "en")
    await register_one(acme, VATS[0])
    [status] = await beta.send("/status")
    assert "no registrations" in status["text"]
    # A hand-made button for ACME's registration gets nothing.
    await beta.press_data(status, "st:open:1:0")
    assert "not among yours" in bot.api.answers()[-1]["text"]
    await beta.press_data(status, "st:lostok:1:0")
    [registration] = await registrations(bot)
    assert registration.status == "qualified"


async def test_names_with_html_characters_show_as_typed_in_messages_and_buttons(bot):
    chat = await join(bot, 11, language="en")
    await register_one(chat, VATS[0], company="Rossi & <Figli>")
    [status] = await chat.send("/status")
    assert "Rossi & <Figli>" in buttons(status)[0][0]
    await chat.press(status, "PAI-000001")
    assert "Rossi & <Figli>" in status["text"]
    assert "Rossi &amp; &lt;Figli&gt;" in status["html"]


async def test_colleagues_of_the_same_partner_share_registrations(bot):
    first = await join(bot, 11, "ACME", "en")
    second = await join(bot, 12, "ACME", "en")
    await register_one(first, VATS[0])
    [status] = await second.send("/status")
    assert "PAI-000001" in str(buttons(status))


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


async def test_photos_and_unknown_text_outside_a_conversation_get_a_pointer(bot):
    chat = await join(bot, 11, language="en")
    [answer] = await chat.send(
        photo=[{"file_id": "p", "file_unique_id": "q", "width": 1, "height": 1}]
    )
    assert "/new" in answer["text"]


async def test_a_telegram_error_while_answering_reaches_only_that_user(bot):
    from tests.fake_bot_api import TelegramError

    chat = await join(bot, 11, language="en")
    other = await join(bot, 12, language="en")
    bot.api.failures["sendMessage"] = [TelegramError(500, "Internal Server Error")]
    await chat.send("/help")  # fails, the error handler apologises
    assert "went wrong" in chat.last["text"]
    [answer] = await other.send("/help")
    assert "/new" in answer["text"]


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
    [done] = await chat.press(summary, "Confirm")  # the draft and the button survived
    assert "Registered" in done["text"]
    assert len(await registrations(bot)) == 1


async def test_telegram_asking_to_slow_down_delays_the_answer_and_sends_it_once(bot):
    from tests.fake_bot_api import TelegramError

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
    from tests.fake_bot_api import TelegramError

    chat = await join(bot, 11, language="en")
    bot.api.failures["sendMessage"] = [
        TelegramError(403, "Forbidden: bot was blocked by the user"),
        TelegramError(403, "Forbidden: bot was blocked by the user"),
    ]
    assert await chat.send("/status") == []
    [answer] = await chat.send("/status")
    assert "no registrations" in answer["text"]


async def test_status_pages_through_older_registrations(bot):
    chat = await join(bot, 11, language="en")
    vats = [italian_vat(5000 + i) for i in range(10)]
    for vat in vats:
        await register_one(chat, vat)
    [status] = await chat.send("/status")
    assert "10 registrations" in status["text"]
    labels = [label for label, _ in buttons(status)]
    assert labels[0].startswith("PAI-000010")
    assert len([label for label in labels if label.startswith("PAI-")]) == 8
    await chat.press(status, "Older")
    labels = [label for label, _ in buttons(status)]
    assert [label[:10] for label in labels if label.startswith("PAI-")] == [
        "PAI-000002",
        "PAI-000001",
    ]
    await chat.press(status, "Newer")
    assert buttons(status)[0][0].startswith("PAI-000010")


async def test_a_registration_whose_answer_was_lost_is_not_registered_twice(bot):
    from tests.fake_bot_api import TelegramError

    chat = await join(bot, 11, language="en")
    summary = await reach_summary(chat)
    bot.api.failures["sendMessage"] = [TelegramError(502, "Bad Gateway")]
    [apology] = await chat.press_data(summary, "new:confirm")
    assert "went wrong" in apology["text"]
    assert await chat.press_data(summary, "new:confirm") == []  # a queued second tap
    assert "ended" in bot.api.answers()[-1]["text"]
    assert len(await registrations(bot)) == 1
    [mine] = await chat.send(f"/check {VATS[1]}")
    assert "You already registered" in mine["text"]


async def test_the_bot_stays_silent_in_group_chats(bot):
    chat = await join(bot, 11, language="en")
    for text in ("/new", "/status", "/start", "hello"):
        bot.api.user_sends(chat.user, text, group=-100123)
    await bot.deliver()
    assert bot.api.sent_to(-100123) == []
