"""The pacer and the limiter on a virtual clock (exact spacing, answers first, rates kept);
which failed sends may go again, through PTB's real HTTP layer; answers sent again
where that is safe, in process through the fake Bot API."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

import httpx
import pytest
from telegram.error import NetworkError
from telegram.ext import ExtBot
from telegram.request import HTTPXRequest

from bot.app.demo.telegram import TelegramError, Timeout
from bot.telegram.ratelimit import (
    BACKOFF,
    BACKOFF_BUDGET,
    BULK,
    JSON,
    MARGIN,
    WINDOW,
    Pacer,
    PerChatRateLimiter,
    SlidingWindow,
    surely_not_delivered,
)
from tests.harness import failed_send, running_bot


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock jumps to the next timer whenever nothing is ready.

    Sleeps take no real time and every turn lands exactly on the time it was given,
    so spacing can be checked to the microsecond without waiting.
    """

    def __init__(self) -> None:
        super().__init__()
        self._now = 0.0

    def time(self) -> float:
        return self._now

    def _run_once(self) -> None:
        ready: Any = self._ready  # type: ignore[attr-defined]
        scheduled: Any = self._scheduled  # type: ignore[attr-defined]
        if not ready and scheduled:
            self._now = max(self._now, scheduled[0].when())
        super()._run_once()  # type: ignore[misc]


def run_virtually(main: Coroutine[Any, Any, Any]) -> Any:
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        return runner.run(main)


def most_in_one_second(times: list[float]) -> int:
    """The largest number of turns any one-second window holds."""
    return most_in_one_window(times, 1.0)


def most_in_one_window(times: list[float], span: float) -> int:
    """The largest number of turns any window of `span` seconds holds."""
    ordered = sorted(times)
    return max(
        sum(1 for other in ordered[i:] if other < start + span) for i, start in enumerate(ordered)
    )


def test_the_pacer_spaces_turns_evenly_in_call_order():
    async def main() -> list[tuple[int, float]]:
        pacer = Pacer(10)
        turns: list[tuple[int, float]] = []

        async def take(n: int) -> None:
            await pacer.take()
            turns.append((n, asyncio.get_running_loop().time()))

        await asyncio.gather(*(take(n) for n in range(50)))
        return turns

    turns = run_virtually(main())
    assert [n for n, _ in turns] == list(range(50))
    gaps = {round(b - a, 9) for (_, a), (_, b) in itertools.pairwise(turns)}
    assert gaps == {round(1 / (10 * MARGIN), 9)}
    assert most_in_one_second([t for _, t in turns]) <= 10


def test_a_turn_taken_a_little_late_does_not_slow_the_pace_after_it():
    async def main() -> list[float]:
        pacer = Pacer(10)
        loop = asyncio.get_running_loop()
        times = []
        for n in range(20):
            await pacer.take()
            times.append(loop.time())
            if n == 5:
                await asyncio.sleep(0.05)  # a late wake-up, under one interval
        return times

    times = run_virtually(main())
    interval = 1 / (10 * MARGIN)
    assert abs(times[-1] - 19 * interval) < 1e-9  # the late one did not shift the rest


def test_a_pause_of_seconds_starts_a_fresh_pace_instead_of_a_burst():
    async def main() -> list[float]:
        pacer = Pacer(10)
        loop = asyncio.get_running_loop()
        await pacer.take()
        await asyncio.sleep(5)  # idle: no credit is saved up for later
        times = []
        for _ in range(10):
            await pacer.take()
            times.append(loop.time())
        return times

    times = run_virtually(main())
    assert most_in_one_second(times) <= 10
    assert times[0] == 5.0


