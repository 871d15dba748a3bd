"""The pacer and the limiter on a virtual clock (exact spacing, answers first, rates kept);
which failed sends may go again, through PTB's real HTTP layer."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Coroutine
from typing import Any

import httpx
import pytest
from telegram import Bot
from telegram.error import NetworkError
from telegram.request import HTTPXRequest

from bot.ratelimit import MARGIN, Pacer, PerChatRateLimiter, surely_not_delivered


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
    ordered = sorted(times)
    return max(
        sum(1 for other in ordered[i:] if other < start + 1.0) for i, start in enumerate(ordered)
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
    bot = Bot("123:abc", request=request)
    await request.initialize()
    try:
        with pytest.raises(NetworkError) as failed:
            await bot.send_message(1, "news")
    finally:
        await request.shutdown()
    assert surely_not_delivered(failed.value) is safe
