"""The tables. Plain SQLModel classes: no programme logic lives here."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import BigInteger, Index, UniqueConstraint, false
from sqlmodel import Field, SQLModel

from models.types import Cents, DecimalText, UTCDateTime

# Field limits, defined once: the tables use them, and so does every check of
# what people type or load before it is stored.
CODE_LENGTH = 40
NAME_LENGTH = 200  # partner companies and customers
PRODUCT_LENGTH = 200
REFERENCE_LENGTH = 10  # "PAI-" and six characters
VAT_LENGTH = 20
LANGUAGE_CODE_LENGTH = 16  # an IETF tag as Telegram reports it: "it", "pt-br"
USERNAME_LENGTH = 64
NAME_BLOCK_LENGTH = 40
NOTE_LENGTH = 500  # a reason typed by a partner or staff
FILE_ID_LENGTH = 255  # Telegram's file ids are long, and grow


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class PartnerBase(SQLModel):
    code: str = Field(max_length=CODE_LENGTH, unique=True)
    company: str = Field(max_length=NAME_LENGTH)
    level: str = Field(max_length=40)


class Partner(PartnerBase, table=True):
    id: int | None = Field(default=None, primary_key=True)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Salesperson(SQLModel, table=True):
    """A Telegram account linked to a partner company."""

    id: int | None = Field(default=None, primary_key=True)
    telegram_user_id: int = Field(sa_type=BigInteger, unique=True)
    partner_id: int = Field(foreign_key="partner.id", index=True)
    # None until the salesperson picks one: Telegram's language is used meanwhile.
    language: str | None = Field(default=None, max_length=8)
    # The language Telegram last reported, kept for the messages the bot starts itself
    # (reminders, broadcasts) to people who never opened /settings.
    telegram_language: str | None = Field(default=None, max_length=LANGUAGE_CODE_LENGTH)
    # For staff's list of who is linked: the name and @username Telegram shows.
    display_name: str | None = Field(default=None, max_length=NAME_LENGTH)
    username: str | None = Field(default=None, max_length=USERNAME_LENGTH)
    reminders_enabled: bool = True
    linked_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_seen_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Set when staff unlink the person: the row stays, so their past registrations
    # still say who made them, but the account no longer works for the partner.
    unlinked_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Set when Telegram refused a message because the person blocked the bot (403):
    # the bot writes first no more until they talk to it again.
    unreachable_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)


class Invite(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    token: str = Field(max_length=64, unique=True)
    partner_id: int = Field(foreign_key="partner.id", index=True)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: dt.datetime = Field(sa_type=UTCDateTime)
    used_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    used_by_salesperson_id: int | None = Field(default=None, foreign_key="salesperson.id")


class Customer(SQLModel, table=True):
    """A customer's name from the vendor's sales history (never one a partner typed)."""

    vat: str = Field(primary_key=True, max_length=VAT_LENGTH)
    name: str = Field(max_length=NAME_LENGTH)
    # The name's block key (bot/domain/names.py `name_block`: its longest telling word
    # once legal forms, case, accents and punctuation are set aside): similar names are
    # looked for among its equals and near blocks.
    name_block: str | None = Field(default=None, max_length=NAME_BLOCK_LENGTH, index=True)


class Purchase(SQLModel, table=True):
    """One dated purchase from the vendor's sales history."""

    __table_args__ = (
        # Both the idempotent re-import and the "last purchase" lookup ride on this index.
        UniqueConstraint("vat", "purchase_date", name="uq_purchase_vat_date"),
    )

    id: int | None = Field(default=None, primary_key=True)
    vat: str = Field(max_length=VAT_LENGTH)
    purchase_date: dt.date


