"""When commits happen: every commit interval under load, at once when everything received has finished
and the commit pays: it makes outputs visible (exactly-once) or carries offsets alone (at-least-once).
Changelog records wait for the interval under both, so a key written per message logs once per interval."""

from __future__ import annotations

import asyncio
from typing import Literal

import pytest

from streams.runtime.offsets import OffsetTracker
from streams.serde.registry import InMemoryRegistry
from streams.worker.acks import Acks
from streams.worker.committer import CommitBatch, Committer
from streams.worker.delivery import AtLeastOnceDelivery, Delivery, ExactlyOnceDelivery
from streams.worker.outbox import Encoders, HeldOutbox, Output

pytestmark = pytest.mark.unit

TP = ("t", 0)


async def _wait_for(commits: list[CommitBatch], seconds: float) -> None:
    for _ in range(int(seconds / 0.01)):
        if commits:
            return
        await asyncio.sleep(0.01)


class _NoSender:
    """At-least-once sends handler outputs at once; these tests hold changelog records only."""

    async def send(self, *args: object) -> asyncio.Future[None]:
        raise AssertionError("nothing is sent before a commit here")

    def send_reported(self, *args: object) -> None:
        raise AssertionError("nothing is sent before a commit here")


Held = Literal["result", "changelog"] | None


async def _run(
    interval: float,
    held: Held,
    finish_at: float,
    watch_for: float,
    guarantee: Literal["exactly_once", "at_least_once"] = "exactly_once",
) -> tuple[list[CommitBatch], float]:
    """Offset 7 finished (holding one output, one changelog record or nothing) and the worker idle; the
    commits seen and when the first came, in seconds after the idle signal."""
    offsets = OffsetTracker()
    encoders = Encoders(InMemoryRegistry())
    delivery: Delivery = (
        ExactlyOnceDelivery(encoders)
        if guarantee == "exactly_once"
        else AtLeastOnceDelivery(_NoSender(), encoders)
    )
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
    if held is not None:
        output = Output("out", b"v", b"k", [], latest_only=held == "changelog")
        if isinstance(outbox, HeldOutbox):
            outbox.outputs.append(output)
        else:
            assert held == "changelog", "at-least-once sends results at once; it holds changelog records"
            outbox.held.append(output)
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
    commits, after = await _run(interval=30.0, held="result", finish_at=0.05, watch_for=1.0)
    assert [batch.positions for batch in commits] == [{TP: 8}]
    assert len(commits[0].outputs) == 1
    assert after < 0.5, "the idle worker committed at once, not after the 30 s interval"


async def test_an_idle_commit_that_would_carry_no_outputs_waits_for_the_interval() -> None:
    # Interval 0.5 s, idle 0.05 s after the start: an idle commit would come within a few ms; this
    # one comes with the interval, about 0.45 s after the idle signal.
    commits, after = await _run(interval=0.5, held=None, finish_at=0.05, watch_for=2.0)
    assert [batch.positions for batch in commits] == [{TP: 8}], "the offsets are committed all the same"
    assert commits[0].outputs == []
    assert 0.3 < after < 1.5, f"committed {after:.3f} s after going idle"


@pytest.mark.parametrize("guarantee", ["exactly_once", "at_least_once"])
async def test_an_idle_commit_that_would_carry_only_changelog_records_waits_for_the_interval(
    guarantee: Literal["exactly_once", "at_least_once"],
) -> None:
    commits, after = await _run(
        interval=0.5, held="changelog", finish_at=0.05, watch_for=2.0, guarantee=guarantee
    )
    assert [batch.positions for batch in commits] == [{TP: 8}]
    assert [output.latest_only for output in commits[0].outputs] == [True], "the record goes with it"
    assert 0.3 < after < 1.5, f"committed {after:.3f} s after going idle"


async def test_an_idle_at_least_once_worker_commits_its_offsets_at_once() -> None:
    # Its outputs went out as they were sent: a commit of offsets alone is cheap, and a crash after
    # it repeats nothing.
    commits, after = await _run(
        interval=30.0, held=None, finish_at=0.05, watch_for=1.0, guarantee="at_least_once"
    )
    assert [batch.positions for batch in commits] == [{TP: 8}]
    assert commits[0].outputs == []
    assert after < 0.5, "the idle worker committed at once, not after the 30 s interval"
