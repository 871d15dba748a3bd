"""How updates reach the handlers: each user's in order, users side by side; how polling
rides out a Bot API that cannot be reached."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable

import httpx
import pytest
from telegram import Bot, Chat, Message, Update, User
from telegram.error import Conflict, InvalidToken, NetworkError
from telegram.request import HTTPXRequest

from bot.telegram.updates import CheckedBot, CheckedUpdates, OnePerUser, checked_updates
from tests.test_ratelimit import run_virtually


def update_from(user_id: int, update_id: int) -> Update:
    user = User(id=user_id, first_name="x", is_bot=False)
    message = Message(
        message_id=update_id,
        date=None,  # type: ignore[arg-type]
        chat=Chat(id=user_id, type="private"),
        from_user=user,
        text="hi",
    )
    return Update(update_id=update_id, message=message)


async def test_a_users_updates_run_one_at_a_time_in_the_order_they_came():
    processor = OnePerUser(working=8)
    seen: list[int] = []

    async def handle(number: int) -> None:
        await asyncio.sleep(0.01 * (5 - number))  # later ones would finish first if parallel
        seen.append(number)

    await asyncio.gather(
        *(processor.process_update(update_from(1, n), handle(n)) for n in range(5))
    )
    assert seen == [0, 1, 2, 3, 4]


async def test_a_users_backlog_leaves_the_working_slots_to_the_others():
    processor = OnePerUser(working=2)
    stuck = asyncio.Event()
    other_done = asyncio.Event()

    async def wait_forever() -> None:
        await stuck.wait()

    async def answer_other() -> None:
        other_done.set()

    backlog = [
        asyncio.create_task(processor.process_update(update_from(1, n), wait_forever()))
        for n in range(10)
    ]
    other = asyncio.create_task(processor.process_update(update_from(2, 99), answer_other()))
    await asyncio.wait_for(other_done.wait(), timeout=1)
    await other
    stuck.set()
    await asyncio.gather(*backlog)


def test_an_update_without_a_date_or_a_chat_keeps_only_its_id():
    good = {
        "update_id": 3,
        "message": {"message_id": 1, "date": 1, "chat": {"id": 5, "type": "private"}, "text": "x"},
    }
    raw = [
        {"update_id": 1, "message": {"message_id": 1, "chat": {"id": 5, "type": "private"}}},
        {"update_id": 2, "message": {"message_id": 1, "date": 1, "text": "no chat"}},
        good,
        "not even an object",
    ]
    checked = checked_updates(raw, None)
    assert [update.to_dict() for update in checked] == [
        {"update_id": 1},
        {"update_id": 2},
        Update.de_json(good, None).to_dict(),
    ]


async def test_each_polled_update_is_read_once_and_a_bad_one_spares_the_others(monkeypatch):
    message = {"message_id": 1, "date": 1, "chat": {"id": 5, "type": "private"}, "text": "x"}
    batch = [
        {"update_id": 1, "message": message},
        {"update_id": 2, "message": {"message_id": 2, "chat": {"id": 5, "type": "private"}}},
        {"update_id": 3, "message": message},
    ]
    reads: list[object] = []
    read = Update.de_json.__func__  # type: ignore[attr-defined]

    def counted(cls, data, bot=None):
        reads.append(data.get("update_id"))
        return read(cls, data, bot)

    monkeypatch.setattr(Update, "de_json", classmethod(counted))

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"ok": True, "result": batch})

    request = CheckedUpdates(HTTPXRequest(httpx_kwargs={"transport": httpx.MockTransport(answer)}))
    bot = CheckedBot("123:abc", get_updates_request=request)
    await request.initialize()
    try:
        updates = await bot.get_updates(timeout=10)
    finally:
        await request.shutdown()
    assert [u.update_id for u in updates] == [1, 2, 3]
    assert updates[1].message is None  # emptied to its id: the offset moves past it
    assert reads == [1, 2, 3]  # once each, not once to check and once more for PTB


# --- polling while the Bot API is away ------------------------------------------------

UPDATES = {"ok": True, "result": [{"update_id": 7}]}


def bot_polling(
    *answers: Callable[[httpx.Request], httpx.Response],
) -> tuple[Bot, CheckedUpdates, list[float]]:
    """A bot whose getUpdates gets `answers` in turn (the last one repeated)."""
    calls: list[float] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(asyncio.get_running_loop().time())
        return answers[min(len(calls), len(answers)) - 1](request)

    request = CheckedUpdates(HTTPXRequest(httpx_kwargs={"transport": httpx.MockTransport(answer)}))
    return Bot("123:abc", get_updates_request=request), request, calls


def refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("All connection attempts failed")


def bad_gateway(request: httpx.Request) -> httpx.Response:
    return httpx.Response(502, text="<html>Bad Gateway</html>")


def updates(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json=UPDATES)


def long_polls(
    *answers: Callable[[httpx.Request], httpx.Response],
) -> tuple[list[int], list[float]]:
    """The updates each long poll brought when getUpdates gets `answers` in turn, and the
    (virtual) moments of the calls."""

    async def main() -> tuple[list[int], list[float]]:
        bot, request, calls = bot_polling(*answers)
        await request.initialize()
        try:
            got = [len(await bot.get_updates(timeout=10)) for _ in answers]
        finally:
            await request.shutdown()
        return got, calls

    return run_virtually(main())


def test_a_failed_long_poll_is_one_line_and_a_short_pause_then_no_updates(caplog):
    caplog.set_level(logging.INFO, logger="bot.telegram.updates")
    got, calls = long_polls(refused, bad_gateway, refused, refused, refused, updates)
    assert got == [0, 0, 0, 0, 0, 1]
    # PTB asks again at once each time: the pauses are ours, 2 s at most.
    assert [round(b - a, 3) for a, b in itertools.pairwise(calls)] == [0.5, 1.0, 2.0, 2.0, 2.0]
    lines = [r.getMessage() for r in caplog.records]
    assert lines[:2] == [
        "the Bot API cannot be reached (NetworkError: httpx.ConnectError: "
        "All connection attempts failed): polling again in 0.5 s",
        "the Bot API cannot be reached (HTTP 502): polling again in 1.0 s",
    ]
    assert len(lines) == 6
    assert lines[-1] == "the Bot API answers again, after 5 failed polls in 8 s"
    assert not any(r.exc_info for r in caplog.records)


def conflict(request: httpx.Request) -> httpx.Response:
    return httpx.Response(409, json={"ok": False, "description": "Conflict: other poller"})


def test_the_last_poll_at_shutdown_and_other_refusals_go_to_ptb_as_they_are():
    unauthorized = httpx.Response(401, json={"ok": False, "description": "Unauthorized"})

    async def main() -> None:
        bot, request, _ = bot_polling(refused, conflict, lambda request: unauthorized)
        await request.initialize()
        try:
            with pytest.raises(NetworkError):  # no long poll: PTB decides
                await bot.get_updates(timeout=0)
            with pytest.raises(Conflict):
                await bot.get_updates(timeout=0)
            with pytest.raises(InvalidToken):
                await bot.get_updates(timeout=10)
        finally:
            await request.shutdown()

    run_virtually(main())


def test_another_poller_taking_the_updates_is_said_once_a_minute_without_a_traceback(caplog):
    caplog.set_level(logging.INFO, logger="bot.telegram.updates")
    got, calls = long_polls(*[conflict] * 20, updates)
    assert got == [0] * 20 + [1]
    assert {round(b - a, 3) for a, b in itertools.pairwise(calls)} == {5.0}
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "Telegram refuses this poll (HTTP 409): another process is polling this bot's "
        "token, or a webhook was set; polling again every 5 s",
    ] * 2 + ["Telegram takes this poll again, after 20 refused"]
    assert not any(r.exc_info for r in caplog.records)
