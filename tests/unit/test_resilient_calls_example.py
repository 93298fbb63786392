"""agents/resilient_calls.py on the in-memory twin: error classes decide retries, the breaker sends
calls to the fallback agent, and optional or failed steps degrade the answer instead of failing it."""

from __future__ import annotations

import pytest

from agents.resilient_calls import build
from streams.events import TaskRequested, TaskStatus
from streams.testing import TestApp

pytestmark = pytest.mark.unit


def _case(task_id: str, payload: str) -> TaskRequested:
    return TaskRequested(task_id=task_id, capability="answer", payload=payload)


async def test_a_healthy_model_answers_with_citations() -> None:
    async with TestApp(build()) as t:
        run = await t.start("answer", _case("c1", "why payments fail"))
        done = t.result("answer", run)
        assert done.status == TaskStatus.SUCCEEDED
        assert done.result == "answer to 'why payments fail' [3 sources]"


async def test_a_data_error_is_not_retried_and_degrades_to_a_failed_answer() -> None:
    async with TestApp(build()) as t:
        run = await t.start("answer", _case("c1", " "))
        done = t.result("answer", run)
        assert done.status == TaskStatus.FAILED and "empty question" in (done.result or "")
        assert t.stats("model").retries == 0, "classed DATA: never retried"
        for i in range(3):  # three more: the input's fault, not held against the model
            await t.start("answer", _case(f"empty-{i}", ""))
        run = await t.start("answer", _case("c2", "refund status"))
        assert t.result("answer", run).result == "answer to 'refund status' [2 sources]"


async def test_failures_open_the_breaker_and_the_fallback_agent_answers() -> None:
    async with TestApp(build()) as t:
        first = await t.start("answer", _case("down-1", "down: eu"), workflow_id="w1")
        await t.advance(1)  # the step's durable retry fires
        assert t.stats("model").retries == 4, "two requests, each tried 3 times in-process"
        assert t.result("answer", first).status == TaskStatus.FAILED
        second = await t.start("answer", _case("down-2", "down: us"), workflow_id="w1b")
        await t.advance(1)
        # Its first try was the third failure: the breaker opened and the retry went to the fallback.
        assert t.result("answer", second).result == "short answer to 'down: us' [2 sources]"
        healthy = await t.start("answer", _case("ok", "refund status"), workflow_id="w1c")
        assert t.result("answer", healthy).result == "short answer to 'refund status' [2 sources]"
        await t.advance(31)  # cool-down over: the next call is the trial, and the model is healthy
        trial = await t.start("answer", _case("trial", "refund status"), workflow_id="w1d")
        assert t.result("answer", trial).result == "answer to 'refund status' [2 sources]"


async def test_without_citations_the_answer_goes_out_after_their_timeout() -> None:
    app = build()
    agents = [name for name in app.agents if name != "cite"]  # citations never answer
    async with TestApp(app, agents) as t:
        run = await t.start("answer", _case("c1", "refund status"))
        await t.advance(2)
        assert t.result("answer", run).result == "answer to 'refund status' [no citations]"
