"""Caching of idempotent calls on the in-memory twin: a fresh earlier result for the same capability
and input is journaled as the step's result without a request; a different input, or an expired one,
asks again; hits and misses are counted for the metrics endpoint."""

from __future__ import annotations

from datetime import timedelta

import pytest
from prometheus_client import CollectorRegistry

from streams import App, Context, Workflow
from streams.events import StepStatus, TaskCompleted, TaskRequested, TaskStatus
from streams.telemetry.metrics import CacheCollector
from streams.testing import TestApp
from streams.workflows.cache import CACHE
from streams.workflows.engine import WorkflowEngine

pytestmark = pytest.mark.unit


def _task(task_id: str, payload: str = "") -> TaskRequested:
    return TaskRequested(task_id=task_id, capability="case", payload=payload)


def _app(asked: list[str]) -> App:
    app = App("cache")

    @app.specialist("lookup", input=TaskRequested, output=TaskCompleted)
    async def lookup(task: TaskRequested, ctx: Context) -> TaskCompleted:
        asked.append(task.payload)
        return TaskCompleted(
            task_id=task.task_id,
            agent="lookup",
            status=TaskStatus.SUCCEEDED,
            result=f"{task.payload}#{len(asked)}",
        )

    @app.workflow(input=TaskRequested, output=TaskCompleted, partitions=1)
    async def enrich(case: TaskRequested, wf: Workflow) -> TaskCompleted:
        return await wf.call("lookup", _task("q", case.payload), cache=timedelta(minutes=10))

    return app


async def test_a_cached_call_returns_the_earlier_result_without_a_request_until_it_expires() -> None:
    asked: list[str] = []
    app = _app(asked)
    async with TestApp(app) as t:
        first = await t.start("enrich", _task("c1", "acme"))
        assert t.result("enrich", first).result == "acme#1"
        second = await t.start("enrich", _task("c2", "acme"))
        assert t.result("enrich", second).result == "acme#1", "the journaled earlier result"
        assert asked == ["acme"], "no second request for the same input"
        step = t.journal("enrich", second).steps[0]  # type: ignore[union-attr]
        assert step.status is StepStatus.SUCCEEDED and step.cached and step.request_id is not None
        other = await t.start("enrich", _task("c3", "globex"))
        assert t.result("enrich", other).result == "globex#2", "another input is another key"
        await t.advance(601)
        expired = await t.start("enrich", _task("c4", "acme"))
        assert t.result("enrich", expired).result == "acme#3", "asked again once the TTL passed"
        assert len(t.table("enrich", CACHE)) == 2

        engine = app.agents["enrich"].handler
        assert isinstance(engine, WorkflowEngine)
        assert engine.cache_stats.hits == {"lookup": 1} and engine.cache_stats.misses == {"lookup": 3}
        registry = CollectorRegistry()
        registry.register(CacheCollector({"enrich": engine.cache_stats}))
        labels = {"agent": "enrich", "capability": "lookup"}
        assert (
            registry.get_sample_value("streams_workflow_cache_lookups_total", {**labels, "result": "hit"})
            == 1
        )
        assert (
            registry.get_sample_value("streams_workflow_cache_lookups_total", {**labels, "result": "miss"})
            == 3
        )


async def test_a_replay_reads_the_cache_decision_from_the_journal_not_the_cache() -> None:
    asked: list[str] = []
    app = _app(asked)

    @app.workflow(input=TaskRequested, output=TaskCompleted, partitions=1)
    async def hold(case: TaskRequested, wf: Workflow) -> TaskCompleted:
        found = await wf.call("lookup", _task("q", case.payload), cache=timedelta(minutes=10))
        await wf.signal("go", TaskCompleted)  # replayed after the cached entry has expired
        return found

    async with TestApp(app) as t:
        await t.start("hold", _task("c1", "acme"))
        second = await t.start("hold", _task("c2", "acme"))
        await t.advance(601)
        go = TaskCompleted(task_id="go", agent="test", status=TaskStatus.SUCCEEDED)
        await t.signal("hold", second, "go", go)
        assert t.result("hold", second).result == "acme#1", "the hit journaled first, not a new miss"
        assert asked == ["acme"]
