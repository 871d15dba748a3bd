"""The EU's VIES record of a VAT number, beside every verdict (PRODUCT.md §6).

VIES answers a POST of `{"countryCode": "IT", "vatNumber": "00743110157"}` with
`{"valid": true, "name": "...", "address": "...", ...}` ("---" where a member state
keeps the name back), or with `{"actionSucceed": false, "errorWrappers": [{"error":
"MS_UNAVAILABLE"}]}` when a member state's service is down or busy. It is slow at
times and throttles each member state, so:

- a look-up never takes longer than `TIMEOUT` seconds, waiting for a free slot
  included (at most `AT_ONCE` requests in flight per process);
- answers are kept 30 days in `viescheck`; failures are not answers: the row says
  when the tick asks again (hourly, for 24 hours after the first failure);
- newness never depends on it: a failure is said, and the registration goes on.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import aiohttp
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from bot.storage.database import dialect_insert, in_chunks
from models import ViesCheck

log = logging.getLogger(__name__)

TIMEOUT = 5.0
AT_ONCE = 4
KEPT = dt.timedelta(days=30)
RETRY_EVERY = dt.timedelta(hours=1)
RETRY_FOR = dt.timedelta(hours=24)
RETRIES_PER_TICK = 20
# Retries go out one or two at a time: VIES's slots stay free for the people waiting
# for a verdict.
RETRIES_AT_ONCE = 2
# VIES's member states: the EU's, Northern Ireland (XI); Greece is EL there too.
MEMBER_STATES = frozenset(
    {
        *("AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "EL", "ES", "FI", "FR", "HR", "HU"),
        *("IE", "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK", "XI"),
    }
)
# VIES's codes for "the number's format is wrong": an answer (not valid), not a failure.
_INVALID_CODES = frozenset({"INVALID_INPUT", "INVALID"})
_HIDDEN = {"", "---", "N/A"}


class ViesOutcome(StrEnum):
    VALID = "valid"
    INVALID = "invalid"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class ViesAnswer:
    """What to say of a VAT number: VIES's outcome, the name it gives (valid numbers of
    states that share it), and for a failure, the code and whether it is retried."""

    outcome: ViesOutcome
    name: str | None = None
    address: str | None = None
    error: str | None = None
    retrying: bool = False

    @property
    def valid(self) -> bool:
        return self.outcome == ViesOutcome.VALID


def supported(vat: str) -> bool:
    return vies_country(vat) in MEMBER_STATES


def vies_country(vat: str) -> str:
    """The member state as VIES names it: Greece is EL there, whatever was typed."""
    country = vat[:2].upper()
    return "EL" if country == "GR" else country


class ViesClient:
    """VIES over HTTP: one session, at most `AT_ONCE` requests at once, `TIMEOUT` in all."""

    def __init__(self, url: str, *, timeout: float = TIMEOUT, at_once: int = AT_ONCE) -> None:
        self.url = url
        self.timeout = timeout
        self._at_once = at_once
        self._slots: asyncio.Semaphore | None = None
        self._session: aiohttp.ClientSession | None = None

    async def ask(self, vat: str) -> ViesAnswer:
        """VIES's answer for `vat` (`IT00743110157`), or UNAVAILABLE with why; never raises."""
        try:
            return await asyncio.wait_for(self._ask(vat), self.timeout)
        except TimeoutError:
            return ViesAnswer(ViesOutcome.UNAVAILABLE, error="TIMEOUT")
        except (aiohttp.ClientError, OSError) as exc:
            log.info("VIES could not be reached: %s", type(exc).__name__)
            return ViesAnswer(ViesOutcome.UNAVAILABLE, error="UNREACHABLE")
        except Exception as exc:  # whatever a broken reply does to a parser: no answer
            log.info("VIES's reply could not be read: %s", type(exc).__name__)
            return ViesAnswer(ViesOutcome.UNAVAILABLE, error="GARBAGE")

    async def _ask(self, vat: str) -> ViesAnswer:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._at_once)
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers={"Accept": "application/json"}, raise_for_status=False
            )
        async with self._slots:
            body = {"countryCode": vies_country(vat), "vatNumber": vat[2:]}
            async with self._session.post(self.url, json=body) as response:
                text = await response.text(errors="replace")
                return read_answer(response.status, text)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def read_answer(status: int, text: str) -> ViesAnswer:
    """VIES's reply in our terms; anything that is not its JSON (an HTML error page, a
    proxy's garbage) is a failure to answer."""
    import json

    try:
        body: Any = json.loads(text)
    except (ValueError, RecursionError):
        return ViesAnswer(
            ViesOutcome.UNAVAILABLE, error=f"HTTP_{status}" if status != 200 else "GARBAGE"
        )
    if not isinstance(body, dict):
        return ViesAnswer(ViesOutcome.UNAVAILABLE, error="GARBAGE")
    code = _error_code(body)
    if code in _INVALID_CODES:
        return ViesAnswer(ViesOutcome.INVALID)
    if code is not None and code != "VALID":
        return ViesAnswer(ViesOutcome.UNAVAILABLE, error=code[:40])
    valid = body.get("valid", body.get("isValid"))
    if status != 200 or not isinstance(valid, bool):
        return ViesAnswer(
            ViesOutcome.UNAVAILABLE, error=f"HTTP_{status}" if status != 200 else "GARBAGE"
        )
    if not valid:
        return ViesAnswer(ViesOutcome.INVALID)
    return ViesAnswer(ViesOutcome.VALID, _shown(body.get("name")), _shown(body.get("address")))


