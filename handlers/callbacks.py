"""Button data: every button the bot offers is built and read back here, and only here.

Telegram hands back whatever a client puts in a button's data, so data is parsed,
never trusted: a fixed shape per kind, bounded numbers, and only the values the
bot itself offers. Anything else, like a button of an older version of the bot,
reads as None and is answered as an expired button.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.domain.references import ALPHABET, LENGTH, PREFIX
from bot.i18n import LANGUAGES

VERSION = "1"
CLOSE_IN_DAYS = (30, 60, 90)
MAX_AMOUNT_CHOICES = 2
# Far beyond any partner's registrations, and small enough to stay an int everywhere.
MAX_OFFSET = 100_000

_NUMBER = re.compile(r"^\d{1,6}$")
_DRAFT_ID = re.compile(r"^[A-Za-z0-9_-]{8}$")
_REFERENCE_CODE = re.compile(rf"^[{ALPHABET}]{{{LENGTH}}}$")
_INVITE_TOKEN = re.compile(r"^[A-Za-z0-9_-]{32}$")
# A VAT number as the bot normalises it: country prefix, then letters and digits.
_VAT = re.compile(r"^[A-Z]{2}[A-Z0-9]{2,13}$")
_ORDINAL = re.compile(r"^\d{6}$")
_ITEM = re.compile(r"^[1-9]\d{0,9}$")


@dataclass(frozen=True)
class CloseIn:
    """A close date N days from today, on the close-date question."""

    draft: str
    days: int

    @property
    def data(self) -> str:
        return _join("n", "c", self.draft, str(self.days))


@dataclass(frozen=True)
class PickAmount:
    """One of the readings of an amount the bot asked back about."""

    draft: str
    index: int

    @property
    def data(self) -> str:
        return _join("n", "a", self.draft, str(self.index))


@dataclass(frozen=True)
class ConfirmDraft:
    draft: str

    @property
    def data(self) -> str:
        return _join("n", "ok", self.draft)


@dataclass(frozen=True)
class CancelDraft:
    draft: str

    @property
    def data(self) -> str:
        return _join("n", "x", self.draft)


@dataclass(frozen=True)
class ShowPage:
    """A page of /status, starting at `offset`."""

    offset: int

    @property
    def data(self) -> str:
        return _join("s", "p", str(self.offset))


@dataclass(frozen=True)
class OpenRegistration:
    reference: str
    offset: int  # the page to go back to

    @property
    def data(self) -> str:
        return _join("s", "o", _code(self.reference), str(self.offset))


@dataclass(frozen=True)
class ReportWon:
    reference: str
    offset: int

    @property
    def data(self) -> str:
        return _join("s", "w", _code(self.reference), str(self.offset))


@dataclass(frozen=True)
class AskLost:
    """Lost, first press: asks for confirmation, since it frees the customer."""

    reference: str
    offset: int

    @property
    def data(self) -> str:
        return _join("s", "l", _code(self.reference), str(self.offset))


@dataclass(frozen=True)
class ReportLost:
    reference: str
    offset: int

    @property
    def data(self) -> str:
        return _join("s", "L", _code(self.reference), str(self.offset))


@dataclass(frozen=True)
class SetLanguage:
    language: str

    @property
    def data(self) -> str:
        return _join("g", "lang", self.language)


@dataclass(frozen=True)
class SetReminders:
    on: bool

    @property
    def data(self) -> str:
        return _join("g", "rem", "on" if self.on else "off")


@dataclass(frozen=True)
class MoveToPartner:
    """Yes to "you are linked to ACME; move to BETA?": the invite is used only now."""

    token: str

    @property
    def data(self) -> str:
        return _join("i", "move", self.token)


@dataclass(frozen=True)
class StayWithPartner:
    @property
    def data(self) -> str:
        return _join("i", "stay")


@dataclass(frozen=True)
class PickVat:
    """One of the VAT numbers read off a photo: goes on as if typed (PRODUCT.md §6)."""

    draft: str
    vat: str

    @property
    def data(self) -> str:
        return _join("n", "v", self.draft, self.vat)


@dataclass(frozen=True)
class UseViesName:
    """The company name VIES gave, as the answer to the company question."""

    draft: str

    @property
    def data(self) -> str:
        return _join("n", "vn", self.draft)


@dataclass(frozen=True)
class SendMyData:
    """/privacy: the person's data as a JSON document (PRODUCT.md §8)."""

    @property
    def data(self) -> str:
        return _join("y", "data")


