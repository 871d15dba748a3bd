"""Parsers for what people type: VAT numbers, amounts and dates.

Each takes any string and returns a value or raises an `InvalidInput` with a
catalogue key for the reason; none of them may fail any other way.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal
from functools import cache

from babel import Locale
from babel.dates import get_date_format, get_month_names
from stdnum.eu import vat as eu_vat
from stdnum.exceptions import InvalidChecksum, InvalidLength, ValidationError

from bot.domain.errors import InvalidAmount, InvalidDate, InvalidText, InvalidVat

_LONGEST_INPUT = 64

# --- VAT numbers -------------------------------------------------------------

# Separators people and spreadsheets put inside VAT numbers.
_VAT_NOISE = re.compile(r"[\s.\-/,_]+")
_COUNTRY_PREFIX = re.compile(r"^[A-Z]{2}")
_ASCII_DIGIT = re.compile(r"[0-9]")
# Prefixes python-stdnum validates: the member states (Greece as both EL and GR,
# Northern Ireland as XI) and the EU / IM one-stop-shop numbers.
_VAT_PREFIXES = frozenset({cc.upper() for cc in eu_vat.MEMBER_STATES} | {"EL", "EU", "IM"})
# Countries whose VAT number is always this many digits after the prefix (checked
# against python-stdnum in the tests). Left out: numbers with letters (AT, CY, ES,
# FR, IE, NL) or with more than one length (BG, CZ, LT, RO). Belgium and Greece
# still accept their old, one digit shorter numbers; the count is today's.
_VAT_DIGITS = {
    "BE": 10,
    "DE": 9,
    "DK": 8,
    "EE": 9,
    "EL": 9,
    "GR": 9,
    "FI": 8,
    "HR": 11,
    "HU": 8,
    "IT": 11,
    "LU": 8,
    "LV": 11,
    "MT": 8,
    "PL": 10,
    "PT": 9,
    "SE": 12,
    "SI": 8,
    "SK": 10,
}


def normalise_vat(text: str, *, default_country: str) -> str:
    """Return the VAT number as country prefix plus compact digits (`IT12345670587`)."""
    if _CANONICAL_ITALIAN.fullmatch(text) and _valid_italian(text[2:]):
        return text  # how a sales history writes nearly all of them: 10x faster than below
    compact = _VAT_NOISE.sub("", text).upper()
    if not compact:
        raise InvalidVat("vat_empty")
    if not _ASCII_DIGIT.search(compact):
        # `ciao`, `Rossi srl`: a name or a word, not a number with a typo in it.
        raise InvalidVat("vat_digits")
    if len(compact) > _LONGEST_INPUT:
        raise InvalidVat("vat_invalid")
    if not _COUNTRY_PREFIX.match(compact):
        compact = default_country.upper() + compact
    if compact[:2] not in _VAT_PREFIXES:
        raise InvalidVat("vat_country")
    try:
        return str(eu_vat.validate(compact))
    except ValidationError as exc:
        raise InvalidVat(_vat_reason(exc)) from exc


_CANONICAL_ITALIAN = re.compile(r"IT[0-9]{11}")
_ITALIAN_SPECIAL_OFFICES = frozenset({"120", "121", "888", "999"})


def _valid_italian(digits: str) -> bool:
    """python-stdnum's Partita IVA rules, written out for the one form that needs no
    cleaning (the tests check both agree); False sends the number the long way, which
    says why it is wrong."""
    office = digits[7:10]
    return (
        digits[:7] != "0000000"
        and ("001" <= office <= "100" or office in _ITALIAN_SPECIAL_OFFICES)
        and _luhn_valid(digits)
    )


_DOUBLED = str.maketrans("0123456789", "0246813579")  # a digit doubled, its digits summed


def _luhn_valid(digits: str) -> bool:
    """The Luhn check of a string of ASCII digits (python-stdnum's, a third of the time)."""
    kept = sum(map(int, digits[-1::-2]))
    doubled = sum(map(int, digits[-2::-2].translate(_DOUBLED)))
    return (kept + doubled) % 10 == 0


def vat_digits_for(country: str) -> int | None:
    """How many digits follow the prefix in `country`'s VAT numbers, when that is fixed."""
    return _VAT_DIGITS.get(country.strip().upper())


def _vat_reason(exc: ValidationError) -> str:
    # InvalidComponent also comes from a known country's own rules (an Italian
    # number's province code): an unknown prefix was refused before validating.
    if isinstance(exc, InvalidChecksum):
        return "vat_checksum"
    if isinstance(exc, InvalidLength):
        return "vat_length"
    return "vat_invalid"


# --- Amounts -----------------------------------------------------------------
#
# Partners type deal values in euro, on phones, in whatever convention they are
# used to: `12.500` is twelve thousand five hundred in Italy and twelve and a half
# in England. The parser therefore does not depend on the user's language and
# never picks one of two readings that differ by a factor of 1000: it asks back.
#
# The text is first split into marks around the number (currency, sign,
# shorthand like `12k`) and the number itself, digit groups between separators.
# The number then has at most two readings: every separator groups thousands, or
# the last one is the decimal point. Each reading that is a valid amount counts.

_MAX_AMOUNT = Decimal("1000000000")  # a deal of a billion or more is a typo
_CENT = Decimal("0.01")

# Longest first, so that `euros` is not read as `euro` plus a stray `s`.
_CURRENCY = r"(?:€|euros|euro|eur)"
_LEADING_CURRENCY = re.compile(rf"^{_CURRENCY}\s*")
# `2 milioni di euro`: Italian puts `di` between the shorthand and the currency.
_TRAILING_CURRENCY = re.compile(rf"\s*(?:\bdi\s+)?{_CURRENCY}$")
_SIGN = re.compile(r"^([-+\u2212])\s*")  # U+2212 is the typographic minus
# Shorthand multipliers as powers of ten; the lookbehind keeps them on a number,
# and a final dot is an abbreviation's (`2 Mio.`).
_SHORTHAND_EXPONENT = {
    "k": 3,
    "mila": 3,
    "mille": 3,
    "m": 6,
    "mln": 6,
    "mio": 6,
    "milione": 6,
    "milioni": 6,
    "million": 6,
    "millions": 6,
}
_TRAILING_SHORTHAND = re.compile(
    r"(?<=[0-9])\s*(" + "|".join(sorted(_SHORTHAND_EXPONENT, key=len, reverse=True)) + r")\.?$"
)
# Spaces (plain, no-break, narrow no-break, thin, figure) and apostrophes (`12'500`,
# and the curly one phones substitute) only ever group thousands.
_SPACE_SEPARATOR = r"[ \u00a0\u202f\u2009\u2007]+|['\u2019]"
# Only ASCII digits: `\d` would also take Arabic-Indic or full-width digits.
_NUMBER = re.compile(rf"[0-9]+(?:(?:[.,]|{_SPACE_SEPARATOR})[0-9]+)*")
_SEPARATOR = re.compile(rf"([.,]|{_SPACE_SEPARATOR})")


@dataclass(frozen=True)
class _Number:
    """A typed amount split into digit groups and the separators between them."""

    groups: tuple[str, ...]  # digits only, never empty
    separators: tuple[str, ...]  # `.`, `,` or ` ` (any space or apostrophe); one fewer
    exponent: int  # 0, or 3 / 6 for shorthand (`12k`, `1,2 mln`)
    negative: bool


def parse_amount(text: str) -> Decimal:
    """Read a positive euro amount to the cent, or say why not (`InvalidAmount`).

    The same rules for every user language. A text that reads two ways
    (`12.500`: 12,500.00 or 12.50) raises `amount_ambiguous` with both readings;
    a near miss (`12.500.50`) raises `amount_invalid` with the one reading meant.
    """
    number = _split_amount(text)
    readings = _readings(number)
    valid = [value for value in readings if isinstance(value, Decimal) and not _problem(value)]
    near_miss = None if readings else _near_miss(number)
    if number.negative and (readings or near_miss):
        raise InvalidAmount("amount_not_positive")
    if len(valid) == 2:
        # Only `N.DDD` / `N,DDD` gets here: grouping first, then the decimal reading.
        raise InvalidAmount("amount_ambiguous", readings=tuple(v.quantize(_CENT) for v in valid))
    too_large = [r for r in readings if isinstance(r, Decimal) and r >= _MAX_AMOUNT]
    if valid and too_large:
        # `1.000 mln`: a million, or a milliard over the limit? Still not ours to guess.
        raise InvalidAmount("amount_invalid", readings=(valid[0].quantize(_CENT),))
    if valid:
        return valid[0].quantize(_CENT)
    if readings:
        # A number, but not an amount a deal can have: say what is wrong with it.
        raise InvalidAmount(_reason(readings[0]))
    if near_miss is not None:
        raise InvalidAmount("amount_invalid", readings=(near_miss,))
    raise InvalidAmount("amount_invalid")


def _split_amount(text: str) -> _Number:
    """Take currency, sign and shorthand off the number; refuse anything else."""
    if len(text) > _LONGEST_INPUT:
        raise InvalidAmount("amount_invalid")
    rest = text.strip().lower()
    # A sign and a currency marker come in either order: `-€5`, `€ -5`.
    rest, currency = _cut(_LEADING_CURRENCY, rest)
    rest, sign = _cut(_SIGN, rest)
    if currency is None:
        rest, currency = _cut(_LEADING_CURRENCY, rest)
    # At the end the currency is outermost: `12k €`, `1,2 mln di euro`.
    rest, _ = _cut(_TRAILING_CURRENCY, rest)
    rest, shorthand = _cut(_TRAILING_SHORTHAND, rest)
    if not _NUMBER.fullmatch(rest):
        raise InvalidAmount("amount_invalid")
    parts = _SEPARATOR.split(rest)
    return _Number(
        groups=tuple(parts[0::2]),
        separators=tuple(s if s in ".," else " " for s in parts[1::2]),
        exponent=_SHORTHAND_EXPONENT[shorthand] if shorthand else 0,
        negative=sign is not None and sign != "+",
    )


def _cut(pattern: re.Pattern[str], text: str) -> tuple[str, str | None]:
    """Remove the pattern's match from `text`; return the rest and group 1 (or the match)."""
    match = pattern.search(text)
    if not match:
        return text, None
    found = match[1] if pattern.groups else match[0]
    return text[: match.start()] + text[match.end() :], found.strip()


def _readings(number: _Number) -> list[Decimal | str]:
    """Each way the number can be read: a value, or the reason that reading is not money.

    Values are built as `digits e exponent` strings, which Decimal takes exactly
    whatever their length (multiplying would round past 28 digits).
    """
    readings: list[Decimal | str] = []
    grouped = _grouped(number.groups, number.separators)
    if grouped is not None:
        readings.append(Decimal(f"{grouped}e{number.exponent}"))
    *head, last = number.separators or ("",)
    # The last separator is a decimal point only if it differs from those before it
    # (`12.500,50`); `12.500.50` repeats the grouping one (a near miss, below).
    whole = _grouped(number.groups[:-1], tuple(head)) if last in (".", ",") else None
    if whole is not None and last not in head:
        fraction = number.groups[-1]
        # Three decimals only after a lone separator: `12.500` may be 12.50 (and
        # `0,500` is 0.50). After grouped thousands (`1,500.000`) or beyond three
        # digits (`12.5000`, `12.3456`) they are not how anyone writes euros, and
        # taking `12.5000` as 12.50 would guess over 12,500 and 125,000.
        if len(fraction) <= 2 or (len(fraction) == 3 and not head):
            readings.append(Decimal(f"{whole}.{fraction}e{number.exponent}"))
        else:
            readings.append("amount_cents")
    return readings


def _grouped(groups: tuple[str, ...], separators: tuple[str, ...]) -> str | None:
    """The integer's digits when every separator groups thousands, else None.

    One separator throughout, a first group of one to three digits, then groups
    of exactly three. No leading zeros (a lone `0` is fine): `0.500` and
    `012.500` cannot be thousands, and `0500` is not how an amount starts.
    """
    first = groups[0]
    if first != "0" and first.startswith("0"):
        return None
    if not separators:
        return first
    if len(set(separators)) != 1 or first == "0" or len(first) > 3:
        return None
    if any(len(group) != 3 for group in groups[1:]):
        return None
    return "".join(groups)


def _problem(value: Decimal) -> str | None:
    """Why a reading is not an amount a deal can have, or None when it is one."""
    if value <= 0:
        return "amount_not_positive"
    if value >= _MAX_AMOUNT:
        return "amount_too_large"
    if value != value.quantize(_CENT):
        return "amount_cents"
    return None


def _reason(reading: Decimal | str) -> str:
    """The catalogue key for a reading that is not an amount."""
    if isinstance(reading, str):
        return reading
    return _problem(reading) or "amount_invalid"


def _near_miss(number: _Number) -> Decimal | None:
    """The one amount a number that no rule reads plausibly means, or None.

    Only two shapes, both repeating one separator, and neither is a guess across
    a factor of 1000: the digits stay where they are.
    - `12.500.50`, `12,500,50`: the thousands separator typed again before the
      cents (a last group of one or two digits) means 12,500.50.
    - `1,50,000`, `12.50.000`: groups of two inside (Indian lakh grouping, or a
      slip) before a last group of three; the digits as typed are 150,000.
    Anything else (`1.2.3,4,5`, `1.2.500`) gets no offer: retyping is safer.
    """
    groups, separators = number.groups, number.separators
    if len(separators) < 2 or len(set(separators)) != 1:
        return None
    if separators[-1] in ".," and len(groups[-1]) <= 2:
        whole = _grouped(groups[:-1], separators[:-1])
        if whole is None:
            return None
        value = Decimal(f"{whole}.{groups[-1]}e{number.exponent}")
    elif (
        len(groups[-1]) == 3
        and 1 <= len(groups[0]) <= 3
        and not groups[0].startswith("0")
        and all(len(group) in (2, 3) for group in groups[1:-1])
    ):
        value = Decimal(f"{''.join(groups)}e{number.exponent}")
    else:
        return None
    return None if _problem(value) else value.quantize(_CENT)


# --- Dates -------------------------------------------------------------------

_ISO_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
_NUMERIC_DATE = re.compile(r"^(\d{1,4})[/.\-](\d{1,2})[/.\-](\d{1,4})$")
# "5 Jan 2027", "5 gennaio 2027", "5 gen. 2027": the day, the month's name, the year.
_NAMED_DATE = re.compile(r"^(\d{1,2})\s+([^\W\d_]+)\.?\s+(\d{4})$")
# Month names are read in these languages whatever the user's: English and Italian.
_MONTH_LOCALES = ("en", "it")


def parse_date(text: str, *, locale: str) -> dt.date:
    """Read `2026-12-31`, `31/12/2026`, `31.12.2026`, `31-12-2026` (day first as the
    locale) or `31 Dec 2026` (the month by its name, in English or Italian)."""
    cleaned = text.strip()
    if len(cleaned) > _LONGEST_INPUT:
        raise InvalidDate("date_invalid")
    iso = _ISO_DATE.match(cleaned)
    if iso:
        return _make_date(int(iso[1]), int(iso[2]), int(iso[3]))
    named = _NAMED_DATE.match(cleaned)
    if named:
        month = _month_numbers().get(named[2].casefold())
        if month is None:
            raise InvalidDate("date_invalid")
        return _make_date(int(named[3]), month, int(named[1]))
    numeric = _NUMERIC_DATE.match(cleaned)
    if not numeric:
        raise InvalidDate("date_invalid")
    parts = {field: int(numeric[i + 1]) for i, field in enumerate(_date_field_order(locale))}
    year = parts["y"]
    if year < 100:
        year += 2000  # `31/12/26`: nobody plans a deal in the first century
    return _make_date(year, parts["m"], parts["d"])


@cache
def _month_numbers() -> dict[str, int]:
    """Each month's names, wide and abbreviated, as Babel writes them: name -> number."""
    numbers: dict[str, int] = {}
    for language in _MONTH_LOCALES:
        for width in ("wide", "abbreviated"):
            names = get_month_names(width, locale=Locale.parse(language))
            numbers.update(
                {str(name).casefold().rstrip("."): month for month, name in names.items()}
            )
    return numbers


def _date_field_order(locale: str) -> tuple[str, str, str]:
    """Return the order of day, month and year in the locale's short date format."""
    pattern = get_date_format("short", locale=Locale.parse(locale)).pattern.lower()
    positions = {field: pattern.find(field) for field in ("d", "m", "y")}
    order = sorted(positions, key=lambda field: positions[field])
    return (order[0], order[1], order[2])


def _make_date(year: int, month: int, day: int) -> dt.date:
    try:
        return dt.date(year, month, day)
    except ValueError as exc:
        raise InvalidDate("date_invalid") from exc


def check_close_date(close: dt.date, *, today: dt.date) -> dt.date:
    """Accept an expected close date from today to five years ahead."""
    if close < today:
        raise InvalidDate("date_past")
    if close > today + dt.timedelta(days=5 * 366):
        raise InvalidDate("date_too_far")
    return close


# Characters that never belong in a name or a product: bidirectional overrides (they
# make text display in another order than it is stored) and the byte-order mark.
_INVISIBLE = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff")


def strip_control(text: str) -> str:
    """Drop control characters, lone surrogates and display overrides; whitespace becomes a space.

    A NUL byte makes every PostgreSQL write of the row fail and a lone surrogate
    cannot be encoded at all: text from chat and from files passes here before it
    is stored, so both databases keep the same, clean text.
    """
    if text.isprintable():
        # Nothing to drop: printable text has no control, surrogate or format
        # characters and no whitespace but the plain space. The common case, fast.
        return text
    kept = []
    for char in text:
        if char.isspace():
            kept.append(" ")
        elif char not in _INVISIBLE and unicodedata.category(char) not in ("Cc", "Cs"):
            kept.append(char)
    return "".join(kept)


def clean_text(text: str, *, max_length: int) -> str:
    """Drop control characters, collapse whitespace; refuse empty or over-long free text."""
    cleaned = " ".join(strip_control(text).split())
    if not cleaned:
        raise InvalidText("text_empty", limit=max_length)
    if len(cleaned) > max_length:
        raise InvalidText("text_too_long", limit=max_length)
    return cleaned
