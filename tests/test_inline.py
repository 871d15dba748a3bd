"""`@<bot> <VAT>` from any chat (PRODUCT.md §6), through the fake Bot API: what the
salesperson sees, what the chat would get, and what strangers and garbage get."""

from __future__ import annotations

import json
from typing import Any

import pytest

from handlers import ALLOWED_UPDATES
from tests.conftest import BACKENDS, database_url_for, reset_postgresql
from tests.factories import VATS
from tests.harness import Harness, running_bot
from tests.test_conversations import join, load_programme, register_one


@pytest.fixture(params=BACKENDS)
async def bot(request, tmp_path, rules):
    url = database_url_for(request.param, tmp_path)
    if request.param == "postgresql":
        await reset_postgresql(url)
    async with running_bot(tmp_path, database_url=url) as harness:
        await load_programme(harness, rules, tmp_path)
        yield harness


async def inline(bot: Harness, user_id: int, query: str, language: str = "en") -> dict[str, Any]:
    """Type `@bot query` as `user_id`; return the bot's answerInlineQuery."""
    before = len(bot.api.calls)
    sent = bot.api.user_inline_query(bot.chat(user_id, language).user, query)
    await bot.deliver()
    [answer] = [p for m, p in bot.api.calls[before:] if m == "answerInlineQuery"]
    assert answer["inline_query_id"] == sent["inline_query"]["id"]
    results = answer["results"]
    answer["results"] = json.loads(results) if isinstance(results, str) else results
    return answer


def test_the_bot_asks_telegram_for_inline_queries():
    assert "inline_query" in ALLOWED_UPDATES


async def test_a_salesperson_gets_the_verdict_and_quote_personal_and_uncached(bot):
    await join(bot, 11, language="en")
    answer = await inline(bot, 11, "00743110157")
    assert answer["cache_time"] == 0
    assert answer["is_personal"] is True
    [result] = answer["results"]
    assert result["title"].startswith(f"{VATS[1]}: new customer · €")
    assert "protected for you until" in result["description"]
    line = result["input_message_content"]["message_text"]
    assert line.startswith(f"{VATS[1]}: a new customer for the programme · incentive €")


async def test_a_protected_customer_posts_a_neutral_line_without_the_holder(bot):
    beta = await join(bot, 21, partner="BETA", language="en")
    await register_one(beta, VATS[1])
    await join(bot, 11, language="en")
    [result] = (await inline(bot, 11, f"IT {VATS[1][2:]}"))["results"]
    assert result["title"] == f"{VATS[1]}: registered by another partner"
    line = result["input_message_content"]["message_text"]
    assert line == f"{VATS[1]}: not open for a new registration in the programme"
    assert "BETA" not in json.dumps(result) and "Beta" not in json.dumps(result)
    # The partner's own registration reads as its own, by reference.
    [own] = (await inline(bot, 21, VATS[1]))["results"]
    assert own["title"].startswith(f"{VATS[1]}: already yours (PAI-")


async def test_italian_salespeople_read_it_in_italian(bot):
    await join(bot, 11, language="it")
    [result] = (await inline(bot, 11, VATS[2], language="it"))["results"]
    assert result["title"] == f"{VATS[2]}: non è un cliente nuovo"


async def test_someone_not_linked_gets_one_result_that_opens_the_bot(bot):
    answer = await inline(bot, 77, VATS[1])
    [result] = answer["results"]
    assert result["title"] == "Open PAI Assistant"
    [[button]] = result["reply_markup"]["inline_keyboard"]
    assert button["url"] == f"https://t.me/{bot.app.bot.username}"
    assert "new customer" not in json.dumps(result).replace("whether a customer is new", "")


@pytest.mark.parametrize(
    "query",
    ["", "   ", "ciao", "12345", "IT00743110158", "x" * 256, "IT" + "1" * 254, "💥" * 64],
)
async def test_garbage_queries_get_an_empty_answer_never_an_error(bot, query):
    await join(bot, 11, language="en")
    answer = await inline(bot, 11, query)
    assert answer["results"] == []
    assert not [m for m, _ in bot.api.calls if m == "sendMessage" and "went wrong" in str(_)]
