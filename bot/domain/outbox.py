"""The messages the bot starts itself (broadcasts, reminders): their states, and how one send went.

Each such message is a row written before it is sent. Its life is the same whatever
the kind: claimed for a run, handed over to Telegram (from then on maybe delivered,
never sent again), then the send's outcome is recorded. Only the names of the states
differ between the tables, as they were first written; their values are stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple


class Outcome(StrEnum):
    """How one send went."""

    SENT = "sent"
    BLOCKED = "blocked"  # 403: the person blocked the bot
    REFUSED = "refused"  # Telegram refused it for good (a 400 and the like)
    RETRY = "retry"  # it surely never reached Telegram: safe to send again
    UNSURE = "unsure"  # it may have been delivered: never sent again
    SKIPPED = "skipped"  # not sent: no longer wanted (its person blocked the bot moments ago)


@dataclass(frozen=True)
class Result:
    """One row's send: which row, to whom, how it went and why (no personal data)."""

    id: int
    salesperson_id: int
    outcome: Outcome
    reason: str | None = None


class BroadcastStatus(StrEnum):
    SENDING = "sending"
    DONE = "done"


class DeliveryStatus(StrEnum):
    """One recipient of a broadcast."""

    PENDING = "pending"
    SENDING = "sending"  # handed to Telegram: never sent again
    DELIVERED = "delivered"
    BLOCKED = "blocked"
    RETRY = "retry"  # failed before reaching Telegram: due again at `next_attempt_at`
    FAILED = "failed"


class ReminderKind(StrEnum):
    NUDGE = "nudge"
    FOLLOWUP = "followup"
    EXPIRY = "expiry"


class ReminderStatus(StrEnum):
    """One reminder to one person."""

    CLAIMED = "claimed"  # taken by a tick, not tried yet: safe to take again
    SENDING = "sending"  # handed to Telegram: maybe delivered, never sent again
    SENT = "sent"
    RETRY = "retry"  # failed before reaching Telegram: the next tick tries again
    FAILED = "failed"
    BLOCKED = "blocked"
    SKIPPED = "skipped"  # no longer due when its turn came


class AfterSend(NamedTuple):
    """What a send's outcome makes of the row, in each table's words."""

    delivery: DeliveryStatus
    reminder: ReminderStatus


# One that may have gone stays "sending": unconfirmed, never sent again.
AFTER_SEND = {
    Outcome.SENT: AfterSend(DeliveryStatus.DELIVERED, ReminderStatus.SENT),
    Outcome.BLOCKED: AfterSend(DeliveryStatus.BLOCKED, ReminderStatus.BLOCKED),
    Outcome.REFUSED: AfterSend(DeliveryStatus.FAILED, ReminderStatus.FAILED),
    Outcome.RETRY: AfterSend(DeliveryStatus.RETRY, ReminderStatus.RETRY),
    Outcome.UNSURE: AfterSend(DeliveryStatus.SENDING, ReminderStatus.SENDING),
    Outcome.SKIPPED: AfterSend(DeliveryStatus.FAILED, ReminderStatus.SKIPPED),
}
