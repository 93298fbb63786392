"""agents/caching_batching.py on the in-memory twin: a repeated lookup is served from the cache without
a request, and concurrent embed requests reach the model in batches, each answered with its own result."""

from __future__ import annotations

import asyncio

import pytest

from agents.caching_batching import Batcher, build, embed_model
from streams.events import StepKind, TaskRequested
from streams.testing import TestApp

pytestmark = pytest.mark.unit


def _case(task_id: str, payload: str) -> TaskRequested:
    return TaskRequested(task_id=task_id, capability="profile", payload=payload)


async def test_a_batcher_groups_concurrent_calls_and_answers_each_in_order() -> None:
    batcher = Batcher(embed_model, size=4, linger=0.01)
    words = [f"w{i}" for i in range(10)]
    results = await asyncio.gather(*(batcher.submit(word) for word in words))
    assert results == await embed_model(words)
    assert list(batcher.batches) == [4, 4, 2], "two full batches, then what arrived within the linger"


async def test_a_failed_batch_fails_each_of_its_calls() -> None:
    async def broken(words: list[str]) -> list[str]:
        raise RuntimeError("model down")

    batcher = Batcher(broken)
    outcomes = await asyncio.gather(batcher.submit("a"), batcher.submit("b"), return_exceptions=True)
    assert [str(o) for o in outcomes] == ["model down", "model down"]


async def test_lookups_are_cached_and_embeddings_batched() -> None:
    batcher = Batcher(embed_model)
    app = build(batcher=batcher)
    async with TestApp(app) as t:
        first = await t.start("profile", _case("c1", "acme: late refund for order 42"), workflow_id="w1")
        second = await t.start("profile", _case("c2", "acme: card declined"), workflow_id="w2")
        assert t.result("profile", first).result == (
            "acme (founded 1904): late:34 refund:62 for:36 order:55 42:5"
        )
        assert t.result("profile", second).result.startswith("acme (founded 1904): card:")
        assert t.stats("lookup").processed == 1, "the second run's lookup came from the cache"
        journal = t.journal("profile", second)
        assert journal is not None
        [lookup] = [s for s in journal.steps if s.kind == StepKind.CALL and s.name == "lookup"]
        assert lookup.cached
        assert t.stats("embed").processed == 7
        assert list(batcher.batches) == [5, 2], "one model call per run's words"
