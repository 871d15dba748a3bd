"""The Italian and English catalogues say the same things, with the same placeholders."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from pathlib import Path

import pytest

from bot.i18n import LANGUAGES, Markup, Texts, catalogue, language_for, placeholders

CODE = Path(__file__).resolve().parent.parent


def test_both_catalogues_have_the_same_keys_and_placeholders():
    italian, english = catalogue("it"), catalogue("en")
    assert set(italian) == set(english)
    for key in english:
        assert placeholders(italian[key]) == placeholders(english[key]), key


def test_every_key_the_handlers_use_is_in_the_catalogues():
    used = set()
    for path in [*CODE.glob("handlers/*.py"), *CODE.glob("bot/**/*.py")]:
        text = path.read_text()
        used |= set(re.findall(r'texts(?:\.plain)?\(\s*"([a-z_]+)"', text))
        used |= {f"{key}_other" for key in re.findall(r'texts\.plural\(\s*"([a-z_]+)"', text)}
    assert used, "the pattern no longer finds the keys"
    assert used <= set(catalogue("en"))


@pytest.mark.parametrize(
    ("language", "count", "expected"),
    [
        ("en", 1, "1 registration"),
        ("en", 2, "2 registrations"),
        ("en", 0, "0 registrations"),
        ("it", 1, "1 registrazione"),
        ("it", 5, "5 registrazioni"),
    ],
)
def test_counts_take_the_plural_form_of_the_language(language, count, expected):
    header = Texts(language).plural("status_header", count, company="Acme")
    assert header.endswith(f"{expected}")


@pytest.mark.parametrize(
    ("chosen", "telegram", "expected"),
    [
        (None, "it", "it"),
        (None, "it-IT", "it"),
        (None, "de", "en"),
        (None, None, "en"),
        ("en", "it", "en"),
        ("it", "en", "it"),
        ("fr", "it", "it"),
    ],
)
def test_language_is_the_choice_else_italian_for_italian_telegram_else_english(
    chosen, telegram, expected
):
    assert language_for(chosen=chosen, telegram_code=telegram) == expected


def test_money_and_dates_are_written_the_users_way():
    italian, english = Texts("it"), Texts("en")
    assert italian.money(Decimal("12500.5")) == "12.500,50\xa0€"
    assert english.money(Decimal("12500.5")) == "€12,500.50"
    assert italian.date(dt.date(2026, 12, 31)) == "31 dic 2026"
    assert english.date(dt.date(2026, 12, 31)) == "31 Dec 2026"


def test_values_are_escaped_for_html_but_markup_and_plain_texts_are_not():
    texts = Texts("en")
    assert "Rossi &amp; &lt;Figli&gt;" in texts.plural(
        "status_header", 1, company="Rossi & <Figli>"
    )
    assert "<b>x</b>" in texts(
        "verdict_new", customer="c", amount="1", until="d", quote_detail=Markup("<b>x</b>")
    )
    assert "Rossi & <Figli>" in texts.plain(
        "status_button", reference="R", customer="Rossi & <Figli>", status="open", amount="€1"
    )


def test_every_language_has_a_locale():
    for language in LANGUAGES:
        assert Texts(language).language == language


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (dt.date(2027, 1, 8), "fino all'8 gen 2027"),
        (dt.date(2027, 3, 11), "fino all'11 mar 2027"),
        (dt.date(2027, 6, 1), "fino all'1 giu 2027"),
        (dt.date(2027, 1, 18), "fino al 18 gen 2027"),
        (dt.date(2027, 1, 2), "fino al 2 gen 2027"),
    ],
)
def test_italian_dates_take_the_elided_article_before_a_vowel_sound(day, expected):
    texts = Texts("it")
    text = texts("verdict_protected", vat="IT1", until=texts.date(day))
    assert expected in text


def test_elision_works_inside_bold_text_and_on_the_day_after_il():
    texts = Texts("it")
    assert "<b>fino all'8 gen 2027</b>" in texts(
        "registered",
        reference="PAI-ABCDEF",
        customer="Rossi",
        until=texts.date(dt.date(2027, 1, 8)),
        value="1.000,00 €",
        product="Mouse",
        close=texts.date(dt.date(2026, 12, 24)),
        amount="500,00 €",
        quote_detail=Markup(""),
    )
    assert "il 8" not in texts("detail_released", registered_on=texts.date(dt.date(2027, 1, 8)))
    assert "Registrata l'8 gen 2027" in texts(
        "detail_released", registered_on=texts.date(dt.date(2027, 1, 8))
    )


def test_a_name_ending_in_a_full_stop_ends_the_sentence_once():
    for language in ("en", "it"):
        text = Texts(language)("start_already_linked", company="Aurora Sistemi S.r.l.")
        assert "S.r.l.</b>." not in text and "S.r.l.</b>" in text
    assert Texts("en")("start_already_linked", company="Acme").count("Acme</b>.") == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("collegato a <b>Aurora S.r.l.</b>", "collegato ad <b>Aurora S.r.l.</b>"),
        ("collegato a <b>Bitline</b>", "collegato a <b>Bitline</b>"),
        ("passare a Ermes", "passare a Ermes"),  # another vowel: no d (the Crusca's advice)
        ("Rossi e Esposito", "Rossi ed Esposito"),
        ("Rossi e Aurora", "Rossi e Aurora"),
    ],
)
def test_italian_takes_the_euphonic_d_before_the_same_vowel_in_any_name(text, expected):
    assert Texts("it")._polish(text) == expected
    assert Texts("en")._polish(text) == text  # English is left alone
