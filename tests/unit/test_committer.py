"""When commits happen: every commit interval under load, at once when everything received has finished."""

from __future__ import annotations

import asyncio

import pytest

from streams.runtime.offsets import OffsetTracker
from streams.serde.registry import InMemoryRegistry
from streams.worker.committer import CommitBatch, Committer
from streams.worker.delivery import ExactlyOnceDelivery
from streams.worker.outbox import Encoders

pytestmark = pytest.mark.unit

TP = ("t", 0)


async def test_a_worker_that_has_finished_everything_commits_without_waiting_for_the_interval() -> None:
    offsets = OffsetTracker()
    delivery = ExactlyOnceDelivery(Encoders(InMemoryRegistry()))
    delivery.commit_interval = 30.0  # far longer than the test may take
    commits: list[CommitBatch] = []

    async def execute(batch: CommitBatch) -> None:
        commits.append(batch)

    committer = Committer(offsets, delivery, {TP}, execute)
    idle = asyncio.Event()
    loop = asyncio.create_task(committer.run_periodically(lambda error: None, idle))
    offsets.track(*TP, 7)
    offsets.done(*TP, 7)
    await asyncio.sleep(0.05)
    assert commits == [], "finished work alone does not commit before the interval"
    idle.set()  # the last message in flight finished
    for _ in range(100):
        if commits:
            break
        await asyncio.sleep(0.01)
    committer.stop_periodic()
    idle.set()
    await asyncio.wait_for(loop, 5)
    assert [batch.positions for batch in commits] == [{TP: 8}]
