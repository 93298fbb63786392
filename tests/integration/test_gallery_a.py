"""The pattern gallery on the real broker: each example app under a name of its own, run as workers
(in this process, as `streams run` runs them, or as `streams run` itself), fed, and its output read back."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from streams import Client, Publisher, Settings, WorkflowFailed
from streams.events import TaskRequested, TaskStatus
from streams.serde.registry import ConfluentRegistry
from streams.tail import TailedMessage, tail
from tests.integration._agents import on_cluster, running, unique

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


async def _read(
    settings: Settings, registry: ConfluentRegistry, topic: str, count: int, within: float = 30
) -> list[TailedMessage]:
    """The first ``count`` messages of ``topic`` (fewer if nothing more comes for ``within`` s)."""

    def read() -> list[TailedMessage]:
        return list(tail(settings, registry, topic, from_beginning=True, limit=count, idle_timeout=within))

    return await asyncio.to_thread(read)


def _publish(settings: Settings, topic: Any, values: list[tuple[str, Any]]) -> None:
    with Publisher(settings) as publisher:
        for key, value in values:
            publisher.publish(topic, value, key=key)
        publisher.flush()


@contextmanager
def _streams_run(settings: Settings, cwd: Path, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    """`streams run ARGS` in a worker process (from ``cwd``), stopped with SIGTERM afterwards."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "SCHEMA_REGISTRY_URL": settings.schema_registry_url,
    }
    with (cwd / "worker.log").open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "streams", "run", *args],
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield worker
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        assert worker.returncode == 0, (cwd / "worker.log").read_text()


async def test_doc_pipeline_runs_its_stages_in_sequence_and_dead_letters_bad_input(
    settings: Settings, registry: ConfluentRegistry
) -> None:
    from agents.doc_pipeline import Document, build

    name = unique("docs")
    app = on_cluster(build(name), settings, registry)
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

    app = on_cluster(build(unique("shards"), timeout=3.0, cold_latency=4.0), settings, registry)
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

    app = on_cluster(build(unique("supervisor")), settings, registry)
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


async def test_pubsub_agent_attached_from_the_cli_catches_up_from_the_time_it_is_given(
    settings: Settings, registry: ConfluentRegistry, tmp_path: Path
) -> None:
    from agents.pubsub import Article, build

    name = unique("news")
    app = on_cluster(build(name), settings, registry)
    articles = app.topics[f"{name}.articles"]

    def batch(first: int, count: int) -> list[tuple[str, Any]]:
        ids = [f"a{i}" for i in range(first, first + count)]
        return [(i, Article(article_id=i, headline=f"News {i}", body="Words.")) for i in ids]

    async with running(app):
        _publish(settings, articles, batch(0, 3))
        await asyncio.sleep(0.05)  # a millisecond timestamp between the two batches
        since = datetime.now(UTC)
        await asyncio.sleep(0.05)
        _publish(settings, articles, batch(3, 2))
        before = await _read(settings, registry, f"{name}.done", 3 * 5)
        # The new agent, attached from the shell as a user would, told to start at `since`.
        (tmp_path / "attach_news.py").write_text(
            f"from agents.pubsub import build\ntranslator = build({name!r}, agents=('translate',))\n"
        )
        with _streams_run(settings, tmp_path, "attach_news:translator", "--start", since.isoformat()):
            await _read(settings, registry, f"{name}.done", 3 * 5 + 2)
            after = await _read(settings, registry, f"{name}.done", 3 * 5 + 5, within=2)  # and no more
    assert {(m.value or {})["agent"] for m in before} == {"index", "notify", "archive"}
    translated = [(m.value or {})["result"] for m in after if (m.value or {})["agent"] == "translate"]
    assert sorted(translated) == ["NEWS A3", "NEWS A4"], "only what came at or after --start"


async def test_batch_pipeline_gathers_items_enriched_in_parallel_back_into_their_batches(
    settings: Settings, registry: ConfluentRegistry
) -> None:
    from agents.batch_pipeline import Batch, build

    name = unique("batches")
    app = on_cluster(build(name), settings, registry)
    batches = [Batch(batch_id=f"b{b}", items=[f"item {b} {i}" for i in range(8)]) for b in range(2)]
    async with running(app) as runner:
        _publish(settings, app.topics[f"{name}.in"], [(batch.batch_id, batch) for batch in batches])
        reports = await _read(settings, registry, f"{name}.reports", 2)
        enriched = next(w.stats.processed for w in runner.workers if w.agent.name == "enrich")
    results = {m.key: (m.value or {})["result"] for m in reports}
    assert results == {
        batch.batch_id: "; ".join(f"{text.title()} (3 words)" for text in batch.items) for batch in batches
    }
    assert enriched == 16


async def test_workflow_spec_runs_a_planned_spec_and_one_given_as_json_from_the_cli(
    settings: Settings,
    registry: ConfluentRegistry,
    tmp_path: Path,
    cli: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    from agents.workflow_spec import build

    name = unique("specs")
    app = on_cluster(build(name), settings, registry)
    (tmp_path / "spec_app.py").write_text(f"from agents.workflow_spec import build\napp = build({name!r})\n")
    spec = {
        "spec_id": "s1",
        "steps": [
            {"name": "fetch", "capability": "fetch", "input": "disk full", "attempts": 2},
            {"name": "classify", "capability": "classify", "input": "{fetch}", "depends_on": ["fetch"]},
        ],
    }
    async with running(app), Client(app, registry=registry) as client:
        case = TaskRequested(task_id="c1", capability="planned", payload="checkout outage")
        run = await client.start("planned", case)
        planned = await client.result("planned", run, timeout=60)
        started = await asyncio.to_thread(
            cli,
            "workflow",
            "start",
            "spec_app:app",
            "execute",
            "--input",
            json.dumps(spec),
            "--wait",
            "--json",
            cwd=tmp_path,
            extra_env={"PYTHONPATH": str(ROOT)},
        )
    assert json.loads(planned.result)["escalate"] == "paged on-call: checkout outage"
    assert started.returncode == 0, started.stderr
    output = json.loads(started.stdout)["output"]
    assert json.loads(output["result"]) == {"fetch": "2 records about disk full", "classify": "routine"}


async def test_saga_undoes_the_bookings_made_newest_first_when_one_fails(
    settings: Settings, registry: ConfluentRegistry
) -> None:
    from agents.saga import build

    app = on_cluster(build(unique("trips")), settings, registry)
    async with running(app), Client(app, registry=registry) as client:
        trip = await client.start("trip", TaskRequested(task_id="t", capability="trip", payload="Reykjavik"))
        with pytest.raises(WorkflowFailed, match="no car available in Reykjavik"):
            await client.result("trip", trip, timeout=60)
        undone = await _read(settings, registry, app.specialists["undo"].requests.name, 3, within=3)
    in_order = sorted(undone, key=lambda m: m.timestamp_ms)
    assert [(m.value or {})["payload"] for m in in_order] == ["hotel", "flight"]
