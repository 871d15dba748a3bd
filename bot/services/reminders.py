"""Reminders the bot starts: what is due at a moment, claimed once, and how each went.

Nothing that matters lives in the scheduler: what is due is computed from the
database at each tick, and each reminder is written down (under a unique
constraint) before it is sent, so a restart, a second tick or a second instance
never sends it again.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import String, case, exists, func, literal, select, union, update
from sqlalchemy import cast as cast_as
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlmodel import col

from bot.domain.lifecycle import Status
from bot.domain.outbox import AFTER_SEND, Outcome, ReminderKind, ReminderStatus, Result
from bot.domain.rules import LoyaltyStanding, Rules
from bot.services.accounts import mark_unreachable
from bot.services.eligibility import release_lapsed_protection
from bot.services.loyalty import loyalty_standings
from bot.services.outbox import UNSYNCHRONISED, advance
from bot.services.views import RegistrationView
from bot.storage.database import date_of, dialect_insert, in_chunks, moment_of
from models import Partner, Registration, Reminder, Salesperson

# A follow-up asks before protection ends, or on the expected close date if earlier.
BEFORE_PROTECTION_ENDS, ON_CLOSE_DATE = "protection", "close"
# An expiry notice's period: one a registration.
EXPIRED_PERIOD = "expired"
# Expiries older than this are not announced (a bot that was down for a month
# does not wake everybody with old news).
EXPIRY_NOTICE_DAYS = 7
# Statuses that mean somebody has it, or will: nobody else is asked.
LIVE = (
    ReminderStatus.CLAIMED,
    ReminderStatus.SENDING,
    ReminderStatus.SENT,
    ReminderStatus.RETRY,
)
# Tries before a reminder that keeps failing is given up.
MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class Recipient:
    salesperson_id: int
    telegram_user_id: int
    partner_id: int
    language: str | None
    telegram_language: str | None
    display_name: str | None
    username: str | None
    linked_on: dt.date

    @classmethod
    def of(cls, salesperson: Salesperson, zone: dt.tzinfo) -> Recipient:
        assert salesperson.id is not None
        return cls(
            salesperson_id=salesperson.id,
            telegram_user_id=salesperson.telegram_user_id,
            partner_id=salesperson.partner_id,
            language=salesperson.language,
            telegram_language=salesperson.telegram_language,
            display_name=salesperson.display_name,
            username=salesperson.username,
            linked_on=salesperson.linked_at.astimezone(zone).date(),
        )


@dataclass(frozen=True)
class Due:
    """A reminder due now for one person, not sent yet."""

    kind: ReminderKind
    subject: str
    period: str
    due_on: dt.date
    partner_id: int
    registration_id: int | None
    recipient: Recipient


@dataclass(frozen=True)
class ToSend:
    """A claimed reminder, with what its message needs."""

    id: int
    due: Due
    company: str = ""
    inactive_days: int = 0
    standing: LoyaltyStanding | None = None
    registration: RegistrationView | None = None

    @property
    def salesperson_id(self) -> int:
        return self.due.recipient.salesperson_id

    @property
    def telegram_user_id(self) -> int:
        return self.due.recipient.telegram_user_id


def partner_subject(partner_id: int) -> str:
    return f"partner:{partner_id}"


REGISTRATION_PREFIX = "registration:"


def registration_subject(registration_id: int) -> str:
    return f"{REGISTRATION_PREFIX}{registration_id}"


# --- what is due -------------------------------------------------------------------


async def expire_lapsed(*, session: AsyncSession, rules: Rules, now: dt.datetime) -> int:
    """Registrations whose protection ended without an outcome become expired, now."""
    changed = await release_lapsed_protection(session=session, today=rules.today(now), at=now)
    await session.commit()
    return changed


async def due_reminders(*, session: AsyncSession, rules: Rules, now: dt.datetime) -> list[Due]:
    """Every reminder due at `now` that nobody has had yet (quiet hours aside)."""
    today = rules.today(now)
    due = await _nudges(session, rules, today)
    due += await _registration_reminders(session, rules, today)
    return due


async def _read(session: AsyncSession, statement: Any) -> Any:
    """A read of plain columns over whole tables, past the ORM's row handling (a third of
    a tick's time at 90,000 salespeople): the session's connection, as Core executes it."""
    return await (await session.connection()).execute(statement)


# Who a reminder may reach: linked, reminders on, the bot not blocked.
REACHABLE = (
    col(Salesperson.unlinked_at).is_(None),
    col(Salesperson.unreachable_at).is_(None),
    col(Salesperson.reminders_enabled).is_(True),
)
# A Recipient's columns, in _recipient's order: plain columns rather than ORM objects,
# since a tick may read tens of thousands.
RECIPIENT_COLUMNS = (
    col(Salesperson.id),
    col(Salesperson.telegram_user_id),
    col(Salesperson.partner_id),
    col(Salesperson.language),
    col(Salesperson.telegram_language),
    col(Salesperson.display_name),
    col(Salesperson.username),
    col(Salesperson.linked_at),
)
# A nudge in these states went (or failed for good): the next one waits its turn after it.
WAITED_AFTER = (ReminderStatus.SENDING, ReminderStatus.SENT, ReminderStatus.FAILED)


def _recipient(row: Any, zone: dt.tzinfo) -> Recipient:
    return Recipient(
        salesperson_id=cast(int, row[0]),
        telegram_user_id=row[1],
        partner_id=row[2],
        language=row[3],
        telegram_language=row[4],
        display_name=row[5],
        username=row[6],
        linked_on=row[7].astimezone(zone).date(),
    )


async def _reachable_salespeople(
    session: AsyncSession, rules: Rules, partners: Any
) -> dict[int, list[Recipient]]:
    """The reachable salespeople of the partners `partners` selects, by partner, in id
    order."""
    by_partner: dict[int, list[Recipient]] = defaultdict(list)
    rows = await _read(
        session,
        select(*RECIPIENT_COLUMNS)
        .where(*REACHABLE, col(Salesperson.partner_id).in_(partners))
        .order_by(col(Salesperson.id)),
    )
    for row in rows.all():
        person = _recipient(row, rules.timezone)
        by_partner[person.partner_id].append(person)
    return by_partner


async def _nudges(session: AsyncSession, rules: Rules, today: dt.date) -> list[Due]:
    every = dt.timedelta(days=rules.reminders.inactivity_days)
    candidates = await _nudge_candidates(session, rules, today, every)
    return [
        nudge
        for person, last_registered, last in candidates
        if (nudge := nudge_due(person, last_registered, last, today, every)) is not None
    ]


def nudge_due(
    person: Recipient,
    last_registered: dt.date | None,
    last: tuple[dt.date, str] | None,
    today: dt.date,
    every: dt.timedelta,
) -> Due | None:
    """A nudge after `every` without a registration, counted from the partner's last
    registration or the day the salesperson joined, whichever is later; then again
    `every` after the last nudge that person got (`last`: its day, its status), for as
    long as it lasts. None when nothing is due today."""
    anchor = max(person.linked_on, last_registered or person.linked_on)
    turn = wait_from = anchor  # the nudge's identity; the day the waiting starts
    if last is not None and last[0] >= anchor:
        day, status = last
        if status in (ReminderStatus.CLAIMED, ReminderStatus.RETRY):
            return None  # on its way
        turn = day
        # After a nudge that went (or failed for good) the next waits its turn; one
        # that could not reach the person (blocked, reminders off) is due once they can.
        if status in WAITED_AFTER:
            wait_from = day
    if today < wait_from + every:
        return None
    return Due(
        kind=ReminderKind.NUDGE,
        subject=partner_subject(person.partner_id),
        period=f"{anchor.isoformat()}/{turn.isoformat()}",
        due_on=wait_from + every,
        partner_id=person.partner_id,
        registration_id=None,
        recipient=person,
    )


async def _nudge_candidates(
    session: AsyncSession, rules: Rules, today: dt.date, every: dt.timedelta
) -> list[tuple[Recipient, dt.date | None, tuple[dt.date, str] | None]]:
    """The reachable salespeople who may be due a nudge, each with their partner's last
    registration date and their own last nudge about that partner (its day, its status).

    The database leaves out, with dates alone, everyone who cannot be due: those who
    joined, or whose partner registered, less than `every` ago, and those whose last
    nudge went less than `every` ago. A tick with nothing new then reads nobody, rather
    than every salesperson (a tick took 3-6 s at 90,000). The cut on moments has three
    hours' margin, so the time zone is never needed in SQL; nudge_due decides exactly on
    what is left.
    """
    latest_day = today - every  # the last day the wait may have started on
    # Past the first moment of the day after, local time: a clock change at midnight
    # moves that moment, never by more than two hours anywhere.
    cut = dt.datetime.combine(
        latest_day + dt.timedelta(days=1), dt.time(), rules.timezone
    ) + dt.timedelta(hours=3)
    registered_lately = exists().where(
        col(Registration.partner_id) == col(Salesperson.partner_id),
        col(Registration.registered_on) > latest_day,
    )
    last, later = aliased(Reminder), aliased(Reminder)
    last_went_lately = exists().where(
        *_nudges_about_the_salesperson(last),
        col(last.created_at) >= cut,
        col(last.status).in_(WAITED_AFTER),
        ~exists()
        .where(*_nudges_about_the_salesperson(later), col(later.id) > col(last.id))
        .correlate(Salesperson, last),  # two levels up: said, not guessed
    )

    # What nudge_due needs of each one left, read for those only, off indexes: their
    # partner's last registration, and their last nudge's moment and status. In the
    # select list, so that no plan works them out before the cut.
    def of_last_nudge(column: Any) -> Any:
        return (
            select(column)
            .where(*_nudges_about_the_salesperson(Reminder))
            .order_by(col(Reminder.id).desc())
            .limit(1)
            .scalar_subquery()
        )

    rows = await _read(
        session,
        select(
            *RECIPIENT_COLUMNS,
            select(func.max(col(Registration.registered_on)))
            .where(col(Registration.partner_id) == col(Salesperson.partner_id))
            .scalar_subquery(),
            of_last_nudge(col(Reminder.created_at)),
            of_last_nudge(col(Reminder.status)),
        )
        .where(*REACHABLE, col(Salesperson.linked_at) < cut, ~registered_lately, ~last_went_lately)
        .order_by(col(Salesperson.id)),  # the same order on both databases, run after run
    )
    zone = rules.timezone
    return [
        (
            _recipient(row, zone),
            date_of(row[8]),
            None if row[9] is None else (moment_of(row[9]).astimezone(zone).date(), row[10]),
        )
        for row in rows.all()
    ]


def _nudges_about_the_salesperson(nudge: type[Reminder]) -> tuple[Any, ...]:
    """`nudge` (Reminder or an alias) is a nudge to the salesperson of the enclosing
    query, about the partner they are with now."""
    return (
        col(nudge.kind) == ReminderKind.NUDGE,
        col(nudge.salesperson_id) == col(Salesperson.id),
        col(nudge.partner_id) == col(Salesperson.partner_id),
    )


async def _last_registrations(
    session: AsyncSession, partner_ids: Sequence[int]
) -> dict[int, dt.date]:
    """Each of these partners' latest registration date."""
    statement = select(col(Registration.partner_id), func.max(Registration.registered_on)).group_by(
        col(Registration.partner_id)
    )
    rows: list[Any] = []
    for chunk in in_chunks(partner_ids):
        rows += (
            await session.execute(statement.where(col(Registration.partner_id).in_(chunk)))
        ).all()
    found = {}
    for partner, day in rows:
        last = date_of(day)
        if last is not None:
            found[partner] = last
    return found