@dataclass(frozen=True)
class EraseMe:
    """/privacy: asks once more (`confirmed` False), then erases; `cancel` keeps all."""

    confirmed: bool = False
    cancel: bool = False

    @property
    def data(self) -> str:
        return _join("y", "erase", "x" if self.cancel else ("y" if self.confirmed else "a"))


@dataclass(frozen=True)
class StartRegistration:
    """ "Register a deal", under a nudge: the same as /new."""

    @property
    def data(self) -> str:
        return _join("n", "new")


# Why a deal was lost, as the follow-up asks it; the keys are catalogue suffixes.
LOST_REASONS = ("price", "competitor", "budget", "decision", "other")


@dataclass(frozen=True)
class FollowupWon:
    reference: str

    @property
    def data(self) -> str:
        return _join("f", "w", _code(self.reference))


@dataclass(frozen=True)
class FollowupLost:
    """Lost, first press: asks why."""

    reference: str

    @property
    def data(self) -> str:
        return _join("f", "l", _code(self.reference))


@dataclass(frozen=True)
class FollowupLostBecause:
    reference: str
    reason: str

    @property
    def data(self) -> str:
        return _join("f", "r", _code(self.reference), self.reason)


@dataclass(frozen=True)
class FollowupStillOpen:
    reference: str

    @property
    def data(self) -> str:
        return _join("f", "o", _code(self.reference))


@dataclass(frozen=True)
class Contest:
    """Contest the refusal given on `day` for `vat` (PRODUCT.md §5)."""

    vat: str
    day: dt.date

    @property
    def data(self) -> str:
        return _join("d", "c", self.vat, str(self.day.toordinal()))


# Common reasons to contest a refusal; the keys are catalogue suffixes.
CONTEST_REASONS = ("first_contact", "different_branch", "holder_inactive", "history_wrong")


@dataclass(frozen=True)
class ContestBecause:
    draft: str
    reason: str

    @property
    def data(self) -> str:
        return _join("d", "r", self.draft, self.reason)


@dataclass(frozen=True)
class SkipEvidence:
    draft: str

    @property
    def data(self) -> str:
        return _join("d", "s", self.draft)


@dataclass(frozen=True)
class AskMoreTime:
    """Ask staff for more time on a registration: a reason is asked next."""

    reference: str

    @property
    def data(self) -> str:
        return _join("m", "t", _code(self.reference))


@dataclass(frozen=True)
class SkipProof:
    """No proof for the won deal now (offered only when the rules do not require it)."""

    reference: str

    @property
    def data(self) -> str:
        return _join("m", "p", _code(self.reference))


# The buttons of a /new conversation: they belong to one draft.
DraftButton = (
    CloseIn
    | PickAmount
    | ConfirmDraft
    | CancelDraft
    | ContestBecause
    | SkipEvidence
    | PickVat
    | UseViesName
)
# /privacy's buttons.
PrivacyButton = SendMyData | EraseMe
# Buttons about conflicts that are not a draft's: each names what it is about.
ConflictButton = Contest | AskMoreTime | SkipProof


@dataclass(frozen=True)
class Approve:
    """Staff approve a won deal."""

    reference: str

    @property
    def data(self) -> str:
        return _join("a", "y", _code(self.reference))


@dataclass(frozen=True)
class Reject:
    """Staff reject a won deal: a reason is asked next."""

    reference: str

    @property
    def data(self) -> str:
        return _join("a", "n", _code(self.reference))


