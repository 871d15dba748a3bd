"""Customers' names as staff compare them: legal forms, case, accents and punctuation
set aside (PRODUCT.md §5, similar names)."""

from __future__ import annotations

import re
import unicodedata

from models import NAME_BLOCK_LENGTH

_LEGAL_FORMS = frozenset(
    {"srl", "srls", "spa", "snc", "sas", "sapa", "soc", "coop", "societa", "cooperativa", "c"}
)
_NOT_A_WORD = re.compile(r"[^0-9a-z]+")


def normalised_name(name: str) -> str:
    """`Rossi & C. S.r.l.` and `ROSSI srl` both read `rossi`."""
    plain = unicodedata.normalize("NFKD", name)
    plain = "".join(ch for ch in plain if not unicodedata.combining(ch)).casefold()
    words = _NOT_A_WORD.sub(" ", plain.replace(".", "")).split()
    return " ".join(word for word in words if word not in _LEGAL_FORMS)


def name_block(name: str) -> str | None:
    """The key similar names share: looked up by index, compared closely only among equals."""
    words = normalised_name(name).split()
    return words[0][:NAME_BLOCK_LENGTH] if words else None
