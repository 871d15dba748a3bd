"""Turning verdicts, domain errors and registrations into the user's words."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from telegram import InlineKeyboardMarkup

from bot.domain.errors import (
    AlreadyRegistered,
    CustomerNotNew,
    CustomerProtected,
    InvalidInput,
    InvalidVat,
    NoIncentiveInForce,
    Refusal,
)
from bot.domain.items import ItemKind, ItemOutcome, lateness
from bot.domain.outbox import BroadcastStatus, ReminderKind
from bot.domain.rules import LoyaltyStanding, LoyaltyStep, Quote, Rules, first_new_day
from bot.i18n import Markup, Texts, describe_invalid
from bot.reports import duration
from bot.services.broadcasts import Audience, Report
from bot.services.conflicts import offers_more_time
from bot.services.items import FileView, ItemView, OtherSide
from bot.services.reminders import ON_CLOSE_DATE, ToSend
from bot.services.similar import SimilarCustomer
from bot.services.staff import Decision, StaffDeal
from bot.services.vies import ViesAnswer, ViesOutcome
from bot.services.views import RegistrationView, Verdict
from handlers.callbacks import (
    Approve,
    AskMoreTime,
    FollowupLost,
    FollowupStillOpen,
    FollowupWon,
    Grant,
    Key,
    Refuse,
    Reject,
    StartRegistration,
    keyboard,
)


def loyalty_line(texts: Texts, rules: Rules, quote: Quote, *, with_next_step: bool) -> str:
    """ "2 registrations in the last 365 days: ×1.00; 1 more reaches ×1.10"."""
    multiplier = quote.loyalty_multiplier or Decimal(1)
    line = texts.plural(
        "loyalty_count",
        quote.earlier_registrations,
        window=rules.loyalty_window_days,
        multiplier=texts.multiplier(multiplier),
    )
    if with_next_step:
        line += _to_next_step(texts, quote.registrations_to_next_step, quote.next_step)
    return line


def standing_line(texts: Texts, rules: Rules, standing: LoyaltyStanding) -> str:
    """ "3 registrations in the last 365 days: ×1.10; 1 more before 15 Mar 2027 keeps you
    there; 3 more reach ×1.25"."""
    window = rules.loyalty_window_days
    if standing.multiplier is None:
        return texts.plural("loyalty_count_fixed", standing.count, window=window)
    line = texts.plural(
        "loyalty_count",
        standing.count,
        window=window,
        multiplier=texts.multiplier(standing.multiplier),
    )
    if standing.keep_before is not None:
        line += texts("loyalty_keep", date=texts.date(standing.keep_before))
    return line + _to_next_step(texts, standing.registrations_to_next_step, standing.next_step)


def _to_next_step(texts: Texts, more: int | None, step: LoyaltyStep | None) -> str:
    """ "; 1 more reaches ×1.10", or nothing at the top step."""
    if step is None or more is None:
        return ""
    return texts.plural("loyalty_next", more, more=more, next=texts.multiplier(step.multiplier))


def quote_detail(texts: Texts, rules: Rules, quote: Quote, *, with_next_step: bool) -> Markup:
    version = texts.date(quote.version)
    if quote.loyalty_multiplier is None:
        return Markup(texts("quote_fixed", version=version))
    scale = texts("quote_scaled", level=texts.level(quote.level), version=version)
    loyalty = loyalty_line(texts, rules, quote, with_next_step=with_next_step)
    return Markup(f"{scale}\n{texts('loyalty', line=loyalty)}")


def vies_line(texts: Texts, answer: ViesAnswer | None) -> str:
    """What VIES said, in one line beside the verdict; nothing when it was not asked."""
    if answer is None:
        return ""
    if answer.outcome == ViesOutcome.VALID:
        return texts("vies_valid_named", name=answer.name) if answer.name else texts("vies_valid")
    if answer.outcome == ViesOutcome.INVALID:
        return texts("vies_invalid")
    return texts("vies_unavailable_retry" if answer.retrying else "vies_unavailable")


def staff_vies_line(texts: Texts, answer: ViesAnswer | None) -> str:
    """What VIES said, for staff: the flag on an invalid number, a failure still retried."""
    if answer is None:
        return ""
    if answer.outcome == ViesOutcome.VALID:
        return texts("staff_vies_valid", name=answer.name or "-")
    if answer.outcome == ViesOutcome.INVALID:
        return texts("staff_vies_invalid")
    key = "staff_vies_retrying" if answer.retrying else "staff_vies_gave_up"
    return texts(key, error=answer.error or "-")