def test_an_answer_goes_before_a_queue_of_bulk_sends_and_rates_are_kept():
    async def main() -> tuple[float, list[float], list[float]]:
        limiter = PerChatRateLimiter(messages_per_second=30, bulk_per_second=25)
        loop = asyncio.get_running_loop()
        bulk: list[float] = []
        answers: list[float] = []

        async def bulk_send() -> None:
            await limiter.take_bulk_turn()
            bulk.append(loop.time())

        async def answer() -> None:
            await limiter._take_answer_turn()
            answers.append(loop.time())

        sends = [asyncio.create_task(bulk_send()) for _ in range(200)]
        await asyncio.sleep(2.0)  # the broadcast is well under way
        asked = loop.time()
        await asyncio.gather(*(answer() for _ in range(5)))
        waited = max(answers) - asked
        await asyncio.gather(*sends)
        return waited, bulk, answers

    waited, bulk, answers = run_virtually(main())
    # Five answers at once go out at the overall pace, none behind the bulk queue.
    assert waited <= 5 / (30 * MARGIN) + 1e-9
    assert len(bulk) == 200
    assert most_in_one_second(bulk) <= 25
    assert most_in_one_second(bulk + answers) <= 30


def test_bulk_sends_use_the_whole_bulk_rate_when_nobody_asks_anything():
    async def main() -> list[float]:
        limiter = PerChatRateLimiter(messages_per_second=30, bulk_per_second=25)
        loop = asyncio.get_running_loop()
        times: list[float] = []

        async def bulk_send() -> None:
            await limiter.take_bulk_turn()
            times.append(loop.time())

        await asyncio.gather(*(bulk_send() for _ in range(250)))
        return times

    times = run_virtually(main())
    # 250 messages at 25 a second (less the margin): ten seconds and a little more.
    assert 250 / 25 - 1 < max(times) <= 250 / (25 * MARGIN)
    assert most_in_one_second(times) == 25


def test_the_window_lets_answers_go_at_once_while_the_last_second_has_room():
    """Ten answers a second (people pausing) under a limit of thirty: none waits. An
    evenly spaced pace made each wait for its slot, 34 ms apart."""

    async def main() -> list[float]:
        window = SlidingWindow(30)
        loop = asyncio.get_running_loop()
        waits = []
        for _ in range(50):
            asked = loop.time()
            await window.take()
            waits.append(loop.time() - asked)
            await asyncio.sleep(0.1)
        return waits

    assert set(run_virtually(main())) == {0.0}


def test_the_window_never_holds_more_than_the_limit_and_keeps_call_order():
    async def main() -> list[tuple[int, float]]:
        window = SlidingWindow(30)
        loop = asyncio.get_running_loop()
        turns: list[tuple[int, float]] = []

        async def take(n: int, after: float) -> None:
            await asyncio.sleep(after)
            await window.take()
            turns.append((n, loop.time()))

        # A burst of 100 at once, then stragglers while it drains.
        await asyncio.gather(
            *(take(n, 0.0) for n in range(100)), *(take(100 + n, 0.5 * n) for n in range(10))
        )
        return turns

    turns = run_virtually(main())
    times = [t for _, t in turns]
    assert most_in_one_second(times) <= 30
    assert most_in_one_window(times, WINDOW) == 30
    # In call order: no turn goes later than one asked for after it (turns given the same
    # moment wake in any order, together).
    slots = dict(turns)
    assert all(slots[a] <= slots[b] for a, b in itertools.pairwise(range(100)))
    # The first thirty went over half a second, not at once; the 31st when the first
    # left the window.
    gap = 1 / 60
    assert times[:30] == pytest.approx([n * gap for n in range(30)])
    assert times[30] == pytest.approx(WINDOW)


def test_a_limit_below_one_a_second_still_lets_one_through():
    async def main() -> list[float]:
        window = SlidingWindow(0.5)
        loop = asyncio.get_running_loop()
        times = []
        for _ in range(3):
            await window.take()
            times.append(loop.time())
        return times

    assert run_virtually(main()) == pytest.approx([0.0, WINDOW, 2 * WINDOW])


