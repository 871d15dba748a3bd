"""Turning verdicts, domain errors and registrations into the user's words."""

from __future__ import annotations

from bot.errors import (
    AlreadyRegistered,
    CustomerNotNew,
    CustomerProtected,
    DomainError,
    InvalidAmount,
    InvalidInput,
    InvalidVat,
    NoIncentiveInForce,
)
from bot.i18n import Markup, Texts
from bot.rules import Quote, Rules, first_new_day
from bot.services.views import RegistrationView, Verdict

# Free-text limits, shared by the conversation and its error messages.
MAX_COMPANY = 200
MAX_PRODUCT = 200


def quote_detail(texts: Texts, rules: Rules, quote: Quote) -> Markup:
    version = texts.date(quote.version)
    if quote.loyalty_multiplier is None:
        return Markup(texts("quote_fixed", version=version))
    return Markup(
        texts.plural(
            "quote_scaled",
            quote.earlier_registrations,
            level=texts.level(quote.level),
            multiplier=texts.number(quote.loyalty_multiplier),
            window=rules.loyalty_window_days,
            version=version,
        )
    )


def render_verdict(texts: Texts, rules: Rules, verdict: Verdict) -> str:
    return texts(
        "verdict_new",
        customer=verdict.known_name or verdict.vat,
        amount=texts.money(verdict.quote.amount, verdict.quote.currency),
        quote_detail=quote_detail(texts, rules, verdict.quote),
        until=texts.date(verdict.protected_until),
    )


def render_refusal(texts: Texts, rules: Rules, vat: str, error: DomainError) -> str:
    """Why `vat` cannot be registered, in words; the holder of a protection is never named."""
    if isinstance(error, CustomerNotNew):
        return texts(
            "verdict_not_new",
            vat=vat,
            last_purchase=texts.date(error.last_purchase),
            lookback=rules.lookback_months,
            free_from=texts.date(first_new_day(rules, error.last_purchase)),
        )
    if isinstance(error, CustomerProtected):
        return texts("verdict_protected", vat=vat, until=texts.date(error.until))
    if isinstance(error, AlreadyRegistered):
        return texts(
            "verdict_already_yours",
            vat=vat,
            reference=error.reference,
            until=texts.date(error.until),
        )
    if isinstance(error, NoIncentiveInForce):
        return texts("no_incentive")
    raise error


def render_invalid(texts: Texts, error: InvalidInput) -> str:
    """The reason a typed answer was refused, with an example of a good one."""
    if isinstance(error, InvalidVat):
        return f"{texts(error.reason)}\n{texts('vat_example')}"
    message = texts(error.reason, max=MAX_COMPANY)
    if isinstance(error, InvalidAmount) and error.suggestion:
        message += "\n" + texts("amount_suggestion", suggestion=error.suggestion)
    return message


def render_registration(texts: Texts, rules: Rules, registration: RegistrationView) -> str:
    quote = Quote(
        amount=registration.incentive_amount,
        currency=registration.currency,
        version=registration.incentive_version,
        level=registration.level,
        loyalty_min_registrations=registration.loyalty_min_registrations,
        loyalty_multiplier=registration.loyalty_multiplier,
        earlier_registrations=registration.loyalty_count,
    )
    return texts(
        "detail",
        reference=registration.reference,
        status=texts.status(registration.status),
        customer=registration.customer_name,
        vat=registration.vat,
        registered_on=texts.date(registration.registered_on),
        until=texts.date(registration.protected_until),
        value=texts.money(registration.deal_value, registration.currency),
        product=registration.product,
        close=texts.date(registration.expected_close),
        amount=texts.money(registration.incentive_amount, registration.currency),
        quote_detail=quote_detail(texts, rules, quote),
    )