def render_verdict(texts: Texts, rules: Rules, verdict: Verdict) -> str:
    return texts(
        "verdict_new",
        customer=verdict.known_name or verdict.vat,
        amount=texts.money(verdict.quote.amount, verdict.quote.currency),
        quote_detail=quote_detail(texts, rules, verdict.quote, with_next_step=True),
        until=texts.date(verdict.protected_until),
    )


def render_refusal(texts: Texts, rules: Rules, vat: str, error: Refusal) -> str:
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


def render_invalid(texts: Texts, rules: Rules, error: InvalidInput) -> str:
    """The reason a typed answer was refused, with an example of a good one for a VAT number."""
    message = describe_invalid(texts, error, country=rules.country)
    if isinstance(error, InvalidVat):
        return f"{message}\n{texts('vat_example')}"
    return message


def render_registration(
    texts: Texts, rules: Rules, registration: RegistrationView, today: dt.date
) -> str:
    if registration.protects_on(today):
        dates = texts(
            "detail_protected",
            registered_on=texts.date(registration.registered_on),
            until=texts.date(registration.protected_until),
        )
    else:
        dates = texts("detail_released", registered_on=texts.date(registration.registered_on))
    return texts(
        "detail",
        reference=registration.reference,
        status=texts.status(registration.status),
        customer=registration.customer_name,
        vat=registration.vat,
        dates=Markup(dates),
        value=texts.money(registration.deal_value, registration.currency),
        product=registration.product,
        close=texts.date(registration.expected_close),
        amount=texts.money(registration.quote.amount, registration.currency),
        quote_detail=quote_detail(texts, rules, registration.quote, with_next_step=False),
    )


def render_registered(texts: Texts, rules: Rules, registration: RegistrationView) -> str:
    """The confirmation of a registration: its reference, protection, the deal as confirmed
    (it takes the summary's place) and the quote frozen now."""
    return texts(
        "registered",
        reference=registration.reference,
        customer=registration.customer_name,
        until=texts.date(registration.protected_until),
        value=texts.money(registration.deal_value, registration.currency),
        product=registration.product,
        close=texts.date(registration.expected_close),
        amount=texts.money(registration.quote.amount, registration.currency),
        quote_detail=quote_detail(texts, rules, registration.quote, with_next_step=False),
    )


# --- what the bot starts ------------------------------------------------------------


def render_reminder(
    texts: Texts, rules: Rules, item: ToSend
) -> tuple[str, InlineKeyboardMarkup | None]:
    if item.due.kind == ReminderKind.NUDGE:
        assert item.standing is not None
        text = texts(
            "nudge",
            programme=rules.name,
            company=item.company,
            days=item.inactive_days,
            standing=standing_line(texts, rules, item.standing),
        )
        return text, keyboard([(texts.plain("button_register"), StartRegistration())])
    registration = item.registration
    assert registration is not None
    if item.due.kind == ReminderKind.EXPIRY:
        return texts(
            "expiry_notice",
            reference=registration.reference,
            customer=registration.customer_name,
            until=texts.date(registration.protected_until),
        ), None
    key = "followup_close" if item.due.period == ON_CLOSE_DATE else "followup_protection"
    text = texts(
        key,
        reference=registration.reference,
        customer=registration.customer_name,
        close=texts.date(registration.expected_close),
        until=texts.date(registration.protected_until),
    )
    more_time = offers_more_time(rules, registration, item.due.due_on)
    return text, followup_buttons(texts, registration.reference, more_time=more_time)


def followup_buttons(
    texts: Texts, reference: str, *, more_time: bool = False
) -> InlineKeyboardMarkup:
    rows: list[list[Key]] = [
        [
            (texts.plain("button_won"), FollowupWon(reference)),
            (texts.plain("button_lost"), FollowupLost(reference)),
            (texts.plain("button_still_open"), FollowupStillOpen(reference)),
        ]
    ]
    if more_time:
        rows.append([(texts.plain("button_more_time"), AskMoreTime(reference))])
    return keyboard(*rows)


def describe_audience(texts: Texts, audience: Audience) -> str:
    if audience.kind == "level":
        return texts.plain("audience_level", level=texts.level(audience.value))
    if audience.kind == "inactive":
        return texts.plain("audience_inactive", days=audience.value)
    return texts.plain(f"audience_{audience.kind}")


