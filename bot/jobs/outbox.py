"""The one way the bot sends what it starts itself (broadcasts, reminders): rows claimed
for a run are handed over, sent, their outcome classified and recorded.

A row is marked handed over in the database before its message goes to Telegram, and
the message goes right after its turn under the rate, with no database work between:
from the mark on it may have been delivered, so a crash, a stop or a second instance
never sends it again. Outcomes are written with the next hand-over, one transaction a
batch. What each table calls its states, and what a retry means for it, is its
service's business (`Outbox.step`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from itertools import islice
from typing import Protocol, TypeVar

from telegram.error import TelegramError
from telegram.ext import ExtBot

from bot.domain.outbox import Outcome, Result
from bot.telegram.ratelimit import PerChatRateLimiter, classify_failure

log = logging.getLogger(__name__)


class Item(Protocol):
    """A row to send: its id, and the salesperson it goes to."""

    @property
    def id(self) -> int: ...

    @property
    def salesperson_id(self) -> int: ...


ItemT = TypeVar("ItemT", bound=Item)


class Outbox(Protocol[ItemT]):
    async def step(
        self, *, done: Sequence[Result], take: Sequence[ItemT], give_back: Sequence[ItemT]
    ) -> list[ItemT]:
        """In one transaction: record `done`, give back `give_back` (handed over, never
        sent), hand over those of `take` nobody else holds; return the ones handed over."""
        ...


async def deliver(
    outbox: Outbox[ItemT],
    items: Iterator[ItemT],
    send: Callable[[ItemT], Awaitable[None]],
    *,
    batch: int,
    turn: Callable[[], Awaitable[bool]],
    going: Callable[[], bool],
    sent: Callable[[Result], Awaitable[None]] | None = None,
) -> list[Result]:
    """Send `items`, `batch` at a time, while `going()`; return how each went.

    `send` sends an item's message (a TelegramError says why it did not go); `turn`
    waits for its turn under Telegram's rate (False: stop instead).
    `sent` hears each result as it comes (progress). Items handed over but not tried
    when a stop (or a failure) comes are given back; the item being sent when a
    failure strikes stays handed over: it may have gone.
    """
    results: list[Result] = []
    unrecorded: list[Result] = []
    blocked: set[int] = set()  # people who blocked the bot during this run
    handed: list[ItemT] = []
    try:
        while going():
            take = list(islice(items, batch))
            if not take:
                break
            handed = await outbox.step(done=unrecorded, take=take, give_back=())
            unrecorded = []
            while handed and going():
                item = handed[0]
                if item.salesperson_id in blocked:
                    result = Result(item.id, item.salesperson_id, Outcome.SKIPPED)
                    handed.pop(0)
                elif await turn():
                    handed.pop(0)  # from here on it may reach Telegram
                    result = await _attempt(send, item)
                else:
                    break
                if result.outcome == Outcome.BLOCKED:
                    blocked.add(item.salesperson_id)
                unrecorded.append(result)
                results.append(result)
                if sent is not None:
                    await sent(result)
    finally:
        await outbox.step(done=unrecorded, take=(), give_back=handed)
    return results


async def _attempt(send: Callable[[ItemT], Awaitable[None]], item: ItemT) -> Result:
    """Send once and say how it went. What may have reached Telegram is never sent again."""
    try:
        await send(item)
    except TelegramError as exc:
        outcome, reason = classify_failure(exc)
        level = logging.WARNING if outcome == Outcome.REFUSED else logging.DEBUG
        log.log(level, "message %s not sent (%s): %s", item.id, outcome, reason)
        return Result(item.id, item.salesperson_id, outcome, reason)
    return Result(item.id, item.salesperson_id, Outcome.SENT)


async def bulk_turn(bot: ExtBot[str], stopping: asyncio.Event, *, paid: bool = False) -> bool:
    """Wait for a bulk turn under Telegram's rate (`paid`: a paid broadcast's), behind
    every answer to a person; False when a stop comes first."""
    limiter = bot.rate_limiter
    if not isinstance(limiter, PerChatRateLimiter):
        return not stopping.is_set()
    turn = asyncio.ensure_future(limiter.take_bulk_turn(paid=paid))
    stop = asyncio.ensure_future(stopping.wait())
    await asyncio.wait({turn, stop}, return_when=asyncio.FIRST_COMPLETED)
    for waiting in (turn, stop):
        waiting.cancel()
    return not stopping.is_set()


def tally(results: Sequence[Result]) -> dict[str, int]:
    """How many went each way, for the run's log line and report."""
    counts = {outcome.value: 0 for outcome in Outcome}
    for result in results:
        counts[result.outcome.value] += 1
    return counts
