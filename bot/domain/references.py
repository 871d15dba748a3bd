"""Registration references: `PAI-` and six characters nobody can misread or count from."""

from __future__ import annotations

import re
import secrets

# No 0/O, 1/I/L: a reference read over the phone or copied by hand stays right.
ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
PREFIX = "PAI-"
LENGTH = 6
_SHAPE = re.compile(rf"^{PREFIX}[{ALPHABET}]{{{LENGTH}}}$")


def new_reference() -> str:
    """A random reference (31^6, about 890 million): it says nothing about how many exist."""
    return PREFIX + "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def is_reference(text: str) -> bool:
    return bool(_SHAPE.match(text))