def report_text(texts: Texts, report: Report, zone: dt.tzinfo) -> str:
    """A broadcast for staff: when (the programme's time), to whom in words, how it went,
    or how far it got while it is still going."""
    if report.status == BroadcastStatus.SENDING:
        counts = texts(
            "broadcast_counts_sending", sent=report.total - report.waiting, total=report.total
        )
    else:
        counts = texts(
            "broadcast_counts_done",
            total=report.total,
            delivered=report.delivered,
            blocked=report.blocked,
            failed=report.failed,
            unconfirmed=report.unconfirmed,
        )
    return texts(
        "broadcast_report",
        id=report.broadcast_id,
        at=texts.moment(report.created_at, zone),
        audience=describe_audience(texts, report.audience),
        counts=Markup(counts),
    )


# --- staff -------------------------------------------------------------------------


def deal_text(texts: Texts, deal: StaffDeal) -> str:
    registration = deal.registration
    return texts(
        "staff_deal",
        reference=registration.reference,
        code=deal.partner_code,
        company=deal.company,
        customer=registration.customer_name,
        vat=registration.vat,
        value=texts.money(registration.deal_value, registration.currency),
        amount=texts.money(registration.quote.amount, registration.currency),
        registered_on=texts.date(registration.registered_on),
    )


def decision_buttons(texts: Texts, reference: str) -> InlineKeyboardMarkup:
    return keyboard(
        [
            (texts.plain("button_approve"), Approve(reference)),
            (texts.plain("button_reject"), Reject(reference)),
        ]
    )


def deal_text_markup(texts: Texts, deal: StaffDeal) -> Markup:
    return Markup(deal_text(texts, deal))


def decided_text(texts: Texts, decision: Decision, *, who: str) -> str:
    """A deal as staff see it once decided: by whom, and why when rejected."""
    key = "staff_approved_by" if decision.approved else "staff_rejected_by"
    return texts(
        key,
        deal=deal_text_markup(texts, decision.deal),
        who=who,
        reason=decision.reason or "",
    )


def decision_told(texts: Texts, decision: Decision) -> str:
    """The partner's news of a decision on its deal."""
    registration = decision.deal.registration
    if decision.approved:
        return texts(
            "partner_approved",
            reference=registration.reference,
            customer=registration.customer_name,
            amount=texts.money(registration.quote.amount, registration.currency),
        )
    return texts(
        "partner_rejected",
        reference=registration.reference,
        customer=registration.customer_name,
        reason=decision.reason or "",
    )


# --- conflicts (PRODUCT.md §5) ------------------------------------------------------


def deadline_line(texts: Texts, item: ItemView, zone: dt.tzinfo, now: dt.datetime) -> str:
    late = lateness(item.due_at, now)
    if late is not None:
        return texts("staff_overdue", late=duration(texts, late))
    return texts("staff_due", due=texts.moment(item.due_at, zone))


def item_body(texts: Texts, rules: Rules, item: ItemView) -> str:
    """What an item is about, as every staff copy shows it, decided or not."""
    registration = item.registration
    money = registration.currency
    if item.kind == ItemKind.WON:
        return deal_text(texts, StaffDeal(registration, item.partner_code, item.company))
    if item.kind == ItemKind.EXTENSION:
        return texts(
            "staff_more_time",
            reference=registration.reference,
            code=item.partner_code,
            company=item.company,
            customer=registration.customer_name,
            vat=registration.vat,
            until=texts.date(registration.protected_until),
            days=rules.conflicts.extension_days,
            note=item.note or "",
        )
    other = item.other_side
    return texts(
        "staff_dispute",
        reference=registration.reference,
        code=item.partner_code,
        company=item.company,
        level=texts.level(registration.quote.level),
        salesperson=item.salesperson or "-",
        vat=registration.vat,
        vendor_name=(other.vendor_name if other else None) or registration.customer_name,
        reason=item.dispute_reason or "",
        evidence=_files_said(texts, item.files),
        other=Markup(_other_side(texts, other)),
        amount=texts.money(registration.quote.amount, money),
        value=texts.money(registration.deal_value, money),
    )


def _files_said(texts: Texts, files: tuple[FileView, ...]) -> str:
    return texts.plain("evidence_none") if not files else str(len(files))


