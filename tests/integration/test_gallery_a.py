"""The pattern gallery on the real broker: each example app under a name of its own, run as workers
(in this process, as `streams run` runs them, or as `streams run` itself), fed, and its output read back."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from streams import App, Client, Publisher, Settings
from streams.admin import TopicAdmin
from streams.events import TaskRequested, TaskStatus
from streams.serde.registry import ConfluentRegistry
from streams.tail import TailedMessage, tail
from tests.integration._agents import running

pytestmark = pytest.mark.integration


def _name(pattern: str) -> str:
    return f"{pattern}-{uuid.uuid4().hex[:8]}"


async def _read(
    settings: Settings, registry: ConfluentRegistry, topic: str, count: int, within: float = 30
) -> list[TailedMessage]:
    """The first ``count`` messages of ``topic`` (fewer if nothing more comes for ``within`` s)."""

    def read() -> list[TailedMessage]:
        return list(tail(settings, registry, topic, from_beginning=True, limit=count, idle_timeout=within))

    return await asyncio.to_thread(read)


def _prepared(app: App, settings: Settings, registry: ConfluentRegistry) -> App:
    """``app`` pointed at the test's cluster, its topics created, so a test can publish at once."""
    app.settings = settings
    TopicAdmin(settings, registry).apply(list(app.topics.values()))
    return app


def _publish(settings: Settings, topic: Any, values: list[tuple[str, Any]]) -> None:
    with Publisher(settings) as publisher:
        for key, value in values:
            publisher.publish(topic, value, key=key)
        publisher.flush()


async def test_doc_pipeline_runs_its_stages_in_sequence_and_dead_letters_bad_input(
    settings: Settings, registry: ConfluentRegistry
) -> None:
    from agents.doc_pipeline import Document, build

    name = _name("docs")
    app = _prepared(build(name), settings, registry)
    async with running(app):
        good = Document(doc_id="good", source="<p>Acme Bank raised its rates.</p>")
        _publish(
            settings, app.topics[f"{name}.raw"], [("good", good), ("bad", Document(doc_id="bad", source=""))]
        )
        [classified] = await _read(settings, registry, f"{name}.classified", 1)
        [refused] = await _read(settings, registry, f"{name}.extract.dlq", 1)
    assert classified.key == "good"
    assert classified.value is not None and classified.value["category"] == "finance"
    assert refused.key == "bad"
    assert refused.headers["dlq-reason"] == "extract: document bad has no text once its markup is removed"


async def test_scatter_gather_answers_with_a_quorum_naming_failed_and_late_shards(
    settings: Settings, registry: ConfluentRegistry
) -> None:
    from agents.scatter_gather import build

    app = _prepared(build(_name("shards"), timeout=1.0, cold_latency=2.5), settings, registry)
    async with running(app), Client(app, registry=registry) as client:
        query_id = await client.start(
            "search", TaskRequested(task_id="q", capability="search", payload="kafka")
        )
        answer = await client.result("search", query_id, timeout=60)
    assert answer.status is TaskStatus.SUCCEEDED
    assert answer.result.startswith("4 of 6 shards (s1: ")
    assert answer.result.endswith("; failed: s4; late: s6")


async def test_supervisor_delegates_subtasks_to_specialists_running_in_another_worker(
    settings: Settings, registry: ConfluentRegistry
) -> None:
    from agents.supervisor import build

    app = _prepared(build(_name("supervisor")), settings, registry)
    elsewhere = ["legal", "analytics"]
    here = [name for name in app.agents if name not in elsewhere]
    async with (
        running(app, here),
        running(app, elsewhere) as specialists,
        Client(app, registry=registry) as client,
    ):
        case = TaskRequested(task_id="case", capability="triage", payload="GDPR breach latency")
        case_id = await client.start("triage", case)
        report = await client.result("triage", case_id, timeout=60)
        served = {w.agent.name: w.stats.processed for w in specialists.workers}
    assert report.result == "report: GDPR: 1 obligations; breach: 6 findings; latency: up 21%"
    assert served == {"legal": 1, "analytics": 1}