async def _registration_reminders(
    session: AsyncSession,
    rules: Rules,
    today: dt.date,
) -> list[Due]:
    """Follow-ups on open registrations, and notices of those that expired."""
    followup_days = dt.timedelta(days=rules.reminders.followup_days)
    open_ones_statement = (
        select(
            col(Registration.id),
            col(Registration.partner_id),
            col(Registration.salesperson_id),
            col(Registration.protected_until),
            col(Registration.expected_close),
        )
        .where(
            col(Registration.status) == Status.QUALIFIED,
            col(Registration.protected_until) >= today,
            (col(Registration.protected_until) <= today + followup_days)
            | (col(Registration.expected_close) <= today),
            _nobody_has(
                ReminderKind.FOLLOWUP,
                case(
                    (
                        col(Registration.protected_until) <= today + followup_days,
                        BEFORE_PROTECTION_ENDS,
                    ),
                    else_=ON_CLOSE_DATE,
                ),
            ),
        )
        .order_by(col(Registration.id))
    )
    expired_statement = (
        select(
            col(Registration.id),
            col(Registration.partner_id),
            col(Registration.salesperson_id),
            col(Registration.protected_until),
        )
        .where(
            col(Registration.status) == Status.EXPIRED,
            col(Registration.protected_until) < today,
            col(Registration.protected_until) >= today - dt.timedelta(days=EXPIRY_NOTICE_DAYS),
            _nobody_has(ReminderKind.EXPIRY, literal(EXPIRED_PERIOD)),
        )
        .order_by(col(Registration.id))
    )
    open_ones = (await _read(session, open_ones_statement)).all()
    expired = (await _read(session, expired_statement)).all()
    subjects = [registration_subject(cast(int, row[0])) for row in (*open_ones, *expired)]
    already = await _rows_for(session, subjects)
    by_partner: dict[int, list[Recipient]] = defaultdict(list)
    if open_ones or expired:
        # Their partners' people in one read, the partners named by the same filters.
        partners = union(
            select(open_ones_statement.subquery().c.partner_id),
            select(expired_statement.subquery().c.partner_id),
        )
        by_partner = await _reachable_salespeople(session, rules, partners)
    due: list[Due] = []
    for registration_id, partner_id, registered_by, until, close in open_ones:
        protection_due = until - followup_days
        period, due_on = (
            (BEFORE_PROTECTION_ENDS, protection_due)
            if today >= protection_due
            else (ON_CLOSE_DATE, close)
        )
        due += _to_registration_people(
            ReminderKind.FOLLOWUP,
            registration_id,
            partner_id,
            registered_by,
            period,
            due_on,
            by_partner,
            already,
        )
    for registration_id, partner_id, registered_by, until in expired:
        due += _to_registration_people(
            ReminderKind.EXPIRY,
            registration_id,
            partner_id,
            registered_by,
            EXPIRED_PERIOD,
            until + dt.timedelta(days=1),
            by_partner,
            already,
        )
    return due