class Registration(SQLModel, table=True):
    __table_args__ = (
        # Covers the loyalty count (partner, date window, not rejected) without table reads.
        Index("ix_registration_loyalty", "partner_id", "registered_on", "status"),
        Index("ix_registration_dispute_key", "dispute_key", unique=True),
    )

    id: int | None = Field(default=None, primary_key=True)
    # What partners see: random, so a reference tells nobody how many others exist.
    reference: str = Field(max_length=REFERENCE_LENGTH, unique=True)
    partner_id: int = Field(foreign_key="partner.id")
    salesperson_id: int | None = Field(default=None, foreign_key="salesperson.id")
    vat: str = Field(max_length=VAT_LENGTH, index=True)
    # As the vendor's history names the customer, else as the partner typed it:
    # a typed name stays with this registration and is shown to nobody else.
    customer_name: str = Field(max_length=NAME_LENGTH)
    registered_on: dt.date
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    protected_until: dt.date
    # Holds the VAT number while the registration protects its customer and NULL
    # after: the unique constraint is what lets exactly one partner win a race.
    protection_key: str | None = Field(default=None, max_length=VAT_LENGTH, unique=True)
    status: str = Field(max_length=16, index=True)
    deal_value: Decimal = Field(sa_type=Cents)
    product: str = Field(max_length=PRODUCT_LENGTH)
    expected_close: dt.date
    incentive_amount: Decimal = Field(sa_type=Cents)
    currency: str = Field(max_length=3)
    incentive_version: dt.date
    level: str = Field(max_length=40)
    loyalty_min_registrations: int | None = None
    loyalty_multiplier: Decimal | None = Field(default=None, sa_type=DecimalText)
    loyalty_count: int = 0
    # `partner_id:vat` while the registration is `disputed`, NULL after: unique, so a
    # partner has one open dispute per customer however many salespeople press at once.
    dispute_key: str | None = Field(default=None, max_length=40)
    # Requests for more time made (each one used, granted or not: PRODUCT.md §5), and
    # whether one waits for staff: while it does, the protection does not end.
    extensions: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    awaiting_extension: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    name_block: str | None = Field(default=None, max_length=NAME_BLOCK_LENGTH, index=True)


class StatusChange(SQLModel, table=True):
    """Every move of a registration through its lifecycle, with who and when."""

    id: int | None = Field(default=None, primary_key=True)
    registration_id: int = Field(foreign_key="registration.id", index=True)
    from_status: str | None = Field(default=None, max_length=16)
    to_status: str = Field(max_length=16)
    changed_by: str = Field(max_length=64)
    changed_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    note: str | None = Field(default=None, max_length=500)


class Reminder(SQLModel, table=True):
    """One message the bot started (a nudge, a follow-up, an expiry notice) to one person.

    The row is written before the send, under the unique constraint, so a second
    tick, a second instance or a restart can never send the same reminder again.
    """

    __table_args__ = (
        UniqueConstraint("kind", "subject", "period", "salesperson_id", name="uq_reminder_once"),
        Index("ix_reminder_kind_due", "kind", "due_on"),
        # A salesperson's last nudge about their partner, for the tick's cut
        # (bot/services/reminders.py), read from the index alone.
        Index("ix_reminder_last_nudge", "salesperson_id", "partner_id", "kind", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=16)  # nudge, followup, expiry
    # What it is about: "partner:12" or "registration:345" (never NULL, so the
    # unique constraint holds on both databases).
    subject: str = Field(max_length=40)
    # Which occurrence: a nudge's inactivity cycle, a follow-up's reason.
    period: str = Field(max_length=40)
    salesperson_id: int = Field(foreign_key="salesperson.id", index=True)
    partner_id: int = Field(foreign_key="partner.id")
    registration_id: int | None = Field(default=None, foreign_key="registration.id")
    due_on: dt.date
    # sending (claimed, maybe sent), sent, retry (a network error), blocked (403),
    # skipped (no longer due when its turn came)
    status: str = Field(max_length=16, index=True)
    claim: str = Field(max_length=32, index=True)  # the tick that claimed it
    attempts: int = 0
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    sent_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)


class StaffMember(SQLModel, table=True):
    """A staff member (PAI_ADMIN_IDS) as Telegram last showed them: the language of the
    texts the bot starts to them, and the name that says who decided."""

    telegram_user_id: int = Field(
        sa_type=BigInteger, primary_key=True, sa_column_kwargs={"autoincrement": False}
    )
    display_name: str | None = Field(default=None, max_length=NAME_LENGTH)
    username: str | None = Field(default=None, max_length=USERNAME_LENGTH)
    telegram_language: str | None = Field(default=None, max_length=LANGUAGE_CODE_LENGTH)
    last_seen_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class StaffItem(SQLModel, table=True):
    """Something staff are to decide: a won deal, a dispute, a request for more time.

    Due `approval_hours` after it arrived; closed once when decided (the first
    decision counts: the UPDATE that closes it names `decided_at IS NULL`)."""

    __table_args__ = (Index("ix_staffitem_open", "decided_at", "due_at"),)

    id: int | None = Field(default=None, primary_key=True)
    registration_id: int = Field(foreign_key="registration.id", index=True)
    kind: str = Field(max_length=16)  # won, dispute, extension
    arrived_at: dt.datetime = Field(sa_type=UTCDateTime)
    due_at: dt.datetime = Field(sa_type=UTCDateTime)
    # What the partner said with it (why more time is needed).
    note: str | None = Field(default=None, max_length=NOTE_LENGTH)
    decided_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    decided_by: str | None = Field(default=None, max_length=64)
    # approved, rejected, granted, refused; closed, when the registration moved on
    # otherwise (a dispute granted revoked the deal it was about).
    outcome: str | None = Field(default=None, max_length=16)
    reason: str | None = Field(default=None, max_length=NOTE_LENGTH)


