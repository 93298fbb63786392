"""agents/market.py on the in-memory twin: the lowest bid within the deadline wins the task; a bid
that comes too late is left out, and with no bid in time the auction fails."""

from __future__ import annotations

import pytest

from agents.market import CONTRACTORS, build
from streams import WorkflowFailed
from streams.events import TaskRequested
from streams.testing import TestApp

pytestmark = pytest.mark.unit


def _task(task_id: str, words: int) -> TaskRequested:
    return TaskRequested(task_id=task_id, capability="auction", payload=" ".join(["word"] * words))


def _without(app_agents: list[str], *contractors: str) -> list[str]:
    return [a for a in app_agents if not any(a.endswith(f"-{c}") for c in contractors)]


@pytest.mark.parametrize(("words", "winner", "price"), [(2, "gpu", 6), (8, "cpu", 18)])
async def test_the_lowest_bid_in_time_wins_and_does_the_work(words: int, winner: str, price: int) -> None:
    app = build()
    async with TestApp(app, _without(list(app.agents), "edge")) as t:  # edge never quotes in time
        run = await t.start("auction", _task("t1", words))
        await t.advance(2)
        assert t.result("auction", run).result.startswith(f"{winner} at {price} of 2 bids: WORD WORD")
        assert t.stats(f"do-{winner}").processed == 1
        assert t.stats("do-gpu").processed + t.stats("do-cpu").processed == 1, "one contractor works"


async def test_with_every_bid_in_time_the_cheapest_contractor_wins_at_once() -> None:
    quick = {**CONTRACTORS, "edge": (0, 1, 0.01)}
    async with TestApp(build(contractors=quick)) as t:
        run = await t.start("auction", _task("t1", 8))
        assert t.result("auction", run).result.startswith("edge at 8 of 3 bids")


async def test_with_no_bid_in_time_the_auction_fails() -> None:
    app = build()
    async with TestApp(app, _without(list(app.agents), "edge", "gpu", "cpu")) as t:
        run = await t.start("auction", _task("t1", 2))
        await t.advance(2)
        with pytest.raises(WorkflowFailed, match="0 of 3 answered in time"):
            t.result("auction", run)
