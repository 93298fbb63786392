"""`streams lag` against running agents: a backlog nothing was committed for yet, and an exactly-once
group that has caught up with a transactional topic (whose last offsets are commit markers)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

from confluent_kafka import Producer

from streams import App, ExactlyOnce, Publisher, Settings
from streams.admin import TopicAdmin
from streams.context import Context
from streams.events import TaskRequested
from streams.headers import origin_headers
from streams.serde.registry import ConfluentRegistry
from streams.telemetry.config import TelemetryConfig
from streams.telemetry.lag import LagReader
from tests.integration._agents import eventually, running

QUIET = TelemetryConfig(heartbeat_interval=0)


def _rows(output: str) -> list[list[str]]:
    """The body rows of a rich table: cells split on its vertical rules (the header uses ┃)."""
    return [
        [cell.strip() for cell in line.strip().strip("│").split("│")]
        for line in output.splitlines()
        if line.startswith("│")
    ]


async def test_a_running_group_that_committed_nothing_shows_its_whole_backlog(
    settings: Settings, registry: ConfluentRegistry, topic_name: str, cli: Callable[..., Any]
) -> None:
    app = App(f"backlog-{topic_name[-8:]}", settings)
    tasks = app.topic(topic_name, value=TaskRequested, partitions=2)
    gate = asyncio.Event()
    started: list[str] = []

    @app.agent(tasks, concurrency=4, start="earliest")
    async def slow(task: TaskRequested, ctx: Context) -> None:
        started.append(task.task_id)
        await gate.wait()  # nothing finishes, so nothing is committed

    TopicAdmin(settings, registry).apply([tasks])
    with Publisher(settings, registry) as publisher:
        for i in range(30):
            publisher.publish(
                tasks, TaskRequested(task_id=f"t{i}", capability="c", payload="{}"), key=f"k{i}"
            )
    group = app.agents["slow"].group_id
    async with running(app, telemetry=QUIET) as runner:
        await eventually(lambda: len(started) == 4, what="four handlers blocked")
        await eventually(lambda: runner.workers[0].stats.received == 30, what="every message received")
        shown = await asyncio.to_thread(cli, "lag", "--group", group)
        by_app = await asyncio.to_thread(LagReader(settings).lag, {group: [topic_name]})
        gate.set()
    assert shown.returncode == 0, shown.stderr
    # With --group only committed partitions are known: none, so the group has a row of "-".
    assert _rows(shown.stdout) == [[group, "-", "-", "-", "-", "-"]]
    # With the agent's topic known, every partition counts from its first offset.
    assert [(r.partition, r.committed, r.from_start) for r in by_app] == [(0, None, True), (1, None, True)]
    assert sum(r.lag for r in by_app) == 30
    assert all(r.lag == r.end for r in by_app)


async def test_a_caught_up_exactly_once_group_has_no_lag(
    settings: Settings, registry: ConfluentRegistry, topic_name: str, cli: Callable[..., Any]
) -> None:
    app = App(f"eoslag-{topic_name[-8:]}", settings)
    tasks = app.topic(topic_name, value=TaskRequested, partitions=2)
    handled: list[str] = []

    @app.agent(tasks, start="earliest", guarantee=ExactlyOnce())
    async def audit(task: TaskRequested, ctx: Context) -> None:
        handled.append(task.task_id)

    TopicAdmin(settings, registry).apply([tasks])
    # The input is written in transactions, as an exactly-once stage upstream writes it: each
    # transaction leaves a commit marker in every partition it wrote to.
    encoder = Publisher(settings, registry).encoder(tasks)
    producer = Producer(settings.producer_config(**{"transactional.id": f"lag-test-{uuid.uuid4().hex}"}))
    producer.init_transactions(15)
    for batch in range(3):
        producer.begin_transaction()
        for i in range(4):
            value = encoder(TaskRequested(task_id=f"t{batch}.{i}", capability="c", payload="{}"))
            producer.produce(
                topic_name, value, key=f"k{i}".encode(), partition=i % 2, headers=origin_headers()
            )
        producer.commit_transaction(15)
    group = app.agents["audit"].group_id
    beats = TelemetryConfig(heartbeat_interval=0.5, lag_interval=0.2, heartbeat_topic=f"{app.name}.beats")
    async with running(app, telemetry=beats) as runner:
        await eventually(lambda: len(handled) == 12, what="every message handled")

        def worker_lag() -> dict[int, int]:
            [snapshot] = runner.telemetry.probe.snapshots_now()
            return {partition: lag for (_, partition), lag in snapshot.lag.items()}

        # What the worker itself reports (heartbeats, metrics): the markers are no work either.
        await eventually(
            lambda: worker_lag() == {0: 0, 1: 0}, within=30, what="no lag in the worker's figures"
        )
    # Stopping drained and committed everything.

    shown = cli("lag", "--group", group)
    assert shown.returncode == 0, shown.stderr
    rows = _rows(shown.stdout)
    assert [row[2] for row in rows[:-1]] == ["0", "1"], shown.stdout
    for _, _, _, committed, end, lag in rows[:-1]:
        # The committed position is the last message + 1; the commit marker after it is all that is
        # left, and it is not a message to read.
        assert int(committed) == int(end) - 1, shown.stdout
        assert lag == "0", shown.stdout
    assert rows[-1] == [group, "total", "", "", "", "0"]
