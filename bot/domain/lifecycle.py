"""The lifecycle of a registration (PRODUCT.md §1): which moves are allowed."""

from __future__ import annotations

from enum import StrEnum

from bot.domain.errors import TransitionNotAllowed


class Status(StrEnum):
    QUALIFIED = "qualified"
    WON = "won"
    APPROVED = "approved"
    PAID = "paid"
    LOST = "lost"
    EXPIRED = "expired"
    REJECTED = "rejected"


_ALLOWED: dict[Status, frozenset[Status]] = {
    Status.QUALIFIED: frozenset({Status.WON, Status.LOST, Status.EXPIRED}),
    Status.WON: frozenset({Status.APPROVED, Status.REJECTED}),
    Status.APPROVED: frozenset({Status.PAID}),
}

# Outcomes that hand the customer back to the programme.
RELEASING = frozenset({Status.LOST, Status.EXPIRED, Status.REJECTED})
# Incentives still to come, and counted in a partner's "expected" total.
OPEN = frozenset({Status.QUALIFIED, Status.WON})


def check_transition(current: str, target: Status) -> None:
    if target not in _ALLOWED.get(Status(current), frozenset()):
        raise TransitionNotAllowed(current=current, target=target.value)
