"""Workflows on the real broker: many supervisor cases at once, each completed once, no step twice."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import pytest

from agents.supervisor import build
from streams import Client, Settings
from streams.admin import TopicAdmin
from streams.events import TaskRequested
from streams.serde.registry import ConfluentRegistry
from streams.tail import tail
from tests.integration._agents import running

pytestmark = pytest.mark.integration


async def test_cases_complete_once_each_with_every_step_requested_once(
    settings: Settings, registry: ConfluentRegistry
) -> None:
    app = build(f"supervisor-{uuid.uuid4().hex[:8]}")
    app.settings = settings
    TopicAdmin(settings, registry).apply(list(app.topics.values()))
    cases = [
        TaskRequested(task_id=f"case-{i}", capability="triage", payload=f"alpha beta{i} gamma")
        for i in range(30)
    ]
    async with running(app), Client(app, registry=registry) as client:
        ids = [await client.start("triage", case) for case in cases]
        reports = await asyncio.gather(*(client.result("triage", i, timeout=120) for i in ids))
    assert [r.task_id for r in reports] == [c.task_id for c in cases]
    assert all(r.result and r.result.startswith("report: alpha: 5 findings; beta") for r in reports)
    research = app.specialists["research"].requests.name
    requests = list(tail(settings, registry, research, from_beginning=True, idle_timeout=3))
    per_id = Counter(m.headers["message-id"] for m in requests)
    assert len(per_id) == 3 * len(cases), "three research steps per case"
    assert max(per_id.values()) == 1, "no step requested twice"