class Dispute(SQLModel, table=True):
    """Why a partner contests a refusal, and what stood against it on the day."""

    registration_id: int = Field(
        foreign_key="registration.id", primary_key=True, sa_column_kwargs={"autoincrement": False}
    )
    reason: str = Field(max_length=NOTE_LENGTH)
    # The protection contested (another partner's registration), or, for "not new",
    # the last purchase in the vendor's history then.
    against_registration_id: int | None = Field(default=None, foreign_key="registration.id")
    last_purchase: dt.date | None = None


class Attachment(SQLModel, table=True):
    """A file a partner sent about a registration: evidence for a dispute, proof of a won
    deal. The file stays in Telegram; only its id is kept."""

    id: int | None = Field(default=None, primary_key=True)
    registration_id: int = Field(foreign_key="registration.id", index=True)
    purpose: str = Field(max_length=16)  # evidence, proof
    kind: str = Field(max_length=16)  # photo, document
    file_id: str = Field(max_length=FILE_ID_LENGTH)
    file_name: str | None = Field(default=None, max_length=NAME_LENGTH)
    added_by: str = Field(max_length=64)
    added_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class StaffDigest(SQLModel, table=True):
    """One day's digest of overdue items to one person: written before the send, so that
    no tick, instance or restart sends it twice."""

    day: dt.date = Field(primary_key=True)
    chat_id: int = Field(
        sa_type=BigInteger, primary_key=True, sa_column_kwargs={"autoincrement": False}
    )
    status: str = Field(max_length=16)  # sending, sent, failed
    sent_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)


class StaffNotice(SQLModel, table=True):
    """A message that asked a staff member to decide on an item: edited once decided."""

    id: int | None = Field(default=None, primary_key=True)
    registration_id: int = Field(foreign_key="registration.id", index=True)
    item_id: int | None = Field(default=None, foreign_key="staffitem.id", index=True)
    chat_id: int = Field(sa_type=BigInteger)
    message_id: int = Field(sa_type=BigInteger)


class VerdictTally(SQLModel, table=True):
    """How many verdicts of each kind the bot gave each day: the programme's numbers."""

    __table_args__ = (UniqueConstraint("day", "outcome", name="uq_verdict_tally"),)

    id: int | None = Field(default=None, primary_key=True)
    day: dt.date
    outcome: str = Field(max_length=16)  # new, not_new, protected, yours
    count: int = 0


class Broadcast(SQLModel, table=True):
    """A programme update staff sent to many partners at once."""

    id: int | None = Field(default=None, primary_key=True)
    created_by: int = Field(sa_type=BigInteger)  # the staff member's Telegram id
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    text_html: str  # as staff wrote it, formatting kept
    audience: str = Field(max_length=40)  # all, level:gold, inactive:30, open
    status: str = Field(max_length=16)  # sending, done
    # The message that shows staff the progress, edited as it goes.
    progress_chat_id: int | None = Field(default=None, sa_type=BigInteger)
    progress_message_id: int | None = Field(default=None, sa_type=BigInteger)
    finished_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)


