"""agents/batch_pipeline.py on the in-memory twin: split, enrich in parallel, gather, report."""

from __future__ import annotations

import pytest

from agents.batch_pipeline import Batch, Item, build
from streams.testing import TestApp

pytestmark = pytest.mark.unit


async def test_a_batch_is_split_enriched_item_by_item_gathered_in_order_and_reported_once() -> None:
    app = build()
    texts = ["red apple", "green pear", "blue plum", "kiwi", "ripe yellow banana"]
    async with TestApp(app) as t:
        await t.publish(app.topics["batches.in"], Batch(batch_id="b1", items=texts), key="b1")
        [report] = t.sent(app.topics["batches.reports"])
        enriched = t.stats("enrich").processed
        # A copy of an item enriched again after its batch went on changes nothing.
        copy = Item(batch_id="b1", index=2, total=5, text="Blue Plum (2 words)")
        await t.publish(app.topics["batches.enriched"], copy, key="b1")
        reports = t.sent(app.topics["batches.reports"])
    assert enriched == 5
    assert report.task_id == "b1"
    assert report.result == (
        "Red Apple (2 words); Green Pear (2 words); Blue Plum (2 words); Kiwi (1 words); "
        "Ripe Yellow Banana (3 words)"
    )
    assert reports == [report]


async def test_a_batch_goes_on_only_once_every_item_is_in() -> None:
    app = build()
    async with TestApp(app, agents=["gather", "report"]) as t:
        for index in (2, 0):
            item = Item(batch_id="b2", index=index, total=3, text=f"item {index}")
            await t.publish(app.topics["batches.enriched"], item, key="b2")
        waiting = t.sent(app.topics["batches.gathered"])
        await t.publish(
            app.topics["batches.enriched"], Item(batch_id="b2", index=1, total=3, text="item 1"), key="b2"
        )
        [whole] = t.sent(app.topics["batches.gathered"])
    assert waiting == []
    assert whole.items == ["item 0", "item 1", "item 2"]


async def test_an_empty_batch_is_dead_lettered_with_the_reason() -> None:
    app = build()
    async with TestApp(app) as t:
        await t.publish(app.topics["batches.in"], Batch(batch_id="b3", items=[]), key="b3")
        [refused] = t.dead_letters("split")
    assert refused.reason == "split: batch b3 has no items"
