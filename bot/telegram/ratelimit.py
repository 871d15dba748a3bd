"""Telegram's rate limits, kept so that one chat's "slow down" never stalls the others."""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Callable, Coroutine
from http import HTTPStatus
from typing import Any, Protocol

import httpx
from telegram.error import (
    BadRequest,
    Forbidden,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.ext import BaseRateLimiter

from bot.domain.outbox import Outcome
from bot.telegram import transport
from bot.telegram.limits import BULK_PER_SECOND, MESSAGES_PER_SECOND, PAID_PER_SECOND

log = logging.getLogger(__name__)
# Given as `rate_limit_args` by bulk sends: they yield to answers.
BULK = "bulk"
# A bulk send whose turn was taken beforehand with `take_bulk_turn` (so that what is
# sent can be marked as sent only once its turn came).
PREPAID = "prepaid"
# A 429 is Telegram saying "not yet": nothing was delivered, so retrying is safe.
RETRIES = 3
# Pauses before sending an answer again after a network failure where that is safe (see
# `_pause_after`); then it is given up. Short: a person is waiting for that answer.
BACKOFF = (0.5, 1.0, 2.0)
# No pause is started that would end later than this after the first attempt: a connect
# timeout takes seconds by itself, and an answer more than ~10 s late is worth little.
BACKOFF_BUDGET = 8.0
# Methods that change nothing when repeated (at worst Telegram answers the second call
# with "not modified" or "query is too old", which callers already take as done): tried
# again after any network failure, even one that may have reached Telegram.
IDEMPOTENT = frozenset(
    {
        "answerCallbackQuery",
        "deleteMessage",
        "deleteMessages",
        "deleteMyCommands",
        "deleteWebhook",
        "editMessageCaption",
        "editMessageReplyMarkup",
        "editMessageText",
        "getChat",
        "getFile",
        "getMe",
        "getMyCommands",
        "getWebhookInfo",
        "sendChatAction",
        "setMyCommands",
        "setWebhook",
    }
)
_NO_CHAT = "no chat"

JSON = bool | dict[str, Any] | list[dict[str, Any]]
# Paced this much under the configured rate: a wake-up a moment late must never put two
# messages closer than Telegram counts.
MARGIN = 0.98
# How PTB words a 504, whether the body was Telegram's JSON or a proxy's page.
_GATEWAY_TIMEOUT = HTTPStatus.GATEWAY_TIMEOUT.phrase
# A request that never left, on the bot's network layer (bot/telegram/transport.py) or on PTB's
# own (httpx), which tests and embedders may still give the bot.
NEVER_CONNECTED = (
    *transport.NEVER_CONNECTED,
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
)


def surely_not_delivered(exc: NetworkError) -> bool:
    """Whether a failed send surely never reached Telegram, so sending again is safe.

    Yes when the connection never opened, or when an HTTP error answer came back
    (PTB raises those with no cause, or with the failure to read a non-JSON body as
    the cause): a 5xx from Telegram or from the proxy in front of it. Not for a
    504, where the gateway gave up waiting on a Telegram that may have taken it;
    nor for a read error, a dropped connection or a read timeout.
    """
    cause = exc.__cause__
    never_connected = isinstance(cause, NEVER_CONNECTED) or "Pool timeout" in str(exc)
    if isinstance(exc, TimedOut) or never_connected:
        return never_connected
    answered = cause is None or isinstance(cause, TelegramError)
    return answered and _GATEWAY_TIMEOUT not in str(exc)


def classify_failure(exc: TelegramError) -> tuple[Outcome, str]:
    """What a failed send of a message the bot started (a broadcast, a reminder) means
    for it, and a short reason for staff and the log (no personal data)."""
    if isinstance(exc, Forbidden):
        return Outcome.BLOCKED, "blocked the bot"
    if isinstance(exc, BadRequest):  # before NetworkError: PTB makes it a subclass
        return Outcome.REFUSED, exc.message[:200]
    if isinstance(exc, RetryAfter):  # still too many after the waits: nothing went
        return Outcome.RETRY, "Telegram asked to wait"
    if isinstance(exc, NetworkError):
        if surely_not_delivered(exc):
            return Outcome.RETRY, type(exc).__name__
        return Outcome.UNSURE, "no answer from Telegram: maybe delivered"
    return Outcome.REFUSED, type(exc).__name__


class Pacer:
    """Turns spaced evenly at a rate: each caller gets the next free slot, in call order.

    Unlike a bucket a second deep, it never lets a burst out; unlike waiting a fixed
    interval after each turn, a late wake-up does not slow the pace that follows.
    """

    def __init__(self, per_second: float) -> None:
        self._interval = 1 / (per_second * MARGIN)
        self._next = 0.0

    def free_now(self) -> bool:
        return asyncio.get_running_loop().time() >= self._next

    def wait_for_free(self) -> float:
        """Seconds until the next slot is free (0 if it is)."""
        return max(0.0, self._next - asyncio.get_running_loop().time())

    async def take(self) -> None:
        now = asyncio.get_running_loop().time()
        # Slots follow the ideal pace: a turn taken a little late (less than one interval,
        # as wake-ups are) does not push every later one back with it.
        ideal = self._next if self._next >= now - self._interval else now
        slot = max(now, ideal)
        self._next = ideal + self._interval
        if slot > now:
            await asyncio.sleep(slot - now)


# The window the overall limit counts in: a second, and room for a send to reach
# Telegram up to 50 ms later than the one a window before it.
WINDOW = 1.05


class SlidingWindow:
    """At most `per_second` turns in any WINDOW (a second and a little more), in call
    order: a turn goes at once while the last window holds fewer, else when the oldest
    of them leaves it.

    Telegram's rule is a count per second, not a spacing: ten answers in a second when
    thirty are allowed need not wait for evenly spaced slots (34 ms apart at 29.4/s),
    and a burst never goes past the count.
    """

    def __init__(self, per_second: float) -> None:
        self._limit = max(1, math.floor(per_second))
        self._span = WINDOW
        # Never two turns closer than this (half the even pace): a full window's turns
        # leave over half a second rather than at once, so that they reach Telegram as
        # they left. Thirty sent in one instant over HTTP arrived up to 60 ms apart, and
        # a window then held 31 (bench/e2e.py saw two 429s at saturation).
        self._gap = 1 / (2 * per_second)
        # The moments of the last `limit` turns, given out or promised, in order.
        self._turns: deque[float] = deque(maxlen=self._limit)

    def _next_slot(self, now: float) -> float:
        slot = max(now, self._turns[-1] + self._gap) if self._turns else now
        if len(self._turns) == self._limit:
            slot = max(slot, self._turns[0] + self._span)
        return slot

    def free_now(self) -> bool:
        now = asyncio.get_running_loop().time()
        return self._next_slot(now) <= now

    def wait_for_free(self) -> float:
        """Seconds until the next turn is free (0 if it is)."""
        now = asyncio.get_running_loop().time()
        return max(0.0, self._next_slot(now) - now)

    async def take(self) -> None:
        now = asyncio.get_running_loop().time()
        slot = self._next_slot(now)
        self._turns.append(slot)  # promised now: later callers come after it
        if slot > now:
            await asyncio.sleep(slot - now)


class SharedTurns(Protocol):
    """Turns shared with other processes (bot/telegram/budget.py): `take` waits for this one's."""

    async def take(self) -> None: ...


class PerChatRateLimiter(BaseRateLimiter[str]):
    """Messages under Telegram's overall rate; after a 429, only the chat it concerned waits;
    answers to people go before bulk sends.

    PTB's AIORateLimiter halts *every* request while it waits out a 429, so one
    user's "retry after 30 s" would keep every other user waiting as long. Here the
    wait is kept per chat: the chat that got the 429 pauses for the time Telegram
    gave, and everyone else goes on. Calls without a chat (getUpdates, commands)
    pause only each other.

    Answers and bulk sends (`rate_limit_args=BULK`) share the overall budget; bulk
    sends also keep under their own rate and wait while any answer waits for the
    budget, so a broadcast to thousands never queues a salesperson's verdict.

    An answer that fails on the way (a 502, no connection) is sent again after a short
    pause where that cannot make a duplicate (`_pause_after`): today's Telegram hiccup
    costs the user a second, not the answer.
    """

    def __init__(
        self,
        messages_per_second: float = MESSAGES_PER_SECOND,
        bulk_per_second: float = BULK_PER_SECOND,
        retries: int = RETRIES,
        paid_per_second: float | None = None,
    ) -> None:
        self._overall = SlidingWindow(messages_per_second)
        self._shared: SharedTurns | None = None
        self._bulk = Pacer(min(bulk_per_second, messages_per_second))
        # Paid broadcasts (PAI_PAID_BROADCAST) are outside the overall count, at their own
        # rate, up to Telegram's 1,000 a second.
        self._paid = (
            Pacer(min(paid_per_second, PAID_PER_SECOND)) if paid_per_second is not None else None
        )
        self._retries = retries
        self._paused_until: dict[int | str, float] = {}
        self._answers_waiting = 0
        self._no_answer_waiting = asyncio.Event()
        self._no_answer_waiting.set()

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, JSON]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: str | None,
    ) -> JSON:
        chat = data.get("chat_id")
        key: int | str = chat if isinstance(chat, int | str) else _NO_CHAT
        bulk = rate_limit_args in (BULK, PREPAID)
        loop = asyncio.get_running_loop()
        started = loop.time()
        too_many = failures = 0
        while True:
            await self._wait_for(key)
            try:
                prepaid = rate_limit_args == PREPAID and not (too_many or failures)
                if key != _NO_CHAT and not prepaid:
                    paid = bool(data.get("allow_paid_broadcast"))
                    await (self.take_bulk_turn(paid=paid) if bulk else self._take_answer_turn())
                return await callback(*args, **kwargs)
            except RetryAfter as exc:
                if too_many == self._retries:
                    raise
                too_many += 1
                pause = exc.retry_after
                seconds = pause if isinstance(pause, int | float) else pause.total_seconds()
                log.info("Telegram asked to wait %.1f s before the next %s", seconds, endpoint)
                self._paused_until[key] = max(
                    self._paused_until.get(key, 0.0), loop.time() + seconds + 0.1
                )
            except NetworkError as exc:
                if bulk or isinstance(exc, BadRequest):
                    # Broadcasts and reminders keep their own, durable, retries; a refusal
                    # (a 400: PTB makes it a NetworkError) is the caller's to read.
                    raise
                wait = self._pause_after(exc, endpoint, failures, loop.time() - started)
                if wait is None:
                    log.warning(
                        "%s failed after %d attempt(s): %s",
                        endpoint,
                        failures + 1,
                        _why_given_up(exc, endpoint),
                    )
                    raise
                failures += 1
                log.info(
                    "%s failed (%s): trying again in %.1f s", endpoint, type(exc).__name__, wait
                )
                await asyncio.sleep(wait)

    def _pause_after(
        self, exc: NetworkError, endpoint: str, failures: int, elapsed: float
    ) -> float | None:
        """How long to wait before sending an answer again, or None to give it up.

        The rule, per failure (a 429 is handled apart: Telegram says when; a 400 is a
        refusal, final):
        - the request surely never reached Telegram (no connection, a 5xx answer other
          than 504): again, whatever the method;
        - an idempotent method (an edit, a button's answer, getMe): again, whatever
          the failure;
        - a send that may have reached Telegram (read or write timeout, a dropped
          connection, a 504): never. A message twice is worse than one late: the user
          is told something went wrong, and whatever they typed is already saved.
        Within BACKOFF's pauses and BACKOFF_BUDGET.
        """
        if failures >= len(BACKOFF):
            return None
        if not _safe_to_resend(exc, endpoint):
            return None
        pause = BACKOFF[failures]
        return pause if elapsed + pause <= BACKOFF_BUDGET else None

    async def _take_answer_turn(self) -> None:
        self._answers_waiting += 1
        self._no_answer_waiting.clear()
        try:
            await self._take_overall_turn()
        finally:
            self._answers_waiting -= 1
            if not self._answers_waiting:
                self._no_answer_waiting.set()

    @property
    def pays_for_broadcasts(self) -> bool:
        return self._paid is not None

    async def take_bulk_turn(self, *, paid: bool = False) -> None:
        """Wait until a bulk message may go: under the bulk rate, after every answer.

        A bulk send never reserves a slot of the overall budget ahead of time (slots go
        in call order): it takes one only when its bulk slot has come, the overall
        budget is free at once and no answer waits. Otherwise the bulk slot is given
        up and a new one taken, so sends held back by answers never catch up in a
        burst above the bulk rate. A `paid` one (a paid broadcast, when the bot pays
        for them) keeps to the paid rate instead, outside the overall count, and still
        waits while any answer does.
        """
        if paid and self._paid is not None:
            while True:
                await self._no_answer_waiting.wait()
                await self._paid.take()
                if not self._answers_waiting:
                    return
        while True:
            await self._no_answer_waiting.wait()
            await self._bulk.take()
            if not self._answers_waiting and self._overall.free_now():
                await self._take_overall_turn()  # free now: no wait
                return
            await asyncio.sleep(self._overall.wait_for_free())

    def share_budget(self, budget: SharedTurns) -> None:
        """Spend the overall budget together with other instances, through `budget`."""
        self._shared = budget

    async def _take_overall_turn(self) -> None:
        """One message of the bot's overall budget: the one place that spends it.

        The process's own pacer keeps its order and its answers first; a budget shared
        with other instances (webhook mode on PostgreSQL) then reserves the message's
        slot among everyone's.
        """
        await self._overall.take()
        if self._shared is not None:
            await self._shared.take()

    async def _wait_for(self, key: int | str) -> None:
        until = self._paused_until.get(key)
        if until is None:
            return
        delay = until - asyncio.get_running_loop().time()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            self._paused_until.pop(key, None)  # memory stays flat


def _safe_to_resend(exc: NetworkError, endpoint: str) -> bool:
    """Whether sending again cannot make a duplicate: it never arrived, or twice is once."""
    return surely_not_delivered(exc) or endpoint in IDEMPOTENT


def _why_given_up(exc: NetworkError, endpoint: str) -> str:
    if _safe_to_resend(exc, endpoint):
        return f"{type(exc).__name__}, still failing"
    return f"{type(exc).__name__}, maybe delivered: not sent again"
