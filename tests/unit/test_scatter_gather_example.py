"""agents/scatter_gather.py on the in-memory twin: waves of bounded size, partial failures, quorum."""

from __future__ import annotations

import pytest

from agents.scatter_gather import build
from streams.events import StepKind, TaskRequested, TaskStatus
from streams.testing import TestApp

pytestmark = pytest.mark.unit

QUERY = TaskRequested(task_id="q1", capability="search", payload="kafka")


async def test_a_query_is_answered_by_the_shards_that_answered_and_names_the_one_that_failed() -> None:
    app = build(cold_latency=0.0)
    async with TestApp(app) as t:
        query_id = await t.start("search", QUERY)
        answer = t.result("search", query_id)
        journal = t.journal("search", query_id)
    assert answer.status is TaskStatus.SUCCEEDED
    assert answer.result.startswith("5 of 6 shards (s1: ")
    assert answer.result.endswith("; failed: s4; late: none")
    assert journal is not None
    # Three calls at a time, each wave closed by its deadline timer before the next one is asked.
    kinds = [step.kind for step in journal.steps]
    assert kinds == [*[StepKind.CALL] * 3, StepKind.SLEEP, *[StepKind.CALL] * 3, StepKind.SLEEP]


async def test_fewer_answers_than_the_quorum_by_the_deadlines_fail_the_query_saying_why() -> None:
    app = build()
    async with TestApp(app, agents=["search"]) as t:  # no shard runs: nothing answers
        query_id = await t.start("search", QUERY)
        await t.advance(2)  # the first wave's deadline
        await t.advance(2)  # the second's
        answer = t.result("search", query_id)
    assert answer.status is TaskStatus.FAILED
    assert answer.error == "fewer than 4 shards answered"
    assert answer.result == "0 of 6 shards (); failed: none; late: s1, s2, s3, s4, s5, s6"
