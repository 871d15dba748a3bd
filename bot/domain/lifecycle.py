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
    # A refusal contested: protects nothing, counts for nothing, until staff decide.
    DISPUTED = "disputed"
    # A dispute staff refused: counts for nothing.
    REFUSED = "refused"
    # Protection ended by staff, who granted another partner's dispute: still counts
    # for its partner's loyalty.
    REVOKED = "revoked"


_ALLOWED: dict[Status, frozenset[Status]] = {
    Status.QUALIFIED: frozenset({Status.WON, Status.LOST, Status.EXPIRED, Status.REVOKED}),
    Status.WON: frozenset({Status.APPROVED, Status.REJECTED, Status.REVOKED}),
    Status.APPROVED: frozenset({Status.PAID}),
    Status.DISPUTED: frozenset({Status.QUALIFIED, Status.REFUSED}),
}

# Outcomes that hand the customer back to the programme.
RELEASING = frozenset({Status.LOST, Status.EXPIRED, Status.REJECTED, Status.REVOKED})
# Registrations that do not make a partner more loyal: a deal staff rejected, a
# dispute refused or still waiting.
NOT_COUNTED = frozenset({Status.REJECTED, Status.DISPUTED, Status.REFUSED})
# Incentives still to come, and counted in a partner's "expected" total.
OPEN = frozenset({Status.QUALIFIED, Status.WON})


def check_transition(current: str, target: Status) -> None:
    if target not in _ALLOWED.get(Status(current), frozenset()):
        raise TransitionNotAllowed(current=current, target=target.value)