def _nobody_has(kind: ReminderKind, period: Any) -> Any:
    """No reminder of this kind and period about the registration is with anybody (the
    rule _to_registration_people applies), said to the database: a tick with nothing new
    then reads none of the open registrations everyone was told about. The unique index
    on (kind, subject, period) finds them."""
    subject = literal(REGISTRATION_PREFIX) + cast_as(col(Registration.id), String)
    return ~exists().where(
        col(Reminder.kind) == kind,
        col(Reminder.subject) == subject,
        col(Reminder.period) == period,
        col(Reminder.status).in_(LIVE),
    )


def _to_registration_people(
    kind: ReminderKind,
    registration_id: Any,
    partner_id: int,
    registered_by: int | None,
    period: str,
    due_on: dt.date,
    by_partner: dict[int, list[Recipient]],
    already: dict[tuple[str, str], dict[int, str]],
) -> list[Due]:
    """The salesperson who registered the deal, or, if they left, turned reminders off or
    could not be reached, the partner's other salespeople; nobody once someone has it."""
    subject = registration_subject(registration_id)
    rows = already.get((subject, period), {})
    if any(status in LIVE for status in rows.values()):
        return []
    colleagues = [p for p in by_partner.get(partner_id, []) if p.salesperson_id not in rows]
    chosen = [p for p in colleagues if p.salesperson_id == registered_by] or colleagues
    return [
        Due(kind, subject, period, due_on, partner_id, registration_id, person) for person in chosen
    ]


