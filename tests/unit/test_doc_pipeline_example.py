"""agents/doc_pipeline.py on the in-memory twin: four stages in sequence, bad input dead-lettered."""

from __future__ import annotations

import pytest

from agents.doc_pipeline import Document, build
from streams.testing import TestApp

pytestmark = pytest.mark.unit


async def test_a_document_goes_through_the_four_stages_in_order() -> None:
    app = build()
    async with TestApp(app) as t:
        source = "<h1>Rates</h1><p>Acme Bank raised its rates in Paris. Shares fell.</p>"
        await t.publish(app.topics["docs.raw"], Document(doc_id="d1", source=source), key="d1")
        [done] = t.sent(app.topics["docs.classified"])
    assert done.text == "Rates Acme Bank raised its rates in Paris. Shares fell."
    assert done.summary == "Rates Acme Bank raised its rates in Paris"
    assert done.entities == ["Acme", "Bank", "Paris", "Rates", "Shares"]
    assert done.category == "finance"
    assert [len(t.sent(app.topics[f"docs.{s}"])) for s in ("extracted", "summarised", "entities")] == [
        1,
        1,
        1,
    ]


async def test_each_stage_dead_letters_input_it_cannot_work_on_with_the_reason() -> None:
    app = build()
    async with TestApp(app) as t:
        await t.publish(app.topics["docs.raw"], Document(doc_id="empty", source="<p> </p>"), key="empty")
        # Published straight to the second stage, skipping extraction.
        await t.publish(app.topics["docs.extracted"], Document(doc_id="raw", source="x"), key="raw")
        [refused_extract] = t.dead_letters("extract")
        [refused_summary] = t.dead_letters("summarise")
        assert t.sent(app.topics["docs.classified"]) == []
    assert refused_extract.reason == "extract: document empty has no text once its markup is removed"
    assert refused_extract.error_class.endswith("DataError") and refused_extract.attempts == 1
    assert refused_summary.reason == "summarise: document raw has no text (was it extracted?)"
    assert refused_summary.source.startswith("docs.extracted/")
