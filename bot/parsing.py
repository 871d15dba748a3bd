"""Parsers for what people type: VAT numbers, amounts and dates.

Each takes any string and returns a value or raises an `InvalidInput` with a
catalogue key for the reason; none of them may fail any other way.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation

from babel import Locale
from babel.dates import get_date_format
from babel.numbers import NumberFormatError, format_decimal, parse_decimal
from stdnum.eu import vat as eu_vat
from stdnum.exceptions import (
    InvalidChecksum,
    InvalidComponent,
    InvalidLength,
    ValidationError,
)

from bot.errors import InvalidAmount, InvalidDate, InvalidInput, InvalidVat

# Separators people and spreadsheets put inside VAT numbers.
_VAT_NOISE = re.compile(r"[\s.\-/,_]+")
_COUNTRY_PREFIX = re.compile(r"^[A-Z]{2}")
_MAX_AMOUNT = Decimal("1000000000")  # a deal above a billion is a typo
_CENT = Decimal("0.01")
_CURRENCY_NOISE = re.compile(r"(?i)(€|eur(?:o|os)?)")
_ISO_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
_NUMERIC_DATE = re.compile(r"^(\d{1,4})[/.\-](\d{1,2})[/.\-](\d{1,4})$")
_LONGEST_INPUT = 64


def normalise_vat(text: str, *, default_country: str) -> str:
    """Return the VAT number as country prefix plus compact digits (`IT12345670587`)."""
    compact = _VAT_NOISE.sub("", text).upper()
    if not compact or len(compact) > _LONGEST_INPUT:
        raise InvalidVat("vat_empty" if not compact else "vat_invalid")
    if not _COUNTRY_PREFIX.match(compact):
        compact = default_country.upper() + compact
    try:
        return str(eu_vat.validate(compact))
    except ValidationError as exc:
        raise InvalidVat(_vat_reason(exc)) from exc


def _vat_reason(exc: ValidationError) -> str:
    if isinstance(exc, InvalidChecksum):
        return "vat_checksum"
    if isinstance(exc, InvalidLength):
        return "vat_length"
    if isinstance(exc, InvalidComponent):
        return "vat_country"
    return "vat_invalid"


def parse_amount(text: str, *, locale: str) -> Decimal:
    """Read a positive amount typed the way the locale writes numbers."""
    cleaned = _CURRENCY_NOISE.sub("", text).strip().replace(" ", "").replace("\u00a0", "")
    if not cleaned or len(cleaned) > _LONGEST_INPUT:
        raise InvalidAmount("amount_invalid")
    try:
        value = parse_decimal(cleaned, locale=locale, strict=True)
    except NumberFormatError as exc:
        suggestion = _amount_suggestion(exc, locale)
        raise InvalidAmount("amount_invalid", suggestion) from exc
    except (InvalidOperation, ValueError) as exc:
        raise InvalidAmount("amount_invalid") from exc
    if not value.is_finite():
        raise InvalidAmount("amount_invalid")
    if value <= 0:
        raise InvalidAmount("amount_not_positive")
    if value >= _MAX_AMOUNT:
        raise InvalidAmount("amount_too_large")
    if value != value.quantize(_CENT):
        raise InvalidAmount("amount_cents")
    return value.quantize(_CENT)


def _amount_suggestion(exc: NumberFormatError, locale: str) -> str | None:
    """Offer the amount the text means in the other convention (`12,500.50` ↔ `12.500,50`).

    People switch between Italian and English separators; Babel's own
    suggestions guess at misplaced grouping instead, which reads worse.
    """
    other = "en_GB" if Locale.parse(locale).language == "it" else "it_IT"
    try:
        value = parse_decimal(str(exc).split("'")[1], locale=other, strict=True)
    except (NumberFormatError, InvalidOperation, ValueError, IndexError):
        return None
    if not value.is_finite() or not 0 < value < _MAX_AMOUNT or value != value.quantize(_CENT):
        return None
    return format_amount(value, locale=locale)


def format_amount(value: Decimal, *, locale: str) -> str:
    """Write an amount as the locale does, with cents only when there are any."""
    pattern = "#,##0" if value == value.to_integral_value() else "#,##0.00"
    return str(format_decimal(value, format=pattern, locale=locale))


def parse_date(text: str, *, locale: str) -> dt.date:
    """Read `2026-12-31`, `31/12/2026`, `31.12.2026` or `31-12-2026` (day first as the locale)."""
    cleaned = text.strip()
    if len(cleaned) > _LONGEST_INPUT:
        raise InvalidDate("date_invalid")
    iso = _ISO_DATE.match(cleaned)
    if iso:
        return _make_date(int(iso[1]), int(iso[2]), int(iso[3]))
    numeric = _NUMERIC_DATE.match(cleaned)
    if not numeric:
        raise InvalidDate("date_invalid")
    parts = {field: int(numeric[i + 1]) for i, field in enumerate(_date_field_order(locale))}
    year = parts["y"]
    if year < 100:
        year += 2000  # `31/12/26`: nobody plans a deal in the first century
    return _make_date(year, parts["m"], parts["d"])


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


def clean_text(text: str, *, max_length: int) -> str:
    """Collapse whitespace; refuse empty or over-long free text."""
    cleaned = " ".join(text.split())
    if not cleaned:
        raise InvalidInput("text_empty")
    if len(cleaned) > max_length:
        raise InvalidInput("text_too_long")
    return cleaned