async def _rows_for(
    session: AsyncSession, subjects: Sequence[str]
) -> dict[tuple[str, str], dict[int, str]]:
    """For each (subject, period): the people who have a reminder row, and its status."""
    found: dict[tuple[str, str], dict[int, str]] = defaultdict(dict)
    for chunk in in_chunks(subjects):
        rows = await session.execute(
            select(
                col(Reminder.subject),
                col(Reminder.period),
                col(Reminder.salesperson_id),
                col(Reminder.status),
            ).where(col(Reminder.subject).in_(chunk), col(Reminder.kind) != ReminderKind.NUDGE)
        )
        for subject, period, person, status in rows.all():
            found[(subject, period)][person] = status
    return found


@dataclass(frozen=True)
class Preview:
    """What a tick would do, computed and then rolled back."""

    expiring: int
    due: list[Due]
    partner_codes: dict[int, str]
    references: dict[int, str]


async def preview_reminders(*, session: AsyncSession, rules: Rules, moment: dt.datetime) -> Preview:
    """What the tick would expire and send at `moment`, changing nothing (a dry run)."""
    try:
        expiring = await release_lapsed_protection(
            session=session, today=rules.today(moment), at=moment
        )
        due = await due_reminders(session=session, rules=rules, now=moment)
        codes = dict((await session.execute(select(col(Partner.id), col(Partner.code)))).all())
        registrations = await _registrations(
            session, [d.registration_id for d in due if d.registration_id is not None]
        )
    finally:
        await session.rollback()
    return Preview(
        expiring=expiring,
        due=due,
        partner_codes={cast(int, k): str(v) for k, v in codes.items()},
        references={k: v.reference for k, v in registrations.items()},
    )


