"""What staff decide (PRODUCT.md §5): the kinds of item, their outcomes, their deadline."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum


class ItemKind(StrEnum):
    WON = "won"  # a won deal to approve or reject
    DISPUTE = "dispute"  # a refusal contested, to grant or refuse
    EXTENSION = "extension"  # a request for more time, to grant or refuse


class ItemOutcome(StrEnum):
    APPROVED = "approved"
    REJECTED = "rejected"
    GRANTED = "granted"
    REFUSED = "refused"
    # The registration moved on otherwise (a dispute granted against it): nothing to decide.
    CLOSED = "closed"


def outcome_of(kind: ItemKind, *, yes: bool) -> ItemOutcome:
    """A yes or no of staff, in the words of the item's kind."""
    if kind == ItemKind.WON:
        return ItemOutcome.APPROVED if yes else ItemOutcome.REJECTED
    return ItemOutcome.GRANTED if yes else ItemOutcome.REFUSED


def lateness(due_at: dt.datetime, now: dt.datetime) -> dt.timedelta | None:
    """How late an item is at `now`, or None while it is not due yet."""
    late = now - due_at
    return late if late > dt.timedelta(0) else None


# Files the Bot API lets a bot download (getFile): larger ones could never be opened.
MAX_FILE_BYTES = 20 * 1024 * 1024
# Documents kept as evidence or proof: what an order or an invoice comes as.
DOCUMENT_TYPES = frozenset(
    {
        "application/pdf",
        "image/jpeg",
        "image/png",
        "image/heic",
        "image/webp",
        "application/msword",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.ms-excel",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.oasis.opendocument.text",
        "application/vnd.oasis.opendocument.spreadsheet",
        "message/rfc822",
    }
)
