"""How updates reach the handlers: each user's in order, users side by side."""

from __future__ import annotations

import asyncio

from telegram import Chat, Message, Update, User

from bot.updates import OnePerUser, checked_updates


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
    assert checked_updates(raw) == [{"update_id": 1}, {"update_id": 2}, good]
