"""Parsers of typed input: known cases, and any string never crashes them."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.errors import InvalidAmount, InvalidDate, InvalidInput, InvalidVat
from bot.parsing import check_close_date, clean_text, normalise_vat, parse_amount, parse_date


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("IT12345670587", "IT12345670587"),
        ("12345670587", "IT12345670587"),
        ("it 123 456 705 87", "IT12345670587"),
        ("123.456.705-87", "IT12345670587"),
        (" IT-12345670587 ", "IT12345670587"),
        ("DE 136,695,976", "DE136695976"),
        ("FR40303265045", "FR40303265045"),
    ],
)
def test_vat_numbers_are_normalised_to_prefix_and_compact_digits(typed, expected):
    assert normalise_vat(typed, default_country="IT") == expected


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("12345670588", "vat_checksum"),
        ("1234567058", "vat_length"),
        ("", "vat_empty"),
        ("  - . ", "vat_empty"),
        ("XX12345670587", "vat_country"),
        ("hello", "vat_invalid"),
    ],
)
def test_invalid_vat_numbers_say_why(typed, reason):
    with pytest.raises(InvalidVat) as caught:
        normalise_vat(typed, default_country="IT")
    assert caught.value.reason in {reason, "vat_invalid", "vat_length", "vat_country"}
    if reason in {"vat_checksum", "vat_empty"}:
        assert caught.value.reason == reason


@pytest.mark.parametrize(
    ("typed", "locale", "expected"),
    [
        ("12.500", "it_IT", "12500"),
        ("12.500,50", "it_IT", "12500.50"),
        ("12500", "it_IT", "12500"),
        ("€ 1.500", "it_IT", "1500"),
        ("1500 EUR", "it_IT", "1500"),
        ("12,500.50", "en_GB", "12500.50"),
        ("12500.5", "en_GB", "12500.50"),
        ("€12,500", "en_GB", "12500"),
    ],
)
def test_amounts_are_read_the_way_the_locale_writes_them(typed, locale, expected):
    assert parse_amount(typed, locale=locale) == Decimal(expected)


def test_italian_user_typing_english_grouping_gets_a_suggestion():
    with pytest.raises(InvalidAmount) as caught:
        parse_amount("12,500.50", locale="it_IT")
    assert caught.value.suggestion == "12.500,50"


@pytest.mark.parametrize(
    ("typed", "locale", "suggestion"),
    [("1500.50", "it_IT", "1.500,50"), ("12,50", "en_GB", "12.50"), ("abc", "it_IT", None)],
)
def test_amount_in_the_other_convention_is_suggested_in_the_users_own(typed, locale, suggestion):
    with pytest.raises(InvalidAmount) as caught:
        parse_amount(typed, locale=locale)
    assert caught.value.suggestion == suggestion


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("0", "amount_not_positive"),
        ("-5", "amount_not_positive"),
        ("abc", "amount_invalid"),
        ("1,234", "amount_cents"),
        ("5000000000", "amount_too_large"),
        ("", "amount_invalid"),
    ],
)
def test_bad_amounts_say_why(typed, reason):
    locale = "it_IT" if typed == "1,234" else "en_GB"
    with pytest.raises(InvalidAmount) as caught:
        parse_amount(typed, locale=locale)
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    "typed", ["2026-12-31", "31/12/2026", "31.12.2026", "31-12-2026", "31/12/26"]
)
@pytest.mark.parametrize("locale", ["it_IT", "en_GB"])
def test_dates_are_understood_in_the_documented_forms(typed, locale):
    assert parse_date(typed, locale=locale) == dt.date(2026, 12, 31)


@pytest.mark.parametrize("typed", ["31/02/2026", "tomorrow", "2026-13-01", "", "1/2"])
def test_impossible_or_unreadable_dates_are_refused(typed):
    with pytest.raises(InvalidDate):
        parse_date(typed, locale="it_IT")


def test_close_date_must_not_be_in_the_past_or_too_far():
    today = dt.date(2026, 11, 28)
    assert check_close_date(today, today=today) == today
    with pytest.raises(InvalidDate, match="date_past"):
        check_close_date(dt.date(2026, 11, 27), today=today)
    with pytest.raises(InvalidDate, match="date_too_far"):
        check_close_date(dt.date(2040, 1, 1), today=today)


def test_free_text_is_trimmed_and_bounded():
    assert clean_text("  Office   licences \n x10 ", max_length=40) == "Office licences x10"
    with pytest.raises(InvalidInput):
        clean_text("   ", max_length=40)
    with pytest.raises(InvalidInput):
        clean_text("x" * 41, max_length=40)


@given(st.text())
def test_any_string_is_a_vat_number_or_a_clear_error(text):
    try:
        vat = normalise_vat(text, default_country="IT")
    except InvalidVat as exc:
        assert exc.reason.startswith("vat_")
    else:
        assert vat[:2].isalpha() and vat == vat.upper()
        assert normalise_vat(vat, default_country="IT") == vat


@given(st.text(), st.sampled_from(["it_IT", "en_GB"]))
def test_any_string_is_an_amount_or_a_clear_error(text, locale):
    try:
        amount = parse_amount(text, locale=locale)
    except InvalidAmount as exc:
        assert exc.reason.startswith("amount_")
    else:
        assert amount > 0 and amount == amount.quantize(Decimal("0.01"))


@given(st.text(alphabet="0123456789/.-, ab", max_size=14) | st.text())
def test_any_string_is_a_date_or_a_clear_error(text):
    try:
        parse_date(text, locale="it_IT")
    except InvalidDate as exc:
        assert exc.reason == "date_invalid"


@given(st.decimals(min_value=Decimal("0.01"), max_value=Decimal("99999999"), places=2))
def test_amounts_formatted_by_babel_read_back_unchanged(amount):
    from babel.numbers import format_decimal

    for locale in ("it_IT", "en_GB"):
        typed = format_decimal(amount, locale=locale, decimal_quantization=False)
        assert parse_amount(typed, locale=locale) == amount
