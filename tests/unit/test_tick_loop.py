"""The worker's tick loop: a ticker ticks on time even while the poll thread cannot say which
partitions are caught up (a rebalance restoring a large table holds it)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streams.context import Tick
from streams.worker.ticks import TickLoop

pytestmark = pytest.mark.unit


class Recording:
    interval = 0.01

    def __init__(self, until: int) -> None:
        self.ticks: list[tuple[list[int], set[int]]] = []
        self._until = until
        self.done = asyncio.Event()

    async def tick(self, tick: Tick) -> None:
        self.ticks.append((tick.partitions, set(tick.caught_up)))
        if len(self.ticks) >= self._until:
            self.done.set()


def _loop(ticker: Recording, caught_up: Any) -> TickLoop:
    return TickLoop(ticker, lambda: [0, 1], caught_up, lambda *a: None, None, None, lambda e: None)  # type: ignore[arg-type]


async def test_ticks_carry_the_caught_up_partitions() -> None:
    ticker = Recording(until=2)

    async def caught_up() -> set[int]:
        return {1}

    task = asyncio.create_task(_loop(ticker, caught_up).run())
    await asyncio.wait_for(ticker.done.wait(), 5)
    task.cancel()
    assert ticker.ticks[0] == ([0, 1], {1})


async def test_a_poll_thread_that_cannot_answer_holds_no_tick_back() -> None:
    ticker = Recording(until=3)
    blocked = asyncio.Event()

    async def caught_up() -> set[int]:
        await blocked.wait()  # never answered
        return {0, 1}

    task = asyncio.create_task(_loop(ticker, caught_up).run())
    await asyncio.wait_for(ticker.done.wait(), 5)
    task.cancel()
    assert ticker.ticks[0] == ([0, 1], set())