def test_paid_bulk_sends_keep_their_own_rate_outside_the_overall_count_and_yield_to_answers():
    async def main() -> tuple[list[float], list[float], float]:
        limiter = PerChatRateLimiter(messages_per_second=30, paid_per_second=1000)
        loop = asyncio.get_running_loop()
        paid: list[float] = []
        answers: list[float] = []

        async def paid_send() -> None:
            await limiter.take_bulk_turn(paid=True)
            paid.append(loop.time())

        async def answer() -> None:
            await limiter._take_answer_turn()
            answers.append(loop.time())

        sends = [asyncio.create_task(paid_send()) for _ in range(3000)]
        await asyncio.sleep(1.0)
        asked = loop.time()
        await asyncio.gather(*(answer() for _ in range(20)))
        waited = max(answers) - asked
        await asyncio.gather(*sends)
        return paid, answers, waited

    paid, answers, waited = run_virtually(main())
    assert len(paid) == 3000
    assert 950 <= most_in_one_second(paid) <= 1000
    # Twenty answers fit the overall window: none waits for the paid sends, only for the
    # half-pace gap between two answers.
    assert waited == pytest.approx(19 / 60)
    assert most_in_one_second(answers) <= 30


def _raise(error: Exception) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error

    return handler


def _answer(code: int, **body: Any) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(code, **body)


# What Telegram (or the way to it) does to a send, and whether sending again is safe.
SEND_FAILURES = {
    "500 from Telegram": (_answer(500, json={"ok": False, "description": "Internal"}), True),
    "502 page from a proxy": (_answer(502, text="<html>Bad Gateway</html>"), True),
    "503, empty": (_answer(503, content=b""), True),
    "504 page: Telegram may have it": (_answer(504, text="<html>timeout</html>"), False),
    "504 from Telegram": (_answer(504, json={"description": "Gateway Timeout"}), False),
    "connection refused": (_raise(httpx.ConnectError("refused")), True),
    "connect timeout": (_raise(httpx.ConnectTimeout("slow")), True),
    "pool timeout": (_raise(httpx.PoolTimeout("busy")), True),
    "read timeout": (_raise(httpx.ReadTimeout("no answer")), False),
    "write timeout": (_raise(httpx.WriteTimeout("half sent")), False),
    "read error": (_raise(httpx.ReadError("reset")), False),
    "server disconnected": (_raise(httpx.RemoteProtocolError("disconnected")), False),
}


@pytest.mark.parametrize("case", list(SEND_FAILURES))
async def test_a_send_is_retried_only_when_it_surely_never_reached_telegram(case):
    handler, safe = SEND_FAILURES[case]
    request = HTTPXRequest(httpx_kwargs={"transport": httpx.MockTransport(handler)})
    assert surely_not_delivered(await failed_send(request)) is safe


# --- answers sent again where that is safe -----------------------------------------


def _count_calls(handler: Callable[[httpx.Request], httpx.Response]) -> tuple[Any, list[float]]:
    """The handler, noting the (virtual) moment of every call it gets."""
    calls: list[float] = []

    def counted(request: httpx.Request) -> httpx.Response:
        calls.append(asyncio.get_running_loop().time())
        return handler(request)

    return counted, calls


async def _call_through_the_limiter(
    handler: Callable[[httpx.Request], httpx.Response], method: str, **send: Any
) -> list[float]:
    counted, calls = _count_calls(handler)
    request = HTTPXRequest(httpx_kwargs={"transport": httpx.MockTransport(counted)})
    bot = ExtBot("123:abc", request=request, rate_limiter=PerChatRateLimiter())
    await request.initialize()
    call = (
        bot.send_message(1, "your verdict", **send)
        if method == "sendMessage"
        else bot.edit_message_text("your verdict", chat_id=1, message_id=2)
    )
    try:
        with pytest.raises(NetworkError):
            await call
    finally:
        await request.shutdown()
    return calls


