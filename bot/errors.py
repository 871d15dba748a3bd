"""Domain errors: services raise them, handlers and the CLI put them in words."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


class DomainError(Exception):
    """Base of every error a user can be told about."""


class RulesError(DomainError):
    """The rules file is missing, unreadable or inconsistent."""


@dataclass
class InvalidInput(DomainError):
    """A typed value could not be understood.

    `reason` is a catalogue key; `suggestion` an optional corrected form to offer.
    """

    reason: str
    suggestion: str | None = None

    def __str__(self) -> str:
        return self.reason if self.suggestion is None else f"{self.reason} ({self.suggestion})"


class InvalidVat(InvalidInput):
    """The text is not a valid VAT number."""


class InvalidAmount(InvalidInput):
    """The text is not a valid amount of money."""


class InvalidDate(InvalidInput):
    """The text is not a valid date, or not one allowed here."""


@dataclass
class CustomerNotNew(DomainError):
    """The customer bought from the vendor within the lookback period."""

    last_purchase: dt.date


@dataclass
class CustomerProtected(DomainError):
    """Another partner's registration protects the customer until `until`."""

    until: dt.date


@dataclass
class AlreadyRegistered(DomainError):
    """The partner itself already protects this customer."""

    reference: str
    until: dt.date


class NoIncentiveInForce(DomainError):
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
class TransitionNotAllowed(DomainError):
    """The registration cannot move from its status to the one asked."""

    current: str
    target: str
