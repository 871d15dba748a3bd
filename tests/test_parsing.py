"""Parsers of typed input: known cases, and any string never crashes them."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from babel.numbers import format_currency, format_decimal
from hypothesis import example, given
from hypothesis import strategies as st
from stdnum import luhn
from stdnum.eu import vat as eu_vat
from stdnum.exceptions import InvalidLength, ValidationError

from bot.domain.errors import InvalidAmount, InvalidDate, InvalidInput, InvalidVat
from bot.domain.parsing import (
    _valid_italian,
    check_close_date,
    clean_text,
    normalise_vat,
    parse_amount,
    parse_date,
    strip_control,
    vat_digits_for,
)

CENT = Decimal("0.01")
MAX_AMOUNT = Decimal("1000000000")

# --- VAT numbers ---------------------------------------------------------------


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
        ("IT 1234 5670 5877", "vat_length"),
        ("", "vat_empty"),
        ("  - . ", "vat_empty"),
        ("XX12345670587", "vat_country"),
        ("hello", "vat_digits"),
        ("ciao", "vat_digits"),
        ("Rossi srl", "vat_digits"),
        ("IT", "vat_digits"),
        ("IT-ABCDEFGHIJK", "vat_digits"),
        ("١٢٣٤٥٦٧٠٥٨٧", "vat_digits"),  # Arabic-Indic digits are not a VAT number's
        ("IT1234567058x", "vat_invalid"),
        ("1" * 65, "vat_invalid"),
    ],
)
def test_invalid_vat_numbers_say_why(typed, reason):
    with pytest.raises(InvalidVat) as caught:
        normalise_vat(typed, default_country="IT")
    assert caught.value.reason == reason


def test_a_known_countrys_own_rule_is_not_blamed_on_the_country_code():
    # python-stdnum raises InvalidComponent for an Italian province code out of range
    # as it does for an unknown prefix; only the latter is `vat_country`.
    with pytest.raises(InvalidVat) as caught:
        normalise_vat("IT11111111101", default_country="IT")
    assert caught.value.reason == "vat_invalid"


@pytest.mark.parametrize(
    ("country", "digits"),
    [("IT", 11), ("it", 11), (" DE ", 9), ("EL", 9), ("GR", 9), ("SE", 12), ("PL", 10)],
)
def test_vat_digit_count_is_known_for_countries_with_a_fixed_one(country, digits):
    assert vat_digits_for(country) == digits


@pytest.mark.parametrize("country", ["AT", "ES", "FR", "IE", "NL", "CY", "BG", "CZ", "LT", "RO"])
def test_vat_digit_count_is_none_where_letters_or_several_lengths_are_allowed(country):
    assert vat_digits_for(country) is None


@pytest.mark.parametrize("country", ["XX", "GB", "US", "", "ITALIA"])
def test_vat_digit_count_is_none_for_countries_outside_the_eu_rules(country):
    assert vat_digits_for(country) is None


_FIXED_COUNTRIES = ["BE", "DE", "DK", "EE", "EL", "GR", "FI", "HR", "HU", "IT"]
_FIXED_COUNTRIES += ["LU", "LV", "MT", "PL", "PT", "SE", "SI", "SK"]


@pytest.mark.parametrize("country", _FIXED_COUNTRIES)
def test_vat_digit_counts_agree_with_python_stdnum(country):
    digits = vat_digits_for(country)
    assert digits is not None

    def length_error(count: int) -> bool:
        # Swedish numbers end in `01`; the other digits do not matter for the length.
        try:
            eu_vat.validate(country + "1" * (count - 2) + "01")
        except InvalidLength:
            return True
        except ValidationError:
            return False
        return False

    assert not length_error(digits)
    assert length_error(digits + 1)
    # Belgium and Greece still take their old numbers, one digit shorter.
    assert length_error(digits - 1) == (country not in {"BE", "EL", "GR"})


@given(st.text())
def test_any_string_is_a_vat_number_or_a_clear_error(text):
    try:
        vat = normalise_vat(text, default_country="IT")
    except InvalidVat as exc:
        assert exc.reason in {
            "vat_empty",
            "vat_digits",
            "vat_invalid",
            "vat_checksum",
            "vat_length",
            "vat_country",
        }
        if exc.reason == "vat_digits":
            assert not re.search(r"[0-9]", text)
    else:
        assert vat[:2].isalpha() and vat == vat.upper()
        assert normalise_vat(vat, default_country="IT") == vat


# --- Amounts: what is taken as it is ---------------------------------------------


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("12500", "12500.00"),
        ("12500.5", "12500.50"),
        ("12500,5", "12500.50"),
        ("12.500,50", "12500.50"),
        ("12,500.50", "12500.50"),
        ("1.500.000", "1500000.00"),
        ("1,500,000", "1500000.00"),
        ("1,500,000.75", "1500000.75"),
        ("1.500.000,75", "1500000.75"),
        ("12,5", "12.50"),
        ("12.50", "12.50"),
        ("0,50", "0.50"),
        ("12 500", "12500.00"),
        ("12\u00a0500", "12500.00"),
        ("12\u202f500", "12500.00"),
        ("12'500", "12500.00"),
        ("12\u2019500", "12500.00"),
        ("1 500 000,50", "1500000.50"),
        ("12 500.50", "12500.50"),
        ("  12500  ", "12500.00"),
        ("+12500", "12500.00"),
        ("999.999.999,99", "999999999.99"),
    ],
)
def test_amounts_with_one_reading_are_taken_as_they_are(typed, expected):
    assert parse_amount(typed) == Decimal(expected)


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("0,500", "0.50"),  # grouping would need a leading-zero group
        ("0.500", "0.50"),
        ("1.505", "1505.00"),  # 1.505 is not money: three decimals
        ("12,345", "12345.00"),
        ("999,999", "999999.00"),
        ("1500.500", "1500.50"),  # a first group of four cannot be thousands
    ],
)
def test_a_three_digit_group_with_only_one_valid_reading_is_that_reading(typed, expected):
    assert parse_amount(typed) == Decimal(expected)


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("€ 12500", "12500.00"),
        ("€12500", "12500.00"),
        ("12500 €", "12500.00"),
        ("12500€", "12500.00"),
        ("EUR 12500", "12500.00"),
        ("eur12500", "12500.00"),
        ("12500 EUR", "12500.00"),
        ("12500 euro", "12500.00"),
        ("12500 Euro", "12500.00"),
        ("12500euros", "12500.00"),
        ("Euro 12.500,50", "12500.50"),
        ("€12,500.50", "12500.50"),
        ("12.500,50\u00a0€", "12500.50"),
        ("€\u00a012 500", "12500.00"),
    ],
)
def test_currency_markers_at_either_end_are_ignored(typed, expected):
    assert parse_amount(typed) == Decimal(expected)


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("12k", "12000"),
        ("12K", "12000"),
        ("12 k", "12000"),
        ("1.5k", "1500"),
        ("1,5k", "1500"),
        ("1,25k", "1250"),
        ("12mila", "12000"),
        ("12 mila", "12000"),
        ("12 mille", "12000"),
        ("1,2 mln", "1200000"),
        ("1.2 mln", "1200000"),
        ("2 milioni", "2000000"),
        ("1 milione", "1000000"),
        ("3m", "3000000"),
        ("3M", "3000000"),
        ("1.5 million", "1500000"),
        ("2 millions", "2000000"),
        ("2 mio", "2000000"),
        ("2 Mio.", "2000000"),
        ("€12k", "12000"),
        ("12k euro", "12000"),
        ("12k€", "12000"),
        ("12 k€", "12000"),
        ("EUR 1,2 mln", "1200000"),
        ("2 milioni di euro", "2000000"),
        ("12 500 k", "12500000"),
        ("999m", "999000000"),
    ],
)
def test_shorthand_multiplies_and_one_or_two_digits_after_a_separator_are_decimals(typed, expected):
    assert parse_amount(typed) == Decimal(expected)


# --- Amounts: asked back ----------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "grouping", "decimal"),
    [
        ("12.500", "12500", "12.50"),
        ("12,500", "12500", "12.50"),
        ("1,500", "1500", "1.50"),
        ("1.500", "1500", "1.50"),
        ("100.000", "100000", "100.00"),
        ("€ 12.500", "12500", "12.50"),
        ("12.500 €", "12500", "12.50"),
        ("€12,500", "12500", "12.50"),
        ("12.500 euro", "12500", "12.50"),
        ("1.500k", "1500000", "1500"),
        ("1,234 k", "1234000", "1234"),
        ("2.500 mila", "2500000", "2500"),
    ],
)
def test_a_single_separator_before_three_digits_is_asked_back_with_both_readings(
    typed, grouping, decimal
):
    with pytest.raises(InvalidAmount) as caught:
        parse_amount(typed)
    assert caught.value.reason == "amount_ambiguous"
    assert caught.value.readings == (
        Decimal(grouping).quantize(CENT),
        Decimal(decimal).quantize(CENT),
    )
    assert all(reading.as_tuple().exponent == -2 for reading in caught.value.readings)


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("12.500.50", "12500.50"),
        ("12,500,50", "12500.50"),
        ("12.500.5", "12500.50"),
        ("1.500.000,000.5", None),  # mixed separators: nothing to offer
        ("1,500,000,75", "1500000.75"),
        ("€ 12.500.50", "12500.50"),
        ("1,50,000", "150000.00"),
        ("12.50.000", "1250000.00"),
        ("1,50,00,000", "15000000.00"),
        ("1 50 000", "150000.00"),
        ("1.2.3,4,5", None),
        ("1.2.500", None),
        ("12 50", None),
        ("1.500.", None),
    ],
)
def test_a_near_miss_is_offered_its_one_likely_reading(typed, meant):
    with pytest.raises(InvalidAmount) as caught:
        parse_amount(typed)
    assert caught.value.reason == "amount_invalid"
    assert caught.value.readings == (() if meant is None else (Decimal(meant),))


# --- Amounts: refused -------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("abc", "amount_invalid"),
        ("dodici", "amount_invalid"),
        ("", "amount_invalid"),
        ("   ", "amount_invalid"),
        ("€", "amount_invalid"),
        ("k", "amount_invalid"),
        ("12 euro 50", "amount_invalid"),
        ("1e9", "amount_invalid"),
        ("1E3", "amount_invalid"),
        ("NaN", "amount_invalid"),
        ("Infinity", "amount_invalid"),
        ("-inf", "amount_invalid"),
        ("0x10", "amount_invalid"),
        ("1_000", "amount_invalid"),
        ("١٢٥٠٠", "amount_invalid"),  # Arabic-Indic digits
        ("１２５００", "amount_invalid"),  # full-width digits  # noqa: RUF001
        ("12\x00500", "amount_invalid"),
        ("12\n500", "amount_invalid"),
        ("0500", "amount_invalid"),  # an amount does not start with 0
        ("012.500", "amount_invalid"),
        (".50", "amount_invalid"),
        ("12,", "amount_invalid"),
        ("12..5", "amount_invalid"),
        ("12 .500", "amount_invalid"),
        ("€€12", "amount_invalid"),
        ("12kk", "amount_invalid"),
        ("5-", "amount_invalid"),
        ("1" * 65, "amount_invalid"),
        (" " * 60 + "12500", "amount_invalid"),  # over 64 characters as typed
        ("0", "amount_not_positive"),
        ("0,00", "amount_not_positive"),
        ("0k", "amount_not_positive"),
        ("-5", "amount_not_positive"),
        ("- 5", "amount_not_positive"),
        ("\u22125", "amount_not_positive"),
        ("-€5", "amount_not_positive"),
        ("€ -5", "amount_not_positive"),
        ("-12.500", "amount_not_positive"),
        ("-12.500.50", "amount_not_positive"),
        ("5000000000", "amount_too_large"),
        ("1.000.000.000", "amount_too_large"),
        ("1000000000", "amount_too_large"),
        ("1000 mln", "amount_too_large"),
        ("9" * 64, "amount_too_large"),
        ("12.3456", "amount_cents"),
        ("12.5000", "amount_cents"),  # four decimals: 12.50, 12,500 or 125,000?
        ("0.005", "amount_cents"),
        ("0,505", "amount_cents"),
        ("12.500,505", "amount_cents"),
        ("1,500.000", "amount_cents"),  # three decimals after thousands are not euros
        ("1 500.000", "amount_cents"),
        ("1.2345k", "amount_cents"),
    ],
)
def test_bad_amounts_say_why(typed, reason):
    with pytest.raises(InvalidAmount) as caught:
        parse_amount(typed)
    assert caught.value.reason == reason
    assert caught.value.readings == ()


# --- Amounts: properties ----------------------------------------------------------

_AMOUNT_TOKENS = [
    *"0123456789",
    *"0123456789",
    ".",
    ",",
    " ",
    "'",
    "\u00a0",
    "-",
    "+",
    "€",
    "k",
    "K",
    "m",
    "e",
    " mila",
    "mln",
    " milioni",
    "million",
    "EUR",
    " euro",
    "di ",
    "000",
    ".000",
    ",000",
    ".500",
    ",50",
]
amount_like = st.lists(st.sampled_from(_AMOUNT_TOKENS), max_size=12).map("".join)


def assert_amount_or_clear_error(text: str) -> None:
    try:
        amount = parse_amount(text)
    except InvalidAmount as exc:
        assert exc.reason.startswith("amount_")
        assert all(r > 0 and r < MAX_AMOUNT and r == r.quantize(CENT) for r in exc.readings)
        if exc.reason == "amount_ambiguous":
            grouping, decimal = exc.readings
            assert grouping == decimal * 1000
        else:
            assert len(exc.readings) <= 1
            assert not exc.readings or exc.reason == "amount_invalid"
    else:
        assert 0 < amount < MAX_AMOUNT
        assert amount.as_tuple().exponent == -2


@given(st.text())
@example("\ud800")
@example("12\u202e500")
@example("1" * 64)
def test_any_string_is_an_amount_or_a_clear_error(text):
    assert_amount_or_clear_error(text)


@given(amount_like)
def test_any_amount_like_string_is_an_amount_or_a_clear_error(text):
    assert_amount_or_clear_error(text)


def babel_spellings(amount: Decimal) -> list[str]:
    """How the amount looks when a person copies it from Babel-formatted text."""
    spellings = []
    for locale in ("it_IT", "en_GB"):
        plain = str(format_decimal(amount, locale=locale, decimal_quantization=False))
        cents = str(format_decimal(amount, format="#,##0.00", locale=locale))
        spellings += [plain, cents, f"€{plain}", f"{plain} €", f"€ {cents}"]
        spellings.append(str(format_currency(amount, "EUR", locale=locale)))
    return spellings


@given(st.decimals(min_value=CENT, max_value=MAX_AMOUNT - CENT, places=2))
@example(Decimal("12500"))
@example(Decimal("1500"))
@example(Decimal("12.5"))
@example(Decimal("1234567.89"))
def test_babel_formatted_amounts_are_read_back_or_asked_back_never_1000_times_off(amount):
    for typed in babel_spellings(amount):
        try:
            assert parse_amount(typed) == amount, typed
        except InvalidAmount as exc:
            assert exc.reason == "amount_ambiguous", typed
            assert amount in exc.readings


@given(st.from_regex(r"\A[0-9]{1,3}[.,][0-9]{3}\Z"))
@example("12.500")
@example("0,500")
@example("1.505")
def test_a_value_is_only_returned_when_the_other_reading_is_impossible(typed):
    whole, fraction = re.split(r"[.,]", typed)
    readings = []
    if not whole.startswith("0"):
        readings.append(Decimal(whole + fraction))
    decimal = Decimal(f"{whole}.{fraction}")
    if (
        decimal > 0
        and decimal == decimal.quantize(CENT)
        and not (len(whole) > 1 and whole[0] == "0")
    ):
        readings.append(decimal)
    try:
        amount = parse_amount(typed)
    except InvalidAmount as exc:
        assert len(readings) != 1
        if len(readings) == 2:
            assert exc.reason == "amount_ambiguous"
            assert exc.readings == tuple(reading.quantize(CENT) for reading in readings)
    else:
        assert [amount] == readings


_MULTIPLIERS = {
    "k": 1000,
    "K": 1000,
    "mila": 1000,
    "mille": 1000,
    "m": 1_000_000,
    "M": 1_000_000,
    "mln": 1_000_000,
    "mio": 1_000_000,
    "milione": 1_000_000,
    "milioni": 1_000_000,
    "million": 1_000_000,
    "millions": 1_000_000,
}


@given(
    st.integers(min_value=1, max_value=999),
    st.sampled_from(sorted(_MULTIPLIERS)),
    st.sampled_from(["", " "]),
    st.sampled_from(["", "€", "€ ", "EUR "]),
    st.sampled_from(["", " €", "€", " euro", " EUR"]),
)
def test_shorthand_is_the_number_times_its_multiplier(n, suffix, space, before, after):
    typed = f"{before}{n}{space}{suffix}{after}"
    assert parse_amount(typed) == Decimal(n * _MULTIPLIERS[suffix]).quantize(CENT)


# --- Dates -------------------------------------------------------------------------


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


@given(st.text(alphabet="0123456789/.-, ab", max_size=14) | st.text())
def test_any_string_is_a_date_or_a_clear_error(text):
    try:
        parse_date(text, locale="it_IT")
    except InvalidDate as exc:
        assert exc.reason == "date_invalid"


# --- Free text ---------------------------------------------------------------------


def test_free_text_is_trimmed_and_bounded():
    assert clean_text("  Office   licences \n x10 ", max_length=40) == "Office licences x10"
    with pytest.raises(InvalidInput):
        clean_text("   ", max_length=40)
    with pytest.raises(InvalidInput):
        clean_text("x" * 41, max_length=40)


@pytest.mark.parametrize(
    ("typed", "kept"),
    [
        ("Rossi\x00 srl", "Rossi srl"),
        ("Rossi\ud800 srl", "Rossi srl"),
        ("\u202eRossi srl\u202c", "Rossi srl"),
        ("\ufeffRossi\u2066 srl\u2069", "Rossi srl"),
        ("Rossi\tsrl\nMilano\r\n", "Rossi srl Milano  "),
        ("Caff\u00e8 Nero \u2013 \u20ac", "Caff\u00e8 Nero \u2013 \u20ac"),
        ("\x07\x1b[31mred", "[31mred"),
    ],
)
def test_control_characters_and_display_overrides_are_dropped_and_whitespace_is_a_space(
    typed, kept
):
    assert strip_control(typed) == kept


def test_clean_text_refuses_text_that_is_only_control_characters():
    with pytest.raises(InvalidInput, match="text_empty"):
        clean_text("\x00\u202e\ufeff\t", max_length=40)


@given(st.text())
def test_cleaned_text_can_always_be_stored(text):
    cleaned = strip_control(text)
    cleaned.encode("utf-8")
    assert "\x00" not in cleaned
    assert not any(char in cleaned for char in "\u202a\u202b\u202c\u202d\u202e\ufeff")


@pytest.mark.parametrize(
    ("typed", "offered"),
    [("1.000 mln", "1000000.00"), ("2.500 mln", "2500000.00"), ("1.000m", "1000000.00")],
)
def test_a_reading_ruled_out_only_by_its_size_is_still_not_guessed(typed, offered):
    with pytest.raises(InvalidAmount) as caught:
        parse_amount(typed)
    assert caught.value.readings == (Decimal(offered),)


@pytest.mark.parametrize(
    "text", ["5 Jan 2027", "5 gen 2027", "5 gennaio 2027", "05 January 2027", "5 gen. 2027"]
)
def test_a_date_with_the_month_by_name_reads_in_either_language(text):
    assert parse_date(text, locale="en_GB") == dt.date(2027, 1, 5)
    assert parse_date(text, locale="it_IT") == dt.date(2027, 1, 5)


def test_a_month_name_that_is_no_month_is_not_a_date():
    with pytest.raises(InvalidDate):
        parse_date("5 Janvier 2027", locale="en_GB")


def _stdnum_italian(digits: str) -> bool:
    try:
        eu_vat.validate("IT" + digits)
    except ValidationError:
        return False
    return True


@given(
    st.one_of(
        st.from_regex(r"[0-9]{11}", fullmatch=True),
        # Valid bodies with every office code, the special ones and the edges among them.
        st.builds(
            lambda serial, office: f"{serial:07d}{office:03d}",
            st.integers(0, 9_999_999),
            st.sampled_from([0, 1, 99, 100, 101, 119, 120, 121, 122, 887, 888, 999]),
        ).map(lambda body: body + luhn.calc_check_digit(body)),
    )
)
@example("00000000000")
@example("12345670587")
def test_the_fast_way_for_a_written_out_italian_number_agrees_with_python_stdnum(digits):
    """A sales history's numbers take a shortcut past python-stdnum (10x faster): it
    must accept exactly what python-stdnum accepts, and the rest still say why."""
    assert _valid_italian(digits) == _stdnum_italian(digits)
    try:
        assert normalise_vat("IT" + digits, default_country="IT") == "IT" + digits
    except InvalidVat:
        assert not _stdnum_italian(digits)