def _other_side(texts: Texts, other: OtherSide | None) -> str:
    if other is None:
        return "-"
    if other.holder_reference is not None:
        assert other.holder_registered_on is not None
        assert other.holder_until is not None
        assert other.holder_updated_at is not None
        return texts(
            "staff_other_holder",
            code=other.holder_code or "",
            company=other.holder_company or "",
            reference=other.holder_reference,
            status=texts.status(other.holder_status or ""),
            registered_on=texts.date(other.holder_registered_on),
            until=texts.date(other.holder_until),
            updated=texts.date(other.holder_updated_at.date()),
        )
    if other.last_purchase is not None:
        return texts(
            "staff_other_purchase",
            last=texts.date(other.last_purchase),
            name=other.vendor_name or "-",
        )
    return "-"


def similar_lines(texts: Texts, similar: list[SimilarCustomer]) -> str:
    """Up to three customers under other VAT numbers with names like this one's."""
    if not similar:
        return ""
    lines = [texts("staff_similar")]
    for found in similar:
        holder = ""
        if found.holder is not None:
            holder = texts.plain(
                "staff_similar_holder",
                code=found.holder.partner_code,
                reference=found.holder.reference,
                until=texts.date(found.holder.until),
            )
        lines.append(texts("staff_similar_line", name=found.name, vat=found.vat, holder=holder))
    return "\n".join(lines)


def item_text(
    texts: Texts,
    rules: Rules,
    item: ItemView,
    now: dt.datetime,
    similar: list[SimilarCustomer] | None = None,
) -> str:
    """A waiting item as staff see it: what, the deadline, files, similar names."""
    parts = [item_body(texts, rules, item), deadline_line(texts, item, rules.timezone, now)]
    if item.files and item.kind != ItemKind.DISPUTE:
        parts.append(texts("staff_files", count=len(item.files)))
    if similar:
        parts.append(similar_lines(texts, similar))
    return "\n".join(parts)


def item_buttons(texts: Texts, item: ItemView) -> InlineKeyboardMarkup:
    if item.kind == ItemKind.WON:
        return decision_buttons(texts, item.registration.reference)
    return keyboard(
        [
            (texts.plain("button_grant"), Grant(item.id)),
            (texts.plain("button_refuse"), Refuse(item.id)),
        ]
    )


def item_decided_text(texts: Texts, rules: Rules, item: ItemView, *, who: str) -> str:
    """A dispute or request for more time as staff see it once decided."""
    body = Markup(item_body(texts, rules, item))
    if item.outcome == ItemOutcome.GRANTED:
        return texts("staff_granted_by", who=who, item=body)
    if item.outcome == ItemOutcome.REFUSED:
        return texts("staff_refused_by", who=who, reason=item.reason or "", item=body)
    return texts("staff_closed_by", item=body)


def item_told(texts: Texts, item: ItemView) -> str:
    """The partner's news of a decision on its contest or request for more time."""
    registration = item.registration
    key = {
        (ItemKind.DISPUTE, ItemOutcome.GRANTED): "dispute_granted_partner",
        (ItemKind.DISPUTE, ItemOutcome.REFUSED): "dispute_refused_partner",
        (ItemKind.EXTENSION, ItemOutcome.GRANTED): "more_time_granted_partner",
        (ItemKind.EXTENSION, ItemOutcome.REFUSED): "more_time_refused_partner",
    }[(item.kind, item.outcome or ItemOutcome.CLOSED)]
    return texts(
        key,
        reference=registration.reference,
        customer=registration.customer_name,
        until=texts.date(registration.protected_until),
        amount=texts.money(registration.quote.amount, registration.currency),
        reason=item.reason or "",
    )


def revoked_told(texts: Texts, registration: RegistrationView) -> str:
    """The holder's news that staff ended its protection: why, never who."""
    return texts(
        "protection_revoked_partner",
        reference=registration.reference,
        customer=registration.customer_name,
    )


def digest_text(texts: Texts, items: list[ItemView], now: dt.datetime) -> str:
    lines = [
        texts.plain(
            "staff_digest_line",
            reference=item.registration.reference,
            kind=texts.plain(f"item_{item.kind}"),
            code=item.partner_code,
            late=duration(texts, lateness(item.due_at, now) or dt.timedelta(0)),
        )
        for item in items
    ]
    return texts("staff_digest", count=len(items), lines="\n".join(lines))
