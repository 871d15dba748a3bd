"""VAT numbers found in a text read off a photo or a PDF (PRODUCT.md §6).

An invoice or a business card carries a VAT number in many shapes: `P.IVA
00743110157`, `VAT IT 00743110157`, `IT-007.431.101.57`, `Partita IVA: 00743 110
157`, and OCR adds its own noise (`O` for `0`, `l` for `1`). A candidate is any
run of digits, possibly after a country prefix and broken by spaces, dots or
dashes, that passes its country's check digit (python-stdnum, through
`normalise_vat`). An invoice names two companies: both are offered, the one after
a VAT label first, and the salesperson taps the right one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.domain.errors import InvalidVat
from bot.domain.parsing import normalise_vat, vat_digits_for

MAX_CANDIDATES = 3
# Words printed before a VAT number on Italian and other EU documents, uppercased.
_LABEL = re.compile(
    r"(P\s*\.?\s*IVA|PARTITA\s+I\.?V\.?A|IVA|VAT(?:\s+(?:NO|NUMBER|REG))?|"
    r"UST-?ID(?:NR)?|TVA|NIF|CIF|BTW|MWST|C\.?F\.?\s*/\s*P\.?\s*IVA)\W{0,6}$"
)
# A prefix of two letters, then digits broken by at most one separator at a time.
# OCR's look-alikes of digits (O, o, l, I, |) are allowed inside the digits.
_RUN = re.compile(
    r"(?<![A-Z0-9])(?P<prefix>[A-Z]{2}[\s.\-:]{0,2})?"
    r"(?P<body>[0-9Oo][0-9Ool|I]*(?:[\s.\-/][0-9Ool|I]+)*)"
)
# Member states' numbers with letters in them (ATU…, NL…B01, ESB…, IE…, FR with two
# letters or digits first, CY…L): a prefix, then 8 to 14 letters and digits.
_LETTERED = re.compile(
    r"(?<![A-Z0-9])(?P<prefix>AT|BE|BG|CY|CZ|DE|DK|EE|EL|ES|FI|FR|GR|HR|HU|IE|IT|LT|LU|LV|MT"
    r"|NL|PL|PT|RO|SE|SI|SK|XI)[ .\-]?(?P<body>[0-9A-Z](?:[ .\-]?[0-9A-Z]){7,13})(?![A-Z0-9])"
)
_LOOK_ALIKES = str.maketrans({"O": "0", "o": "0", "l": "1", "I": "1", "|": "1"})
_SEPARATOR = re.compile(r"[\s.\-/]")
# Foreign VAT numbers run from 8 to 12 characters after the prefix; Italian ones 11.
_SHORTEST, _LONGEST = 8, 12
_LABEL_REACH = 30  # characters before a number in which a label counts


@dataclass(frozen=True)
class _Found:
    vat: str
    labelled: bool
    prefixed: bool
    at: int


def vat_candidates(text: str, *, default_country: str) -> list[str]:
    """The VAT numbers in `text` that pass their check digit, best first, at most three:
    after a VAT label first, then written with a country prefix, then in reading order."""
    upper = text.upper()
    found: dict[str, _Found] = {}

    def keep(vat: str, prefixed: bool, at: int) -> None:
        labelled = bool(_LABEL.search(upper[max(0, at - _LABEL_REACH) : at]))
        earlier = found.get(vat)
        if earlier is None or (labelled and not earlier.labelled):
            found[vat] = _Found(vat, labelled, prefixed, at)

    for match in _RUN.finditer(upper):
        for vat, prefixed in _readings(match, default_country):
            keep(vat, prefixed, match.start())
    for match in _LETTERED.finditer(upper):
        lettered = _valid(match.group("prefix") + match.group("body"), default_country)
        if lettered is not None:
            keep(lettered, True, match.start())
    ranked = sorted(found.values(), key=lambda f: (not f.labelled, not f.prefixed, f.at))
    return [f.vat for f in ranked[:MAX_CANDIDATES]]


def _readings(match: re.Match[str], default_country: str) -> list[tuple[str, bool]]:
    """Every valid VAT number a run can be read as: its groups joined whole, or any
    stretch of consecutive groups (a phone number printed beside it is left out)."""
    prefix = re.sub(r"[^A-Z]", "", match.group("prefix") or "")
    groups = [g.translate(_LOOK_ALIKES) for g in _SEPARATOR.split(match.group("body")) if g]
    # A bare number is the programme's country's: only its length is worth a check (a
    # page dense with numbers would otherwise take seconds).
    bare_length = vat_digits_for(default_country)
    readings: list[tuple[str, bool]] = []
    for start in range(len(groups)):
        digits = ""
        for group in groups[start:]:
            digits += group
            if len(digits) > _LONGEST:
                break
            if len(digits) < _SHORTEST or not digits.isdigit():
                continue
            # A prefix belongs to the groups right after it, not to later ones; two
            # letters that are no prefix (`VAT No.`, `CF`, `PI:`) leave the bare number.
            if start == 0 and prefix:
                vat = _valid(prefix + digits, default_country)
                if vat is not None:
                    readings.append((vat, True))
                    continue
            if bare_length is None or len(digits) == bare_length:
                vat = _valid(digits, default_country)
                if vat is not None:
                    readings.append((vat, False))
    return readings


def _valid(candidate: str, default_country: str) -> str | None:
    try:
        return normalise_vat(candidate, default_country=default_country)
    except InvalidVat:
        return None