class BroadcastDelivery(SQLModel, table=True):
    """One recipient of a broadcast: written before the first send, marked as it goes."""

    __table_args__ = (
        UniqueConstraint("broadcast_id", "salesperson_id", name="uq_delivery_once"),
        Index("ix_delivery_broadcast_status", "broadcast_id", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    broadcast_id: int = Field(foreign_key="broadcast.id")
    salesperson_id: int = Field(foreign_key="salesperson.id")
    # pending, sending (handed to Telegram: never sent again), delivered, blocked,
    # retry (failed before reaching Telegram; `next_attempt_at` says when), failed
    status: str = Field(max_length=16)
    attempts: int = 0
    next_attempt_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    sent_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    error: str | None = Field(default=None, max_length=200)


class BotState(SQLModel, table=True):
    """Small facts the bot remembers across restarts (e.g. its username)."""

    key: str = Field(primary_key=True, max_length=64)
    value: str = Field(max_length=500)


class ConversationState(SQLModel, table=True):
    """Where one user is in one conversation with the bot, as plain JSON.

    Read on every update and written whenever it changes, so a restart, a crash or the
    next update landing on another instance finds the conversation where it was.
    """

    telegram_user_id: int = Field(
        sa_type=BigInteger, primary_key=True, sa_column_kwargs={"autoincrement": False}
    )
    kind: str = Field(primary_key=True, max_length=16)  # registration, reject, broadcast
    state: str  # JSON of plain values
    updated_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class HandledUpdate(SQLModel, table=True):
    """An update the bot has taken to handle: Telegram sends one again when it did not
    get the webhook's 200 (an instance died behind the proxy), and a poller that died
    fetches its last batch again. Kept for two days, longer than Telegram keeps one."""

    update_id: int = Field(
        sa_type=BigInteger, primary_key=True, sa_column_kwargs={"autoincrement": False}
    )
    handled_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)


class Lease(SQLModel, table=True):
    """Work one instance may do at a time (scheduled work, broadcasts): who, and until when.

    The holder renews it well before it ends; when the holder dies, another instance
    takes it once it has ended.
    """

    name: str = Field(primary_key=True, max_length=40)
    holder: str = Field(max_length=100)
    expires_at: dt.datetime = Field(sa_type=UTCDateTime)


class SendBudget(SQLModel, table=True):
    """Telegram's overall limit for the bot, shared by every instance: a token bucket."""

    name: str = Field(primary_key=True, max_length=40)
    tokens: float
    refilled_at: float  # seconds since the epoch, on the database server's clock


__all__ = [
    "CODE_LENGTH",
    "FILE_ID_LENGTH",
    "LANGUAGE_CODE_LENGTH",
    "NAME_BLOCK_LENGTH",
    "NAME_LENGTH",
    "NOTE_LENGTH",
    "PRODUCT_LENGTH",
    "REFERENCE_LENGTH",
    "USERNAME_LENGTH",
    "VAT_LENGTH",
    "Attachment",
    "BotState",
    "Broadcast",
    "BroadcastDelivery",
    "ConversationState",
    "Customer",
    "Dispute",
    "HandledUpdate",
    "Invite",
    "Lease",
    "Partner",
    "PartnerBase",
    "Purchase",
    "Registration",
    "Reminder",
    "Salesperson",
    "SendBudget",
    "StaffDigest",
    "StaffItem",
    "StaffMember",
    "StaffNotice",
    "StatusChange",
    "VerdictTally",
    "utcnow",
]


class ViesCheck(SQLModel, table=True):
    """What the EU's VIES service said of a VAT number (PRODUCT.md §6).

    An answer (valid, invalid) serves for 30 days. A failure is no answer: the row
    says when the tick asks again (hourly, for a day after the first failure) and the
    answer it had before, if any, stays beside it for staff.
    """

    vat: str = Field(primary_key=True, max_length=20)
    outcome: str = Field(max_length=16)  # valid, invalid, unavailable
    name: str | None = Field(default=None, max_length=NAME_LENGTH)
    address: str | None = Field(default=None, max_length=500)
    answered_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Why the last try failed (VIES's code: MS_UNAVAILABLE, TIMEOUT…) and since when.
    error: str | None = Field(default=None, max_length=40)
    failing_since: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    retry_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)


class AccessLog(SQLModel, table=True):
    """A staff look-up of partners' data (PRODUCT.md §8): who looked, at what, when.
    Kept one year (the tick deletes older rows)."""

    id: int | None = Field(default=None, primary_key=True)
    at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    # A staff member's Telegram id as `staff:ID`, or `cli` for the shell.
    who: str = Field(max_length=40)
    # What was looked at: `find IT00743110157`, `export registrations`, `web pending`…
    what: str = Field(max_length=200)
