"""When commits happen: every commit interval under load, at once when everything received has finished
and the commit makes outputs visible."""

from __future__ import annotations

import asyncio

import pytest

from streams.runtime.offsets import OffsetTracker
from streams.serde.registry import InMemoryRegistry
from streams.worker.acks import Acks
from streams.worker.committer import CommitBatch, Committer
from streams.worker.delivery import ExactlyOnceDelivery
from streams.worker.outbox import Encoders, Output

pytestmark = pytest.mark.unit

TP = ("t", 0)


async def _wait_for(commits: list[CommitBatch], seconds: float) -> None:
    for _ in range(int(seconds / 0.01)):
        if commits:
            return
        await asyncio.sleep(0.01)


async def _run(
    interval: float, with_output: bool, finish_at: float, watch_for: float
) -> tuple[list[CommitBatch], float]:
    """Offset 7 finished (holding one output or none) and the worker idle; the commits seen and when
    the first came, in seconds after the idle signal."""
    offsets = OffsetTracker()
    delivery = ExactlyOnceDelivery(Encoders(InMemoryRegistry()))
    delivery.commit_interval = interval
    commits: list[CommitBatch] = []
    seen_at: list[float] = []
    loop = asyncio.get_running_loop()

    async def execute(batch: CommitBatch) -> None:
        commits.append(batch)
        seen_at.append(loop.time())

    committer = Committer(offsets, delivery, {TP}, execute)
    idle = asyncio.Event()
    task = asyncio.create_task(committer.run_periodically(lambda error: None, idle))
    await asyncio.sleep(finish_at)
    offsets.track(*TP, 7)
    outbox = delivery.outbox(Acks())
    if with_output:
        outbox.outputs.append(Output("out", b"v", b"k", []))
    delivery.keep(outbox, TP, 7)
    offsets.done(*TP, 7)
    idle.set()  # the last message in flight finished
    idled = loop.time()
    await _wait_for(commits, watch_for)
    committer.stop_periodic()
    idle.set()
    await asyncio.wait_for(task, 5)
    return commits, (seen_at[0] - idled if seen_at else float("inf"))


async def test_an_idle_worker_commits_its_outputs_without_waiting_for_the_interval() -> None:
    commits, after = await _run(interval=30.0, with_output=True, finish_at=0.05, watch_for=1.0)
    assert [batch.positions for batch in commits] == [{TP: 8}]
    assert len(commits[0].outputs) == 1
    assert after < 0.5, "the idle worker committed at once, not after the 30 s interval"


async def test_an_idle_commit_that_would_carry_no_outputs_waits_for_the_interval() -> None:
    # Interval 0.5 s, idle 0.05 s after the start: an idle commit would come within a few ms; this
    # one comes with the interval, about 0.45 s after the idle signal.
    commits, after = await _run(interval=0.5, with_output=False, finish_at=0.05, watch_for=2.0)
    assert [batch.positions for batch in commits] == [{TP: 8}], "the offsets are committed all the same"
    assert commits[0].outputs == []
    assert 0.3 < after < 1.5, f"committed {after:.3f} s after going idle"