# --- claiming, sending, recording ---------------------------------------------------


async def claim_reminders(
    *, session: AsyncSession, due: Sequence[Due], token: str, now: dt.datetime
) -> list[int]:
    """Write down the due reminders, and take back those to try again, for this tick.

    The unique constraint lets a reminder be written once, whoever tries. Rows another
    tick claimed but never tried (it stopped) are safe to take again: a tick marks a row
    `sending` only if it still holds its claim.
    """
    await session.execute(
        update(Reminder)
        .where(col(Reminder.status) == ReminderStatus.RETRY, col(Reminder.attempts) >= MAX_ATTEMPTS)
        .values(status=ReminderStatus.FAILED)
    )
    await session.execute(
        update(Reminder)
        .where(col(Reminder.status).in_((ReminderStatus.RETRY, ReminderStatus.CLAIMED)))
        .values(status=ReminderStatus.CLAIMED, claim=token, attempts=col(Reminder.attempts) + 1)
    )
    rows = [
        {
            "kind": d.kind,
            "subject": d.subject,
            "period": d.period,
            "salesperson_id": d.recipient.salesperson_id,
            "partner_id": d.partner_id,
            "registration_id": d.registration_id,
            "due_on": d.due_on,
            "status": ReminderStatus.CLAIMED,
            "claim": token,
            "attempts": 1,
            "created_at": now,
        }
        for d in due
    ]
    insert = dialect_insert(session, Reminder).on_conflict_do_nothing()
    for chunk in in_chunks(rows):
        await session.execute(insert, chunk)
    await session.commit()
    claimed = await session.execute(
        select(col(Reminder.id))
        .where(col(Reminder.claim) == token, col(Reminder.status) == ReminderStatus.CLAIMED)
        .order_by(col(Reminder.id))
    )
    return [cast(int, i) for i in claimed.scalars()]


async def advance_reminders(
    *,
    session: AsyncSession,
    token: str,
    done: Sequence[Result],
    take: Sequence[int],
    give_back: Sequence[int] = (),
    now: dt.datetime,
) -> set[int]:
    """In one transaction: record how the sends in `done` went, give back `give_back`
    (handed over, never sent: the next tick tries them), and hand over those of `take`
    this tick still holds. Returns the ones handed over: each goes to Telegram once."""
    return await advance(
        session,
        table=Reminder,
        sending=ReminderStatus.SENDING,
        done=done,
        record=_record_reminders,
        give_back=give_back,
        given_back={"status": ReminderStatus.RETRY},
        take=take,
        free=(col(Reminder.claim) == token, col(Reminder.status) == ReminderStatus.CLAIMED),
        handed_over={"status": ReminderStatus.SENDING},
        now=now,
    )


async def release_claims(*, session: AsyncSession, token: str) -> None:
    """Give back what this tick claimed but never tried: the next tick sends it."""
    await session.execute(
        update(Reminder)
        .where(col(Reminder.claim) == token, col(Reminder.status) == ReminderStatus.CLAIMED)
        .values(status=ReminderStatus.RETRY)
    )
    await session.commit()