@pytest.mark.parametrize("case", list(SEND_FAILURES))
def test_an_answer_is_sent_again_with_backoff_only_when_it_surely_never_arrived(case):
    handler, safe = SEND_FAILURES[case]
    calls = run_virtually(_call_through_the_limiter(handler, "sendMessage"))
    if safe:  # after 0.5 s, 1 s and 2 s: then given up
        assert [round(b - a, 3) for a, b in itertools.pairwise(calls)] == list(BACKOFF)
    else:  # it may have arrived: a second copy would be worse than a late apology
        assert len(calls) == 1


@pytest.mark.parametrize("case", list(SEND_FAILURES))
def test_an_edit_is_tried_again_after_any_network_failure(case):
    handler, _safe = SEND_FAILURES[case]
    calls = run_virtually(_call_through_the_limiter(handler, "editMessageText"))
    assert len(calls) == len(BACKOFF) + 1


def test_a_bulk_send_is_never_sent_again_by_the_limiter():
    handler, _safe = SEND_FAILURES["502 page from a proxy"]
    calls = run_virtually(_call_through_the_limiter(handler, "sendMessage", rate_limit_args=BULK))
    assert len(calls) == 1  # broadcasts and reminders keep their own, durable, retries


def test_connect_timeouts_stop_the_retries_within_the_budget():
    async def main() -> float:
        limiter = PerChatRateLimiter()
        loop = asyncio.get_running_loop()
        started = loop.time()

        async def connect_slowly() -> JSON:
            await asyncio.sleep(3.0)  # as long as a connect timeout takes
            raise NetworkError("connect") from httpx.ConnectTimeout("slow")

        with pytest.raises(NetworkError):
            await limiter.process_request(connect_slowly, (), {}, "sendMessage", {}, None)
        return loop.time() - started

    waited = run_virtually(main())
    assert waited <= BACKOFF_BUDGET + 3.0  # no pause started past the budget


async def test_two_502s_on_an_answer_still_deliver_it_once(tmp_path):
    async with running_bot(tmp_path) as bot:
        chat = bot.chat(11, "en")
        [expected] = await chat.send("/help")
        bot.api.failures["sendMessage"] = [TelegramError(502, "Bad Gateway")] * 2
        [answer] = await chat.send("/help")
        assert answer["text"] == expected["text"]
        attempts = [p for m, p in bot.api.calls if m == "sendMessage"]
        assert len(attempts) == 1 + 3


async def test_a_read_timeout_on_an_answer_is_not_sent_twice(tmp_path):
    async with running_bot(tmp_path) as bot:
        chat = bot.chat(11, "en")
        [expected] = await chat.send("/help")
        bot.api.failures["sendMessage"] = [Timeout()]  # Telegram may have it
        [apology] = await chat.send("/help")
        assert "went wrong" in apology["text"]
        tried = [p for m, p in bot.api.calls if m == "sendMessage"]
        assert [p["text"] == expected["html"] for p in tried] == [True, True, False]


async def test_a_429_on_an_answer_is_waited_out_as_telegram_asked_and_sent_once(tmp_path):
    async with running_bot(tmp_path) as bot:
        chat = bot.chat(11, "en")
        [expected] = await chat.send("/help")
        bot.api.failures["sendMessage"] = [
            TelegramError(429, "Too Many Requests: retry after 2", retry_after=2)
        ]
        started = time.monotonic()
        [answer] = await chat.send("/help")
        assert time.monotonic() - started >= 2.0
        assert answer["text"] == expected["text"]
        assert len([m for m, _ in bot.api.calls if m == "sendMessage"]) == 1 + 2


async def test_an_answer_that_keeps_failing_is_given_up_within_seconds_and_logged(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="bot.telegram.ratelimit")
    async with running_bot(tmp_path) as bot:
        chat = bot.chat(11, "en")
        bot.api.failures["sendMessage"] = [TelegramError(502, "Bad Gateway")] * 4
        started = time.monotonic()
        await chat.send("/help")
        assert time.monotonic() - started < 5.0
    given_up = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and r.name == "bot.telegram.ratelimit"
    ]
    assert given_up == ["sendMessage failed after 4 attempt(s): NetworkError, still failing"]
