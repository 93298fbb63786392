"""The client follows a workflow's event topic with one follower, however many calls start or await
that workflow at once (each created a consumer of its own before, all reading every event)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, ClassVar

import pytest

from streams import App, Client, Workflow
from streams.events import TaskRequested
from streams.serde.registry import InMemoryRegistry

pytestmark = pytest.mark.unit


class FakeFollower:
    made: ClassVar[list[FakeFollower]] = []

    def __init__(self, settings: Any, topic: str, on_record: Any) -> None:
        self.topic = topic
        self.started = self.stopped = 0
        FakeFollower.made.append(self)

    def start(self) -> None:
        assert threading.current_thread() is not threading.main_thread(), "started off the loop"
        time.sleep(0.05)  # as a consumer joining takes a while, during which other calls arrive
        self.started += 1

    def stop(self) -> None:
        self.stopped += 1


async def test_concurrent_calls_share_one_follower_per_workflow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("streams.client.TopicFollower", FakeFollower)
    FakeFollower.made = []
    app = App("followers")

    @app.workflow(input=TaskRequested, output=TaskRequested)
    async def echo(task: TaskRequested, wf: Workflow) -> TaskRequested:
        return task

    async with Client(app, registry=InMemoryRegistry()) as client:
        definitions = await asyncio.gather(*(client._follow("echo") for _ in range(50)))
        assert {d.events.name for d in definitions} == {"followers.echo.events"}
        assert len(FakeFollower.made) == 1 and FakeFollower.made[0].started == 1
    assert FakeFollower.made[0].stopped == 1
