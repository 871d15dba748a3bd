"""A registration in progress is plain values: it can be stored anywhere and read back whole."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

from bot.drafts import Draft, MemoryDrafts, Step

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


async def test_the_memory_store_keeps_plain_values_not_the_object():
    store = MemoryDrafts()
    draft = full_draft()
    await store.save(7, draft)
    draft.product = "changed after saving"
    loaded = await store.load(7)
    assert loaded is not None
    assert loaded.product == "Mouse"
    await store.drop(7)
    assert await store.load(7) is None


def test_a_draft_left_two_hours_is_stale():
    draft = full_draft()
    assert not draft.is_stale(NOW + dt.timedelta(hours=2))
    assert draft.is_stale(NOW + dt.timedelta(hours=2, seconds=1))
