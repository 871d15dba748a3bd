"""Who moved a registration, as a person reads it: never an internal id."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ActorKind(StrEnum):
    SALESPERSON = "salesperson"
    STAFF = "staff"
    SYSTEM = "system"  # the bot itself: an expiry, say
    PAYOUTS = "payouts"  # `pai-bot payouts mark-paid`
    FORMER = "former"  # a salesperson who asked to be forgotten


@dataclass(frozen=True)
class Actor:
    """A kind, and the person's name where the bot knows one."""

    kind: ActorKind
    name: str | None = None