@dataclass(frozen=True)
class Grant:
    """Staff grant a dispute or a request for more time (the item's number)."""

    item: int

    @property
    def data(self) -> str:
        return _join("a", "g", str(self.item))


@dataclass(frozen=True)
class Refuse:
    """Staff refuse a dispute or a request for more time: a reason is asked next."""

    item: int

    @property
    def data(self) -> str:
        return _join("a", "r", str(self.item))


@dataclass(frozen=True)
class BroadcastTo:
    """The audience of the broadcast being written: all, level:gold, inactive:30, open."""

    audience: str

    @property
    def data(self) -> str:
        return _join("b", "a", self.audience)


@dataclass(frozen=True)
class BroadcastSend:
    @property
    def data(self) -> str:
        return _join("b", "send")


@dataclass(frozen=True)
class BroadcastCancel:
    @property
    def data(self) -> str:
        return _join("b", "x")


@dataclass(frozen=True)
class ImportFile:
    """Import (`go`) or Cancel under the preview of a staff member's file."""

    token: str
    go: bool

    @property
    def data(self) -> str:
        return _join("s", "i", self.token, "y" if self.go else "n")


@dataclass(frozen=True)
class MarkPaid:
    """Under the payouts file: ask to mark its rows paid (`confirmed` False), then do it;
    `cancel` keeps them unpaid."""

    token: str
    confirmed: bool = False
    cancel: bool = False

    @property
    def data(self) -> str:
        step = "x" if self.cancel else ("y" if self.confirmed else "a")
        return _join("s", "p", self.token, step)


INACTIVE_DAYS = (30, 60, 90)
_AUDIENCE = re.compile(r"^(all|open|level:[a-z0-9_-]{1,30}|inactive:(30|60|90))$")

# The buttons staff press; nobody else's presses do anything.
StaffButton = (
    Approve
    | Reject
    | Grant
    | Refuse
    | BroadcastTo
    | BroadcastSend
    | BroadcastCancel
    | ImportFile
    | MarkPaid
)
# The buttons of a follow-up on an open registration.
FollowupButton = FollowupWon | FollowupLost | FollowupLostBecause | FollowupStillOpen
# The buttons of /status, /settings and invites.
PartnerButton = (
    ShowPage
    | OpenRegistration
    | ReportWon
    | AskLost
    | ReportLost
    | SetLanguage
    | SetReminders
    | MoveToPartner
    | StayWithPartner
)

_OUTCOMES: dict[str, type[OpenRegistration | ReportWon | AskLost | ReportLost]] = {
    "o": OpenRegistration,
    "w": ReportWon,
    "l": AskLost,
    "L": ReportLost,
}


Button = (
    DraftButton
    | PartnerButton
    | FollowupButton
    | StartRegistration
    | StaffButton
    | ConflictButton
    | PrivacyButton
)

_FOLLOWUPS: dict[str, type[FollowupWon | FollowupLost | FollowupStillOpen]] = {
    "w": FollowupWon,
    "l": FollowupLost,
    "o": FollowupStillOpen,
}


# A button as offered: its label, and what pressing it means.
Key = tuple[str, Button]


def keyboard(*rows: Sequence[Key]) -> InlineKeyboardMarkup:
    """Buttons in rows under a message; each button's data is built here, never by hand."""
    return InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(label, callback_data=button.data) for label, button in row]
            for row in rows
        ]
    )


