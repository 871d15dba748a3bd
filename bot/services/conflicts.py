"""Conflicts settled in chat (PRODUCT.md §5): a refusal contested, more time asked,
proof of a won deal; staff's grant or refusal of each."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bot.domain.errors import (
    CannotContestOwn,
    CustomerTakenMeanwhile,
    DisputeAlreadyOpen,
    MoreTimeNotAllowed,
    NothingToContest,
    RegistrationNotFound,
    TransitionNotAllowed,
)
from bot.domain.items import ItemKind, ItemOutcome, outcome_of
from bot.domain.lifecycle import Status
from bot.domain.names import name_block
from bot.domain.references import new_reference
from bot.domain.rules import (
    Quote,
    Rules,
    is_new_customer,
    may_ask_more_time,
    protection_until,
    quote_incentive,
)
from bot.events import DealWon, ItemArrived, ItemDecided, ProofAdded, emit
from bot.services.eligibility import customer_standing
from bot.services.history import actor_of, change_status, record_creation, record_note, staff_actor
from bot.services.items import close_item, close_open_items, open_item, open_item_of
from bot.services.views import Account, RegistrationView, quote_columns
from models import Attachment, Dispute, Registration, StaffItem

REVOKED_NOTE = "protection ended by staff: another partner's claim was upheld"


@dataclass(frozen=True)
class Contestable:
    """A refusal that can be contested, and the quote a dispute granted would keep."""

    vat: str
    known_name: str | None
    quote: Quote
    # What stood against it: another partner's protection until then, or a purchase.
    protected_until: dt.date | None
    last_purchase: dt.date | None


@dataclass(frozen=True)
class FileSent:
    """A photo or document as Telegram gave it: only its id is kept."""

    kind: str  # photo, document
    file_id: str
    file_name: str | None = None


@dataclass(frozen=True)
class Submitted:
    """What the partner is told once something goes to staff: its reference and when
    staff will have answered by."""

    registration: RegistrationView
    due_at: dt.datetime


async def prepare_contest(
    *, session: AsyncSession, rules: Rules, account: Account, vat: str, now: dt.datetime
) -> Contestable:
    """Whether the partner may contest the refusal on `vat` today, and on what terms."""
    today = rules.today(now)
    standing = await customer_standing(
        session=session, rules=rules, vat=vat, partner_id=account.partner_id, today=today
    )
    holder = standing.holder
    if holder is not None and holder.partner_id == account.partner_id:
        raise CannotContestOwn()
    not_new = not is_new_customer(rules, last_purchase=standing.last_purchase, on=today)
    if holder is None and not not_new:
        raise NothingToContest()
    waiting = (
        await session.execute(
            select(col(Registration.reference)).where(
                col(Registration.dispute_key) == dispute_key(account, vat)
            )
        )
    ).scalar_one_or_none()
    if waiting is not None:
        raise DisputeAlreadyOpen(reference=waiting)
    return Contestable(
        vat=vat,
        known_name=standing.vendor_name,
        quote=quote_incentive(
            rules, on=today, level=account.level, earlier_registrations=standing.loyalty_count
        ),
        protected_until=holder.until if holder else None,
        last_purchase=None if holder else standing.last_purchase,
    )


def dispute_key(account: Account, vat: str) -> str:
    return f"{account.partner_id}:{vat}"


@dataclass(frozen=True)
class Contest:
    """What the salesperson said: the deal, as in /new, and why the refusal is wrong."""

    vat: str
    customer_name: str | None
    deal_value: Decimal
    product: str
    expected_close: dt.date
    reason: str
    evidence: tuple[FileSent, ...] = ()


async def open_dispute(
    *, session: AsyncSession, rules: Rules, account: Account, contest: Contest, now: dt.datetime
) -> Submitted:
    """Record the contest as a `disputed` registration and put it before staff.

    Quoted now, the contest day; it protects nothing until staff grant it. Two
    colleagues sending the same contest at once: the unique dispute key lets one in.
    """
    terms = await prepare_contest(
        session=session, rules=rules, account=account, vat=contest.vat, now=now
    )
    today = rules.today(now)
    holding = (
        await session.execute(
            select(col(Registration.id)).where(
                col(Registration.protection_key) == contest.vat,
                col(Registration.protected_until) >= today,
            )
        )
    ).scalar_one_or_none()
    name = terms.known_name or contest.customer_name or contest.vat
    registration = Registration(
        reference=new_reference(),
        partner_id=account.partner_id,
        salesperson_id=account.salesperson_id,
        vat=contest.vat,
        customer_name=name,
        name_block=name_block(name),
        registered_on=today,
        created_at=now,
        updated_at=now,
        protected_until=protection_until(rules, today),
        protection_key=None,
        dispute_key=dispute_key(account, contest.vat),
        status=Status.DISPUTED.value,
        deal_value=contest.deal_value,
        product=contest.product,
        expected_close=contest.expected_close,
        **quote_columns(terms.quote),
    )
    session.add(registration)
    try:
        await session.flush()
    except IntegrityError:
        await session.rollback()
        await prepare_contest(
            session=session, rules=rules, account=account, vat=contest.vat, now=now
        )
        raise  # the reference clashed (1 in 10^8): the apology, and the user tries again
    assert registration.id is not None
    by = actor_of(account)
    await record_creation(
        session,
        registration_id=registration.id,
        by=by,
        at=now,
        status=Status.DISPUTED,
        note=contest.reason,
    )
    session.add(
        Dispute(
            registration_id=registration.id,
            reason=contest.reason,
            against_registration_id=holding,
            last_purchase=terms.last_purchase,
        )
    )
    for sent in contest.evidence:
        _attach(session, registration.id, sent, purpose="evidence", by=by, at=now)
    item = await open_item(
        session, rules=rules, registration_id=registration.id, kind=ItemKind.DISPUTE, now=now
    )
    assert item.id is not None
    emit(session, ItemArrived(item.id))
    await session.commit()
    return Submitted(RegistrationView.of(registration), item.due_at)


def _attach(
    session: AsyncSession,
    registration_id: int,
    sent: FileSent,
    *,
    purpose: str,
    by: str,
    at: dt.datetime,
) -> None:
    session.add(
        Attachment(
            registration_id=registration_id,
            purpose=purpose,
            kind=sent.kind,
            file_id=sent.file_id,
            file_name=sent.file_name,
            added_by=by,
            added_at=at,
        )
    )


async def own_registration(
    *, session: AsyncSession, account: Account, reference: str
) -> Registration:
    registration = (
        await session.execute(select(Registration).where(col(Registration.reference) == reference))
    ).scalar_one_or_none()
    # Another partner's registration is "not found": its existence is not ours to reveal.
    if registration is None or registration.partner_id != account.partner_id:
        raise RegistrationNotFound()
    return registration


def more_time_refusal(rules: Rules, registration: Registration, today: dt.date) -> str | None:
    """Why more time cannot be asked on this registration today, or None if it can."""
    if registration.status not in (Status.QUALIFIED, Status.WON):
        return "status"
    if registration.awaiting_extension:
        return "waiting"
    if registration.extensions >= rules.conflicts.max_extensions:
        return "cap"
    if not may_ask_more_time(rules, protected_until=registration.protected_until, today=today):
        return "window"
    return None


async def ask_more_time(
    *,
    session: AsyncSession,
    rules: Rules,
    account: Account,
    reference: str,
    reason: str,
    now: dt.datetime,
) -> Submitted:
    """Put a request for more time before staff; until they answer, protection holds."""
    registration = await own_registration(session=session, account=account, reference=reference)
    assert registration.id is not None
    why = more_time_refusal(rules, registration, rules.today(now))
    if why is not None:
        raise MoreTimeNotAllowed(why)
    # Conditional: of two colleagues asking at once, one request is made.
    asked = await session.execute(
        update(Registration)
        .where(
            col(Registration.id) == registration.id,
            col(Registration.awaiting_extension).is_(False),
            col(Registration.extensions) == registration.extensions,
        )
        .values(awaiting_extension=True, extensions=registration.extensions + 1, updated_at=now)
        .returning(col(Registration.id))
    )
    if asked.first() is None:
        await session.rollback()
        raise MoreTimeNotAllowed("waiting")
    await record_note(
        session,
        registration_id=registration.id,
        by=actor_of(account),
        at=now,
        note=f"more time asked: {reason}",
    )
    item = await open_item(
        session,
        rules=rules,
        registration_id=registration.id,
        kind=ItemKind.EXTENSION,
        now=now,
        note=reason,
    )
    assert item.id is not None
    emit(session, ItemArrived(item.id))
    await session.commit()
    await session.refresh(registration)
    return Submitted(RegistrationView.of(registration), item.due_at)


async def add_proof(
    *,
    session: AsyncSession,
    rules: Rules,
    account: Account,
    reference: str,
    sent: FileSent | None,
    now: dt.datetime,
) -> Submitted | None:
    """Keep proof of a won deal (None: the partner skipped it); the won deal reaches
    staff now if the rules held it back for proof. Returns the deadline when it does."""
    registration = await own_registration(session=session, account=account, reference=reference)
    assert registration.id is not None
    if registration.status != Status.WON:
        raise TransitionNotAllowed(current=registration.status, target=Status.WON.value)
    by = actor_of(account)
    if sent is not None:
        _attach(session, registration.id, sent, purpose="proof", by=by, at=now)
        await record_note(
            session, registration_id=registration.id, by=by, at=now, note=f"proof: {sent.kind}"
        )
    item = await open_item_of(session=session, registration_id=registration.id, kind=ItemKind.WON)
    if item is None and sent is not None:
        item = await put_won_deal_before_staff(
            session, rules=rules, registration=registration, now=now
        )
    elif item is not None and sent is not None:
        emit(session, ProofAdded(reference))
    await session.commit()
    if item is None:
        return None
    return Submitted(RegistrationView.of(registration), item.due_at)


async def put_won_deal_before_staff(
    session: AsyncSession, *, rules: Rules, registration: Registration, now: dt.datetime
) -> StaffItem:
    """A won deal waits for staff from now (DealWon tells them)."""
    assert registration.id is not None
    item = await open_item(
        session, rules=rules, registration_id=registration.id, kind=ItemKind.WON, now=now
    )
    emit(session, DealWon(registration.reference))
    return item


@dataclass(frozen=True)
class ItemDecision:
    item_id: int
    kind: ItemKind
    outcome: ItemOutcome
    reason: str | None


async def decide_item(
    *,
    session: AsyncSession,
    rules: Rules,
    item_id: int,
    grant: bool,
    staff_id: int,
    now: dt.datetime,
    reason: str | None = None,
) -> ItemDecision:
    """Grant or refuse a dispute or a request for more time; the first decision counts."""
    from models import StaffItem

    item = await session.get(StaffItem, item_id)
    if item is None or item.kind == ItemKind.WON:
        raise RegistrationNotFound()
    kind = ItemKind(item.kind)
    outcome = outcome_of(kind, yes=grant)
    by = staff_actor(staff_id)
    try:
        await close_item(session, item_id=item_id, outcome=outcome, by=by, now=now, reason=reason)
        if kind == ItemKind.DISPUTE:
            await _settle_dispute(session, rules, item.registration_id, grant, by, now, reason)
        else:
            await _settle_more_time(session, rules, item.registration_id, grant, by, now, reason)
    except Exception:
        await session.rollback()
        raise
    emit(session, ItemDecided(item_id, staff_id))
    await session.commit()
    return ItemDecision(item_id, kind, outcome, reason)


async def _settle_dispute(
    session: AsyncSession,
    rules: Rules,
    registration_id: int,
    grant: bool,
    by: str,
    now: dt.datetime,
    reason: str | None,
) -> None:
    registration = await session.get(Registration, registration_id)
    assert registration is not None
    if not grant:
        await change_status(
            session,
            registration_id=registration_id,
            target=Status.REFUSED,
            by=by,
            at=now,
            note=reason,
        )
        await _end_dispute(session, registration_id, {})
        return
    dispute = await session.get(Dispute, registration_id)
    holder_id = dispute.against_registration_id if dispute else None
    if holder_id is not None:
        holder = await session.get(Registration, holder_id)
        if holder is not None and holder.protection_key is not None:
            await change_status(
                session,
                registration_id=holder_id,
                target=Status.REVOKED,
                by=by,
                at=now,
                note=REVOKED_NOTE,
            )
            await close_open_items(
                session, registration_id=holder_id, by=by, now=now, note=REVOKED_NOTE
            )
    await change_status(
        session,
        registration_id=registration_id,
        target=Status.QUALIFIED,
        by=by,
        at=now,
        note=reason,
    )
    # Protected from the decision; the quote stays as on the contest day.
    try:
        await _end_dispute(
            session,
            registration_id,
            {
                "protection_key": registration.vat,
                "protected_until": protection_until(rules, rules.today(now)),
            },
        )
    except IntegrityError:
        await session.rollback()
        taken = (
            await session.execute(
                select(col(Registration.reference)).where(
                    col(Registration.protection_key) == registration.vat
                )
            )
        ).scalar_one_or_none()
        raise CustomerTakenMeanwhile(reference=taken or "") from None


async def _end_dispute(
    session: AsyncSession, registration_id: int, values: dict[str, object]
) -> None:
    await session.execute(
        update(Registration)
        .where(col(Registration.id) == registration_id)
        .values(dispute_key=None, **values)
    )


async def _settle_more_time(
    session: AsyncSession,
    rules: Rules,
    registration_id: int,
    grant: bool,
    by: str,
    now: dt.datetime,
    reason: str | None,
) -> None:
    registration = await session.get(Registration, registration_id)
    assert registration is not None
    values: dict[str, object] = {"awaiting_extension": False, "updated_at": now}
    days = rules.conflicts.extension_days
    if grant:
        values["protected_until"] = registration.protected_until + dt.timedelta(days=days)
    await session.execute(
        update(Registration).where(col(Registration.id) == registration_id).values(**values)
    )
    note = f"more time granted: +{days} days" if grant else f"more time refused: {reason}"
    await record_note(session, registration_id=registration_id, by=by, at=now, note=note)


async def check_more_time(
    *, session: AsyncSession, rules: Rules, account: Account, reference: str, now: dt.datetime
) -> RegistrationView:
    """The registration more time would be asked on, or MoreTimeNotAllowed saying why."""
    registration = await own_registration(session=session, account=account, reference=reference)
    why = more_time_refusal(rules, registration, rules.today(now))
    if why is not None:
        raise MoreTimeNotAllowed(why)
    return RegistrationView.of(registration)


def offers_more_time(rules: Rules, registration: RegistrationView, today: dt.date) -> bool:
    """Whether its detail and its follow-up carry "Ask for more time"."""
    return (
        registration.status in (Status.QUALIFIED, Status.WON)
        and not registration.awaiting_extension
        and registration.extensions < rules.conflicts.max_extensions
        and may_ask_more_time(rules, protected_until=registration.protected_until, today=today)
    )


async def waiting_on_staff(
    *, session: AsyncSession, registration_id: int
) -> list[tuple[ItemKind, dt.datetime]]:
    """What of this registration waits for staff, and by when they answer."""
    rows = await session.execute(
        select(col(StaffItem.kind), col(StaffItem.due_at)).where(
            col(StaffItem.registration_id) == registration_id, col(StaffItem.decided_at).is_(None)
        )
    )
    return [(ItemKind(kind), due) for kind, due in rows.all()]
