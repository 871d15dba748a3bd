"""Plain values the services hand out: ORM objects never leave the service layer."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypedDict

from bot.domain.lifecycle import OPEN, Status
from bot.domain.rules import LoyaltyStanding, Quote
from models import Partner, Registration, Salesperson


@dataclass(frozen=True)
class Account:
    """A salesperson as the handlers see it: who they are and for which partner."""

    salesperson_id: int
    telegram_user_id: int
    partner_id: int
    partner_code: str
    company: str
    level: str
    language: str | None
    telegram_language: str | None
    reminders_enabled: bool

    @classmethod
    def from_columns(cls, columns: Mapping[Any, Any]) -> Account:
        """The account from a row whose columns are named as its fields."""
        return cls(**{item.name: columns[item.name] for item in dataclasses.fields(cls)})

    @classmethod
    def of(cls, salesperson: Salesperson, partner: Partner) -> Account:
        assert salesperson.id is not None
        assert partner.id is not None
        return cls(
            salesperson_id=salesperson.id,
            telegram_user_id=salesperson.telegram_user_id,
            partner_id=partner.id,
            partner_code=partner.code,
            company=partner.company,
            level=partner.level,
            language=salesperson.language,
            telegram_language=salesperson.telegram_language,
            reminders_enabled=salesperson.reminders_enabled,
        )


@dataclass(frozen=True)
class PartnerView:
    code: str
    company: str
    level: str

    @classmethod
    def of(cls, partner: Partner) -> PartnerView:
        return cls(code=partner.code, company=partner.company, level=partner.level)


@dataclass(frozen=True)
class SalespersonView:
    """A linked Telegram account as staff see it."""

    telegram_user_id: int
    partner_code: str
    display_name: str | None
    username: str | None
    linked_at: dt.datetime
    last_seen_at: dt.datetime | None

    @classmethod
    def of(cls, salesperson: Salesperson, partner_code: str) -> SalespersonView:
        return cls(
            telegram_user_id=salesperson.telegram_user_id,
            partner_code=partner_code,
            display_name=salesperson.display_name,
            username=salesperson.username,
            linked_at=salesperson.linked_at,
            last_seen_at=salesperson.last_seen_at,
        )


@dataclass(frozen=True)
class Verdict:
    """The customer qualifies: what a registration today would earn and protect."""

    vat: str
    # The customer's name from the vendor's history; never a name another partner typed.
    known_name: str | None
    quote: Quote
    registered_on: dt.date
    protected_until: dt.date
    last_purchase: dt.date | None


@dataclass(frozen=True)
class RegistrationView:
    id: int
    reference: str
    vat: str
    customer_name: str
    status: str
    registered_on: dt.date
    protected_until: dt.date
    deal_value: Decimal
    product: str
    expected_close: dt.date
    # The incentive as quoted at Confirm, frozen: amount, currency, version, level, loyalty.
    quote: Quote
    # Requests for more time made, and whether one waits for staff.
    extensions: int = 0
    awaiting_extension: bool = False

    @property
    def currency(self) -> str:
        return self.quote.currency

    def protects_on(self, today: dt.date) -> bool:
        """Whether it holds the customer today: open or won, and its protection not past."""
        return Status(self.status) in OPEN and self.protected_until >= today

    def open_on(self, today: dt.date) -> bool:
        """Whether the partner can still report its outcome (Won / Lost)."""
        return self.status == Status.QUALIFIED and self.protected_until >= today

    @classmethod
    def of(cls, registration: Registration) -> RegistrationView:
        assert registration.id is not None
        return cls(
            id=registration.id,
            reference=registration.reference,
            vat=registration.vat,
            customer_name=registration.customer_name,
            status=registration.status,
            registered_on=registration.registered_on,
            protected_until=registration.protected_until,
            deal_value=registration.deal_value,
            product=registration.product,
            expected_close=registration.expected_close,
            quote=frozen_quote(registration),
            extensions=registration.extensions,
            awaiting_extension=registration.awaiting_extension,
        )


def frozen_quote(registration: Registration) -> Quote:
    """The quote a registration keeps in its columns, as one value."""
    return Quote(
        amount=registration.incentive_amount,
        currency=registration.currency,
        version=registration.incentive_version,
        level=registration.level,
        loyalty_min_registrations=registration.loyalty_min_registrations,
        loyalty_multiplier=registration.loyalty_multiplier,
        earlier_registrations=registration.loyalty_count,
    )


class QuoteColumns(TypedDict):
    incentive_amount: Decimal
    currency: str
    incentive_version: dt.date
    level: str
    loyalty_min_registrations: int | None
    loyalty_multiplier: Decimal | None
    loyalty_count: int


def quote_columns(quote: Quote) -> QuoteColumns:
    """A quote as a registration's columns keep it: the other way of `frozen_quote`."""
    return {
        "incentive_amount": quote.amount,
        "currency": quote.currency,
        "incentive_version": quote.version,
        "level": quote.level,
        "loyalty_min_registrations": quote.loyalty_min_registrations,
        "loyalty_multiplier": quote.loyalty_multiplier,
        "loyalty_count": quote.earlier_registrations,
    }


@dataclass(frozen=True)
class Totals:
    expected: Decimal
    approved: Decimal
    paid: Decimal


@dataclass(frozen=True)
class StatusPage:
    registrations: list[RegistrationView]
    totals: Totals
    total_count: int
    offset: int
    standing: LoyaltyStanding
