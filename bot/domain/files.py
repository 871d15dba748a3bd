"""The columns of the files the programme reads and writes: the contract with staff's
spreadsheets, the same for the command line and the chat."""

from __future__ import annotations

PURCHASE_COLUMNS = ("vat", "customer_name", "purchase_date")
PARTNER_COLUMNS = ("code", "company", "level")

# The export of every registration, its frozen quote and history.
EXPORT_COLUMNS = (
    "reference",
    "partner_code",
    "partner_company",
    "vat",
    "customer_name",
    "status",
    "registered_on",
    "protected_until",
    "deal_value",
    "product",
    "expected_close",
    "incentive_amount",
    "currency",
    "incentive_version",
    "level",
    "loyalty_min_registrations",
    "loyalty_multiplier",
    "loyalty_count",
    "updated_at",
    "history",
)

# Approved, unpaid incentives, partner by partner.
PAYOUT_COLUMNS = (
    "partner_code",
    "partner_company",
    "reference",
    "customer_name",
    "vat",
    "approved_on",
    "incentive_amount",
    "currency",
)