async def reminders_to_send(
    *, session: AsyncSession, rules: Rules, ids: Sequence[int], now: dt.datetime
) -> tuple[list[ToSend], list[int]]:
    """What each claimed reminder says; and the ones no longer due (their person left,
    turned reminders off, blocked the bot; the deal got an outcome)."""
    today = rules.today(now)
    rows: list[tuple[Reminder, Salesperson]] = []
    for chunk in in_chunks(list(ids)):
        result = await session.execute(
            select(Reminder, Salesperson)
            .join(Salesperson, col(Salesperson.id) == col(Reminder.salesperson_id))
            .where(col(Reminder.id).in_(chunk))
            .order_by(col(Reminder.id))
        )
        rows += [(r, s) for r, s in result.all()]
    registrations = await _registrations(
        session, [r.registration_id for r, _ in rows if r.registration_id is not None]
    )
    partners = await _partners(
        session, [r.partner_id for r, _ in rows if r.kind == ReminderKind.NUDGE]
    )
    last_registered = await _last_registrations(session, list(partners))
    standings = await loyalty_standings(
        session=session, rules=rules, today=today, partner_ids=list(partners)
    )
    ready, gone = [], []
    for reminder, person in rows:
        assert reminder.id is not None
        registration = registrations.get(reminder.registration_id or 0)
        if not _still_wanted(
            reminder, person, registration, last_registered.get(reminder.partner_id), today
        ):
            gone.append(reminder.id)
            continue
        due = Due(
            kind=ReminderKind(reminder.kind),
            subject=reminder.subject,
            period=reminder.period,
            due_on=reminder.due_on,
            partner_id=reminder.partner_id,
            registration_id=reminder.registration_id,
            recipient=Recipient.of(person, rules.timezone),
        )
        if reminder.kind == ReminderKind.NUDGE:
            anchor = dt.date.fromisoformat(reminder.period.split("/")[0])
            ready.append(
                ToSend(
                    reminder.id,
                    due,
                    company=partners[reminder.partner_id],
                    # The partner's silence: since its last deal, or since joining.
                    inactive_days=(today - last_registered.get(reminder.partner_id, anchor)).days,
                    standing=standings[reminder.partner_id],
                )
            )
        else:
            ready.append(ToSend(reminder.id, due, registration=registration))
    return ready, gone


def _still_wanted(
    reminder: Reminder,
    person: Salesperson,
    registration: RegistrationView | None,
    last_registered: dt.date | None,
    today: dt.date,
) -> bool:
    if (
        person.unlinked_at is not None
        or person.unreachable_at is not None
        or not person.reminders_enabled
        or person.partner_id != reminder.partner_id
    ):
        return False
    if reminder.kind == ReminderKind.FOLLOWUP:
        return registration is not None and registration.open_on(today)
    if reminder.kind == ReminderKind.EXPIRY:
        return registration is not None and registration.status == Status.EXPIRED
    # A nudge waiting for a retry is moot once the partner registered again.
    anchor = dt.date.fromisoformat(reminder.period.split("/")[0])
    return last_registered is None or last_registered <= anchor


async def _registrations(session: AsyncSession, ids: Iterable[int]) -> dict[int, RegistrationView]:
    found: dict[int, RegistrationView] = {}
    for chunk in in_chunks(sorted(set(ids))):
        result = await session.execute(select(Registration).where(col(Registration.id).in_(chunk)))
        for registration in result.scalars():
            view = RegistrationView.of(registration)
            found[view.id] = view
    return found


async def _partners(session: AsyncSession, ids: Iterable[int]) -> dict[int, str]:
    found: dict[int, str] = {}
    for chunk in in_chunks(sorted(set(ids))):
        result = await session.execute(
            select(col(Partner.id), col(Partner.company)).where(col(Partner.id).in_(chunk))
        )
        found.update({cast(int, i): str(company) for i, company in result.all()})
    return found


async def _record_reminders(
    session: AsyncSession, done: Sequence[Result], now: dt.datetime
) -> None:
    """How the sends went, one statement per status. A blocked bot marks its person
    unreachable."""
    by_status: dict[ReminderStatus, list[int]] = defaultdict(list)
    for result in done:
        by_status[AFTER_SEND[result.outcome].reminder].append(result.id)
    for status, ids in by_status.items():
        values: dict[str, object] = {"status": status}
        if status == ReminderStatus.SENT:
            values["sent_at"] = now
        for chunk in in_chunks(ids):
            await session.execute(
                update(Reminder).where(col(Reminder.id).in_(chunk)).values(**values),
                execution_options=UNSYNCHRONISED,
            )
    await mark_unreachable(
        session=session,
        people=[r.salesperson_id for r in done if r.outcome == Outcome.BLOCKED],
        now=now,
    )
