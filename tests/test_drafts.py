"""A registration in progress is plain values: it can be stored anywhere and read back whole."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from decimal import Decimal

import pytest

from bot.config import Settings
from bot.domain.drafts import Draft, Step
from bot.resources import open_resources
from bot.storage.conversations import BROADCAST, REGISTRATION, REJECTION, conversations_url
from tests.conftest import database_url_for, reset_postgresql

NOW = dt.datetime(2026, 11, 28, 10, 0, tzinfo=dt.UTC)


def full_draft() -> Draft:
    return Draft(
        touched_at=NOW,
        step=Step.CONFIRM,
        vat="IT12345670587",
        known_name=None,
        quoted_amount=Decimal("550.00"),
        protected_until=dt.date(2027, 2, 26),
        customer_name="Rossi Srl",
        deal_value=Decimal("12500.00"),
        amount_choices=(Decimal("12500.00"), Decimal("12.50")),
        product="Mouse",
        expected_close=dt.date(2027, 1, 31),
        interrupted=True,
    )


def test_a_draft_becomes_json_and_comes_back_the_same():
    draft = full_draft()
    plain = json.loads(json.dumps(draft.to_plain()))
    assert Draft.from_plain(plain) == draft


def test_conversations_of_a_sqlite_file_live_in_a_file_beside_it():
    assert conversations_url("sqlite:////data/pai.db") == "sqlite:////data/pai-conversations.db"
    assert conversations_url("sqlite:///pai.db") == "sqlite:///pai-conversations.db"
    pg = "postgresql://postgres@127.0.0.1:5432/pai"
    assert conversations_url(pg) == pg


def test_a_draft_left_two_hours_is_stale():
    draft = full_draft()
    assert not draft.is_stale(NOW + dt.timedelta(hours=2))
    assert draft.is_stale(NOW + dt.timedelta(hours=2, seconds=1))


async def fresh(database_url: str) -> str:
    if database_url.startswith("postgresql"):
        await reset_postgresql(database_url)
    return database_url


async def test_conversations_are_kept_in_the_database_one_row_per_user_and_kind(database_url):
    await fresh(database_url)
    settings = Settings(database_url=database_url)
    shared = await open_resources(settings)
    try:
        store = shared.conversations
        draft = full_draft()
        await shared.drafts.save(7, draft)
        await store.save(7, BROADCAST, {"step": "text"}, NOW)
        await store.save(8, REJECTION, {"reference": "PAI-ABC123"}, NOW)
        loaded = await shared.drafts.load(7)
        assert loaded == draft
        await store.save(7, BROADCAST, {"step": "audience", "text": "<b>Hi</b>"}, NOW)
        assert await store.load(7, BROADCAST) == {"step": "audience", "text": "<b>Hi</b>"}
        # Two updates racing for one state: only one gets it.
        taken = await asyncio.gather(store.take(8, REJECTION), store.take(8, REJECTION))
        assert sorted(taken, key=bool) == [None, {"reference": "PAI-ABC123"}]
        # Abandoned conversations hold VAT numbers and names: they are forgotten.
        await store.save(9, BROADCAST, {"step": "text"}, NOW + dt.timedelta(days=8))
        assert await store.forget_before(NOW + dt.timedelta(days=7)) == 2
        assert await shared.drafts.load(7) is None
        assert await store.load(9, BROADCAST) == {"step": "text"}
    finally:
        await shared.close()


async def test_a_draft_an_older_version_wrote_differently_starts_over(database_url):
    await fresh(database_url)
    shared = await open_resources(Settings(database_url=database_url))
    try:
        await shared.conversations.save(7, REGISTRATION, {"step": "vat"}, NOW)
        assert await shared.drafts.load(7) is None
        assert await shared.conversations.load(7, REGISTRATION) is None
    finally:
        await shared.close()


async def test_conversations_on_postgresql_take_the_url_as_the_rest_of_the_bot_does(tmp_path):
    """Options in DATABASE_URL are SQLAlchemy's (`ssl`, and `prepared_statement_cache_size`
    for pgbouncer): the conversations' own pool must take them as the engine does."""
    url = await fresh(database_url_for("postgresql", tmp_path))
    with_options = f"{url}{'&' if '?' in url else '?'}ssl=prefer&prepared_statement_cache_size=0"
    shared = await open_resources(Settings(database_url=with_options))
    try:
        await shared.conversations.save(7, BROADCAST, {"step": "text"}, NOW)
        assert await shared.conversations.load(7, BROADCAST) == {"step": "text"}
    finally:
        await shared.close()


async def test_a_moment_without_a_time_zone_is_refused(database_url):
    await fresh(database_url)
    shared = await open_resources(Settings(database_url=database_url))
    try:
        with pytest.raises(ValueError, match="naive"):
            await shared.conversations.forget_before(dt.datetime(2026, 11, 28, 10, 0))
    finally:
        await shared.close()
