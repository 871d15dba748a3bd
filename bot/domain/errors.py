"""Domain errors: services raise them, handlers and the CLI put them in words.

Problems of the setup (a setting, the database, a file) are not among them: they are
bot/problems.py's `SetupError`s."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from bot.domain.actors import Actor
from bot.problems import SetupError


class DomainError(Exception):
    """Base of every error a user can be told about."""


class RulesError(SetupError):
    """The rules file is missing, unreadable or inconsistent."""


@dataclass
class InvalidInput(DomainError):
    """A typed value could not be taken as it is; `reason` is a catalogue key."""

    reason: str

    def __str__(self) -> str:
        return self.reason


class InvalidVat(InvalidInput):
    """The text is not a valid VAT number."""


@dataclass
class InvalidAmount(InvalidInput):
    """The text is not an amount to take as it is.

    `readings` are amounts to offer as buttons, never to take silently: two when
    the text reads two ways (reason `amount_ambiguous`: `12.500` is 12,500.00 or
    12.50), one when a near miss has one likely meaning ("did you mean 12,500.50?").
    """

    readings: tuple[Decimal, ...] = ()

    def __str__(self) -> str:
        if not self.readings:
            return self.reason
        return f"{self.reason} ({' or '.join(str(r) for r in self.readings)})"


class InvalidDate(InvalidInput):
    """The text is not a valid date, or not one allowed here."""


@dataclass
class InvalidText(InvalidInput):
    """Free text that is empty or longer than `limit` characters."""

    limit: int = 0


class Refusal(DomainError):
    """The verdict on a customer: it cannot be registered now, and why."""


@dataclass
class CustomerNotNew(Refusal):
    """The customer bought from the vendor within the lookback period."""

    last_purchase: dt.date


@dataclass
class CustomerProtected(Refusal):
    """Another partner's registration protects the customer until `until`."""

    until: dt.date


@dataclass
class AlreadyRegistered(Refusal):
    """The partner itself already protects this customer."""

    reference: str
    until: dt.date


class NoIncentiveInForce(Refusal):
    """No incentive version is effective on the registration date."""


@dataclass
class UnknownPartner(DomainError):
    """No partner has this code."""

    code: str

    def __str__(self) -> str:
        return f"no partner with code {self.code!r}"


class InviteInvalid(DomainError):
    """The invite is unknown, already used or expired."""


class NotLinked(DomainError):
    """The Telegram account is not linked to a partner."""


class RegistrationNotFound(DomainError):
    """No registration with this reference belongs to the partner."""


@dataclass
class AlreadyDecided(DomainError):
    """A staff member decided on the won deal first: what it is now, and who decided."""

    status: str
    by: Actor
    reason: str | None = None


@dataclass
class TransitionNotAllowed(DomainError):
    """The registration cannot move from its status to the one asked."""

    current: str
    target: str


class NothingToContest(DomainError):
    """The customer is free now: it is registered with /new, not contested."""


class CannotContestOwn(DomainError):
    """The protection belongs to the partner itself."""


@dataclass
class DisputeAlreadyOpen(DomainError):
    """The partner already contests this customer: one open dispute at a time."""

    reference: str


class ContestTooLate(DomainError):
    """The refusal is older than the rules' `contest_days`."""


@dataclass
class MoreTimeNotAllowed(DomainError):
    """More time cannot be asked: `why` is window, cap, waiting or status."""

    why: str


@dataclass
class CustomerTakenMeanwhile(DomainError):
    """Granting a dispute found another registration protecting the customer now."""

    reference: str


@dataclass
class FileRefused(DomainError):
    """A file sent as evidence or proof cannot be kept: `why` is too_big or kind."""

    why: str
