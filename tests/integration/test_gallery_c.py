"""The pattern gallery on the real broker (agents/handoff_protocol.py): run as its docstring says,
under an app name of its own, in worker tasks of this process."""

from __future__ import annotations

import asyncio

import pytest

from agents import handoff_protocol
from streams import Client, Settings, WorkflowFailed
from streams.events import TaskCompleted, TaskRequested
from streams.serde.registry import ConfluentRegistry
from tests.integration._agents import eventually, on_cluster, serving, unique

pytestmark = pytest.mark.integration


async def test_handoff_protocol_answers_refuses_times_out_and_rolls_back(
    settings: Settings, registry: ConfluentRegistry
) -> None:
    app = on_cluster(handoff_protocol.build(unique("support")), settings, registry)
    # Every agent has its partitions before the first case: the step's 2-s timeout starts at once.
    async with serving(app) as runner, Client(app, registry=registry) as client:

        async def support(task_id: str, payload: str) -> TaskCompleted | str:
            case = TaskRequested(task_id=task_id, capability="support", payload=payload)
            run = await client.start("support", case)
            try:
                done: TaskCompleted = await client.result("support", run, timeout=60)
            except WorkflowFailed as failed:
                return str(failed)
            return done

        refund, bug, fax, outage = await asyncio.gather(
            support("c0", "refund order-17 12.50"),
            support("c1", "bug web login page is blank"),
            support("c2", "bug fax no dial tone"),
            support("c3", "bug api 500 on /orders"),
        )
        stats = {worker.agent.name: worker.stats for worker in runner.workers}
        await eventually(lambda: stats["close-ticket"].processed >= 2, within=10, what="two tickets closed")
        closed, fronts = stats["close-ticket"].processed, stats["front"].processed
    assert not isinstance(refund, str) and (refund.agent, refund.result) == (
        "billing",
        "T-1147: refund of 12.50 on order-17 approved",
    )
    assert not isinstance(bug, str) and (bug.agent, bug.result) == (
        "tech",
        "T-1148: web: 'login page is blank' -> fix 86",
    )
    assert isinstance(fax, str) and "does not fit tech's input" in fax and "'fax'" in fax
    assert isinstance(outage, str) and "CallTimeout: front did not answer" in outage
    assert "(2 requests)" in outage, "timed out, retried, timed out again"
    assert closed == 2, "the tickets of the two failed cases are closed, the others kept"
    assert fronts == 5, "front asked once per case, twice for the one that timed out"
