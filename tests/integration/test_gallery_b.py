"""The pattern gallery's modules on the real broker (agents/resilient_calls.py and its neighbours):
each runs as its docstring says, under an app name of its own, in worker tasks of this process."""

from __future__ import annotations

import uuid

import pytest

from agents import resilient_calls
from streams import App, Client, Settings
from streams.admin import TopicAdmin
from streams.events import TaskRequested, TaskStatus
from streams.serde.registry import ConfluentRegistry
from tests.integration._agents import running

pytestmark = pytest.mark.integration


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _ready(app: App, settings: Settings, registry: ConfluentRegistry) -> App:
    app.settings = settings
    TopicAdmin(settings, registry).apply(list(app.topics.values()))
    return app


def _case(task_id: str, payload: str) -> TaskRequested:
    return TaskRequested(task_id=task_id, capability="answer", payload=payload)


async def test_resilient_calls_degrade_and_fall_back(settings: Settings, registry: ConfluentRegistry) -> None:
    app = _ready(resilient_calls.build(_unique("resilient")), settings, registry)
    async with running(app), Client(app, registry=registry) as client:

        async def ask(task_id: str, payload: str) -> tuple[TaskStatus, str]:
            run = await client.start("answer", _case(task_id, payload), workflow_id=task_id)
            done = await client.result("answer", run, timeout=60)
            return done.status, done.result or ""

        assert await ask("ok", "refund status") == (
            TaskStatus.SUCCEEDED,
            "answer to 'refund status' [2 sources]",
        )
        assert await ask("slow", "slow refund") == (
            TaskStatus.SUCCEEDED,
            "answer to 'slow refund' [no citations]",
        )
        status, text = await ask("empty", " ")
        assert status is TaskStatus.FAILED and "empty question" in text
        status, text = await ask("down-1", "down: eu")
        assert status is TaskStatus.FAILED and "model unavailable" in text
        # The third failure opens the breaker: the second case's retry, and every call for 30 s, is
        # answered by the fallback agent.
        assert await ask("down-2", "down: us") == (
            TaskStatus.SUCCEEDED,
            "short answer to 'down: us' [2 sources]",
        )
        assert await ask("after", "refund status") == (
            TaskStatus.SUCCEEDED,
            "short answer to 'refund status' [2 sources]",
        )