def parse(data: str | None) -> Button | None:
    """The button behind callback data, or None for anything the bot did not offer."""
    if not data or len(data) > 64:
        return None
    version, _, rest = data.partition(":")
    if version != VERSION:
        return None
    parts = rest.split(":")
    match parts:
        case ["n", "c", draft, days] if _draft(draft) and _bounded(days, 366) in CLOSE_IN_DAYS:
            return CloseIn(draft, int(days))
        case ["n", "a", draft, index] if _draft(draft) and (
            _bounded(index, MAX_AMOUNT_CHOICES - 1) is not None
        ):
            return PickAmount(draft, int(index))
        case ["n", "ok", draft] if _draft(draft):
            return ConfirmDraft(draft)
        case ["n", "x", draft] if _draft(draft):
            return CancelDraft(draft)
        case ["n", "new"]:
            return StartRegistration()
        case ["y", "data"]:
            return SendMyData()
        case ["y", "erase", step] if step in ("a", "y", "x"):
            return EraseMe(confirmed=step == "y", cancel=step == "x")
        case ["s", "i", token, go] if _draft(token) and go in ("y", "n"):
            return ImportFile(token, go == "y")
        case ["s", "p", token, step] if _draft(token) and step in ("a", "y", "x"):
            return MarkPaid(token, confirmed=step == "y", cancel=step == "x")
        case ["n", "v", draft, vat] if _draft(draft) and _VAT.match(vat):
            return PickVat(draft, vat)
        case ["n", "vn", draft] if _draft(draft):
            return UseViesName(draft)
        case ["d", "c", vat, day] if _VAT.match(vat) and _day(day) is not None:
            return Contest(vat, dt.date.fromordinal(int(day)))
        case ["d", "r", draft, reason] if _draft(draft) and reason in CONTEST_REASONS:
            return ContestBecause(draft, reason)
        case ["d", "s", draft] if _draft(draft):
            return SkipEvidence(draft)
        case ["m", "t", code] if _REFERENCE_CODE.match(code):
            return AskMoreTime(PREFIX + code)
        case ["m", "p", code] if _REFERENCE_CODE.match(code):
            return SkipProof(PREFIX + code)
        case ["a", ("g" | "r") as verdict, item] if _ITEM.match(item):
            return Grant(int(item)) if verdict == "g" else Refuse(int(item))
        case ["f", kind, code] if kind in _FOLLOWUPS and _REFERENCE_CODE.match(code):
            return _FOLLOWUPS[kind](PREFIX + code)
        case ["f", "r", code, reason] if _REFERENCE_CODE.match(code) and reason in LOST_REASONS:
            return FollowupLostBecause(PREFIX + code, reason)
        case ["s", "p", offset] if _bounded(offset, MAX_OFFSET) is not None:
            return ShowPage(int(offset))
        case ["s", kind, code, offset] if (
            kind in _OUTCOMES
            and _REFERENCE_CODE.match(code)
            and _bounded(offset, MAX_OFFSET) is not None
        ):
            return _OUTCOMES[kind](PREFIX + code, int(offset))
        case ["g", "lang", language] if language in LANGUAGES:
            return SetLanguage(language)
        case ["g", "rem", ("on" | "off") as value]:
            return SetReminders(value == "on")
        case ["i", "move", token] if _INVITE_TOKEN.match(token):
            return MoveToPartner(token)
        case ["i", "stay"]:
            return StayWithPartner()
        case ["b", "a", kind, *value] if _AUDIENCE.match(":".join([kind, *value])):
            return BroadcastTo(":".join([kind, *value]))
        case ["b", "send"]:
            return BroadcastSend()
        case ["b", "x"]:
            return BroadcastCancel()
        case ["a", ("y" | "n") as verdict, code] if _REFERENCE_CODE.match(code):
            return Approve(PREFIX + code) if verdict == "y" else Reject(PREFIX + code)
    return None


def _join(*parts: str) -> str:
    return ":".join((VERSION, *parts))


def _code(reference: str) -> str:
    """The six characters of a reference: its prefix would only spend the 64 bytes allowed."""
    return reference.removeprefix(PREFIX)


def _day(text: str) -> dt.date | None:
    """A day as its proleptic ordinal (six digits: years 1 to 2738), else None."""
    if not _ORDINAL.match(text):
        return None
    return dt.date.fromordinal(int(text))


def _draft(text: str) -> bool:
    return bool(_DRAFT_ID.match(text))


def _bounded(text: str, maximum: int) -> int | None:
    """A whole number from 0 to `maximum` written in plain digits, else None."""
    if not _NUMBER.match(text):
        return None
    value = int(text)
    return value if value <= maximum else None