def _error_code(body: dict[str, Any]) -> str | None:
    wrappers = body.get("errorWrappers")
    if isinstance(wrappers, list) and wrappers and isinstance(wrappers[0], dict):
        return str(wrappers[0].get("error") or "ERROR").upper()
    user_error = body.get("userError")
    return str(user_error).upper() if isinstance(user_error, str) else None


def _shown(value: object) -> str | None:
    """A name or address as VIES gives it, on one line; None where it is withheld."""
    if not isinstance(value, str):
        return None
    text = " ".join(value.split())
    return None if text.upper() in _HIDDEN else text[:200]


# --- the cache ------------------------------------------------------------------------


async def look_up(
    *,
    sessions: async_sessionmaker[AsyncSession],
    client: ViesClient,
    vat: str,
    now: dt.datetime,
) -> ViesAnswer | None:
    """VIES's answer for `vat`: from the last 30 days' answers, or asked now and kept.
    None for a number VIES does not know of (outside the EU)."""
    if not supported(vat):
        return None
    async with sessions() as session:
        row = await session.get(ViesCheck, vat)
    if row is not None and _fresh(row, now):
        return _answer_of(row)
    answer = await client.ask(vat)
    async with sessions() as session:
        return await keep(session=session, vat=vat, answer=answer, now=now)


async def keep(
    *, session: AsyncSession, vat: str, answer: ViesAnswer, now: dt.datetime
) -> ViesAnswer:
    """Keep an answer (for 30 days), or a failure with when to ask again; commits.
    Returns what to say: a failure says whether it will be retried."""
    row = await session.get(ViesCheck, vat)
    if answer.outcome != ViesOutcome.UNAVAILABLE:
        values: dict[str, Any] = {
            "outcome": answer.outcome.value,
            "name": answer.name,
            "address": answer.address,
            "answered_at": now,
            "error": None,
            "failing_since": None,
            "retry_at": None,
        }
    else:
        # A series of failures still being retried goes on; after an answer, or once a
        # series was given up, a new failure starts a new day of retries.
        going_on = row is not None and row.failing_since is not None and row.retry_at is not None
        since = row.failing_since if going_on and row is not None and row.failing_since else now
        retry_at = now + RETRY_EVERY
        values = {
            "outcome": ViesOutcome.UNAVAILABLE.value,
            "error": answer.error,
            "failing_since": since,
            "retry_at": retry_at if retry_at <= since + RETRY_FOR else None,
        }
        answer = ViesAnswer(
            ViesOutcome.UNAVAILABLE, error=answer.error, retrying=values["retry_at"] is not None
        )
    insert = dialect_insert(session, ViesCheck).values(vat=vat, **values)
    await session.execute(insert.on_conflict_do_update(index_elements=["vat"], set_=values))
    await session.commit()
    return answer


async def retry_failed(
    *, sessions: async_sessionmaker[AsyncSession], client: ViesClient, now: dt.datetime
) -> int:
    """The tick: ask again for the numbers whose last try failed and whose hour has come.
    Returns how many were asked."""
    async with sessions() as session:
        due = list(
            (
                await session.execute(
                    select(col(ViesCheck.vat))
                    .where(col(ViesCheck.retry_at) <= now)
                    .order_by(col(ViesCheck.retry_at))
                    .limit(RETRIES_PER_TICK)
                )
            ).scalars()
        )
    turns = asyncio.Semaphore(RETRIES_AT_ONCE)

    async def retry(vat: str) -> None:
        async with turns:
            answer = await client.ask(vat)
        async with sessions() as session:
            await keep(session=session, vat=vat, answer=answer, now=now)

    await asyncio.gather(*(retry(vat) for vat in due))
    return len(due)


async def vies_of(*, session: AsyncSession, vats: list[str]) -> dict[str, ViesAnswer]:
    """What VIES said of these numbers, for staff (notices, /find): answers of any age,
    and failures with whether they are still retried."""
    found: dict[str, ViesAnswer] = {}
    for chunk in in_chunks(sorted(set(vats))):
        rows = await session.execute(select(ViesCheck).where(col(ViesCheck.vat).in_(chunk)))
        found.update({row.vat: _answer_of(row) for row in rows.scalars()})
    return found


def _fresh(row: ViesCheck, now: dt.datetime) -> bool:
    return (
        row.outcome != ViesOutcome.UNAVAILABLE
        and row.answered_at is not None
        and now - row.answered_at < KEPT
    )


def _answer_of(row: ViesCheck) -> ViesAnswer:
    outcome = ViesOutcome(row.outcome)
    if outcome == ViesOutcome.UNAVAILABLE:
        return ViesAnswer(outcome, error=row.error, retrying=row.retry_at is not None)
    return ViesAnswer(outcome, row.name, row.address)
