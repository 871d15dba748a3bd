"""A registration in progress (/new): what was typed so far and what the bot asks next."""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

# A registration left unanswered this long is dropped; its buttons then answer "ended".
DRAFT_LIFETIME = dt.timedelta(hours=2)
# Any conversation untouched this long is deleted by the scheduled tick: it holds VAT
# numbers and names nobody is going to finish typing.
FORGET_AFTER = dt.timedelta(days=1)


def left_too_long(touched_at: dt.datetime, now: dt.datetime) -> bool:
    """Whether a conversation last touched then is over: past DRAFT_LIFETIME."""
    return now - touched_at > DRAFT_LIFETIME


class Step(StrEnum):
    """What the conversation waits for next."""

    VAT = "vat"
    COMPANY = "company"
    VALUE = "value"
    PRODUCT = "product"
    CLOSE = "close"
    CONFIRM = "confirm"
    # A contested refusal first asks why, then for evidence (PRODUCT.md §5).
    REASON = "reason"
    EVIDENCE = "evidence"
    # Registered, but the confirmation has not reached the user yet: the next update
    # from them delivers it.
    REGISTERED = "registered"


# The questions, in the order PRODUCT.md §2 asks them (COMPANY only for unknown customers).
NEXT_STEP = {
    Step.COMPANY: Step.VALUE,
    Step.VALUE: Step.PRODUCT,
    Step.PRODUCT: Step.CLOSE,
    Step.CLOSE: Step.CONFIRM,
}


def after_evidence(draft: Draft) -> Step:
    """A contest goes on with the usual questions, the name only when the vendor has none."""
    return Step.VALUE if draft.known_name else Step.COMPANY


def new_draft_id() -> str:
    """A short random id that ties a conversation's buttons to that conversation."""
    return secrets.token_urlsafe(6)


@dataclass
class Draft:
    """Everything typed so far in one /new conversation, and what the bot quoted."""

    touched_at: dt.datetime
    id: str = field(default_factory=new_draft_id)
    step: Step = Step.VAT
    vat: str | None = None
    # The vendor's name for the customer; None asks the salesperson for one.
    known_name: str | None = None
    quoted_amount: Decimal | None = None
    currency: str = "EUR"
    protected_until: dt.date | None = None
    customer_name: str | None = None
    deal_value: Decimal | None = None
    # Readings of an amount offered as buttons ("€12,500.00" / "€12.50").
    amount_choices: tuple[Decimal, ...] = ()
    product: str | None = None
    expected_close: dt.date | None = None
    reference: str | None = None
    # A question failed to reach the user: their next message gets it again.
    interrupted: bool = False
    # A contest of a refusal: why, and the evidence (Telegram file: kind, id, name).
    contest: bool = False
    reason: str | None = None
    evidence: tuple[str, ...] = ()
    # The customer's name as VIES gave it: offered as the company name in one tap.
    vies_name: str | None = None

    def is_stale(self, now: dt.datetime) -> bool:
        return left_too_long(self.touched_at, now)

    def to_plain(self) -> dict[str, Any]:
        """The draft as JSON-ready values: text, numbers, booleans, lists, None."""
        plain: dict[str, Any] = {}
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if isinstance(value, dt.datetime | dt.date):
                value = value.isoformat()
            elif isinstance(value, Decimal):
                value = str(value)
            elif isinstance(value, tuple):
                value = [str(v) for v in value]
            plain[item.name] = value
        return plain

    @classmethod
    def from_plain(cls, plain: dict[str, Any]) -> Draft:
        def decimal(value: str | None) -> Decimal | None:
            return None if value is None else Decimal(value)

        def day(value: str | None) -> dt.date | None:
            return None if value is None else dt.date.fromisoformat(value)

        return cls(
            touched_at=dt.datetime.fromisoformat(plain["touched_at"]),
            id=plain["id"],
            step=Step(plain["step"]),
            vat=plain["vat"],
            known_name=plain["known_name"],
            quoted_amount=decimal(plain["quoted_amount"]),
            currency=plain["currency"],
            protected_until=day(plain["protected_until"]),
            customer_name=plain["customer_name"],
            deal_value=decimal(plain["deal_value"]),
            amount_choices=tuple(Decimal(v) for v in plain["amount_choices"]),
            product=plain["product"],
            expected_close=day(plain["expected_close"]),
            reference=plain["reference"],
            interrupted=plain["interrupted"],
            # Drafts kept before contests existed have none of these.
            contest=plain.get("contest", False),
            reason=plain.get("reason"),
            evidence=tuple(plain.get("evidence", ())),
            vies_name=plain.get("vies_name"),
        )
