"""agents/autoscaling.py on the in-memory twin: every document is summarised once, and the worker count
the scaling rule recommends for its pace."""

from __future__ import annotations

import pytest

from agents.autoscaling import MODEL_LATENCY, build
from streams.events import TaskRequested
from streams.telemetry.scaling import recommended_workers
from streams.testing import TestApp

pytestmark = pytest.mark.unit


async def test_every_document_is_handled_once() -> None:
    app = build()
    documents = app.topics["autoscaling.documents"]
    async with TestApp(app) as t:
        for i in range(30):
            doc = TaskRequested(task_id=f"doc-{i}", capability="summarise", payload=f"document {i}")
            await t.publish(documents, doc, key=doc.task_id, settle=False)
        await t.settle()
        assert t.stats("summarise").processed == 30
        assert sum(t.committed("summarise").values()) == 30


@pytest.mark.parametrize(
    ("backlog", "arriving", "workers"), [(0, 0, 1), (3000, 0, 1), (3000, 40, 2), (30_000, 0, 6)]
)
def test_the_recommendation_for_its_pace(backlog: int, arriving: float, workers: int) -> None:
    pace = 1 / MODEL_LATENCY  # at best 50 documents/s per worker, one at a time
    assert recommended_workers(incoming=arriving, per_worker=pace, lag=backlog, partitions=6) == workers
