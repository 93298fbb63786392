"""Worker telemetry on the real broker: the metrics endpoint, heartbeats and `streams lag`."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from prometheus_client.parser import text_string_to_metric_families

from streams import App, ExactlyOnce, Publisher, Settings
from streams.admin import TopicAdmin
from streams.context import Context
from streams.events import AgentHeartbeat, TaskCompleted, TaskRequested, TaskStatus, WorkerState
from streams.serde.registry import ConfluentRegistry
from streams.tail import tail
from streams.telemetry.config import TelemetryConfig
from tests.integration._agents import eventually, running
from tests.integration._http import http_get
from tests.integration._kafka import create_topic, message_count, produce_raw

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def _fetch(url: str) -> tuple[int, str]:
    # Off the loop: the endpoint takes worker snapshots on this very loop.
    return await asyncio.to_thread(http_get, url)


async def _scrape(url: str) -> Samples:
    status, text = await _fetch(f"{url}/metrics")
    assert status == 200, text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def _lag(samples: Samples, agent: str) -> dict[int, float]:
    return {
        int(dict(labels)["partition"]): value
        for (name, labels), value in samples.items()
        if name == "streams_consumer_lag" and dict(labels)["agent"] == agent
    }


async def test_metrics_endpoint_counts_what_two_agents_did(
    settings: Settings, registry: ConfluentRegistry, topic_name: str
) -> None:
    app = App(f"metrics-{topic_name[-8:]}", settings)
    tasks = app.topic(topic_name, value=TaskRequested, partitions=2)
    results = app.topic(topic_name + ".out", value=TaskCompleted, partitions=2)
    good, bad, undecodable = 40, 3, 2
    audit_gate = asyncio.Event()
    audited: list[str] = []

    @app.agent(tasks, concurrency=8, start="earliest")
    async def triage(task: TaskRequested, ctx: Context) -> None:
        if task.payload == "bad":
            raise ValueError(f"cannot triage {task.task_id}")
        await ctx.send(
            results, TaskCompleted(task_id=task.task_id, agent="triage", status=TaskStatus.SUCCEEDED)
        )

    # Exactly-once commits go through the producer's transaction, which librdkafka's consumer
    # statistics never see: lag must still fall to 0.
    @app.agent(results, start="earliest", guarantee=ExactlyOnce())
    async def audit(done: TaskCompleted, ctx: Context) -> None:
        await audit_gate.wait()  # held until the test has seen lag and in-flight work build up
        audited.append(done.task_id)

    TopicAdmin(settings, registry).apply([tasks, results])
    with Publisher(settings, registry) as publisher:
        for i in range(good + bad):
            payload = "bad" if i % 15 == 7 else str(i)
            publisher.publish(
                tasks, TaskRequested(task_id=f"t{i}", capability="c", payload=payload), key=f"k{i}"
            )
    for i in range(undecodable):
        produce_raw(settings, topic_name, b"not avro at all", key=f"poison{i}".encode())
    published = good + bad + undecodable

    config = TelemetryConfig(metrics_port=0, heartbeat_interval=0, lag_interval=0.2)
    async with running(app, telemetry=config) as runner:
        await eventually(lambda: runner.telemetry.server is not None, what="the endpoint to open")
        server = runner.telemetry.server
        assert server is not None and server.host == "127.0.0.1" and server.port > 0
        url = server.url
        assert await _fetch(f"{url}/health") == (200, "ok\n")

        async def ready() -> bool:
            return (await _fetch(f"{url}/ready"))[0] == 200

        await _eventually_async(ready, what="/ready to answer 200")
        assert (await _fetch(f"{url}/ready"))[1] == "ready: 2 agent(s) consuming\n"

        # triage finishes everything; audit holds every result in flight and commits nothing.
        seen: list[object] = []

        async def triage_done_and_audit_backed_up() -> bool:
            samples = await _scrape(url)
            seen[:] = [
                _value(samples, "streams_messages_received_total", agent="triage"),
                _value(samples, "streams_in_flight_messages", agent="audit"),
                _lag(samples, "audit"),
            ]
            return seen[0] == published and seen[1] == good and sum(_lag(samples, "audit").values()) == good

        await _eventually_async(
            triage_done_and_audit_backed_up,
            what=lambda: f"audit lag and in-flight at 40 (received, in flight, lag: {seen})",
        )
        audit_gate.set()
        await eventually(lambda: len(audited) == good, what="every result audited")

        async def all_committed() -> bool:
            samples = await _scrape(url)
            lag = {agent: _lag(samples, agent) for agent in ("triage", "audit")}
            return all(len(v) == 2 and not any(v.values()) for v in lag.values())

        await _eventually_async(all_committed, what="lag back to 0 on all 4 partitions")
        samples = await _scrape(url)
        assert (await _fetch(f"{url}/ready"))[0] == 200

    value = _value
    assert value(samples, "streams_messages_received_total", agent="triage") == published
    assert value(samples, "streams_messages_in_total", agent="triage", topic=topic_name) == good + bad, (
        "undecodable messages never reach the handler"
    )
    assert value(samples, "streams_handler_seconds_count", agent="triage") == good + bad
    assert value(samples, "streams_handler_errors_total", agent="triage", error="builtins.ValueError") == bad
    assert value(samples, "streams_messages_out_total", agent="triage", topic=results.name) == good
    assert value(samples, "streams_messages_processed_total", agent="triage") == good
    assert value(samples, "streams_dead_letters_total", agent="triage") == bad + undecodable
    assert value(samples, "streams_retries_total", agent="triage") == 0
    assert value(samples, "streams_duplicates_skipped_total", agent="triage") == 0
    assert value(samples, "streams_messages_in_total", agent="audit", topic=results.name) == good
    assert value(samples, "streams_messages_processed_total", agent="audit") == good
    assert value(samples, "streams_dead_letters_total", agent="audit") == 0
    assert value(samples, "streams_in_flight_messages", agent="audit") == 0
    assert value(samples, "streams_assigned_partitions", agent="audit") == 2
    assert value(samples, "streams_paused_partitions", agent="audit") == 0
    assert message_count(settings, app.agents["triage"].dead_letter_topic) == bad + undecodable
    with pytest.raises(OSError):
        http_get(f"{url}/health")  # the endpoint goes away with the runner


async def _eventually_async(
    check: Callable[[], Any], within: float = 60.0, what: str | Callable[[], str] = "condition"
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await check():
        if loop.time() > deadline:
            described = what if isinstance(what, str) else what()
            raise AssertionError(f"timed out after {within:.0f}s waiting for {described}")
        await asyncio.sleep(0.1)


async def test_heartbeats_report_each_worker_until_it_stops(
    settings: Settings, registry: ConfluentRegistry, topic_name: str
) -> None:
    app = App(f"beats-{topic_name[-8:]}", settings)
    tasks = app.topic(topic_name, value=TaskRequested, partitions=2)
    beats_topic = topic_name + ".heartbeats"
    handled: list[str] = []

    @app.agent(tasks, concurrency=4, start="earliest")
    async def worker(task: TaskRequested, ctx: Context) -> None:
        if task.payload == "bad":
            raise ValueError("no")
        handled.append(task.task_id)

    TopicAdmin(settings, registry).apply([tasks])
    with Publisher(settings, registry) as publisher:
        for i in range(12):
            payload = "bad" if i == 5 else str(i)
            publisher.publish(
                tasks, TaskRequested(task_id=f"t{i}", capability="c", payload=payload), key=f"k{i}"
            )

    config = TelemetryConfig(heartbeat_interval=0.3, heartbeat_topic=beats_topic, lag_interval=0.2)
    async with running(app, telemetry=config) as runner:
        await eventually(lambda: len(handled) == 11, what="every good message handled")

        def committed_everything() -> bool:
            [snapshot] = runner.telemetry.probe.snapshots_now()
            return len(snapshot.lag) == 2 and snapshot.total_lag == 0

        await eventually(committed_everything, what="lag 0 on both partitions")
        heartbeats = runner.telemetry.heartbeats
        assert heartbeats is not None
        rounds = heartbeats.rounds
        await eventually(lambda: heartbeats.rounds >= rounds + 2, what="two more heartbeats")
    worker_id = runner.workers[0].worker_id

    messages = list(tail(settings, registry, beats_topic, from_beginning=True, idle_timeout=3))
    assert messages and all(m.error is None for m in messages)
    beats = [AgentHeartbeat.from_avro(m.value) for m in messages if m.value is not None]
    assert len(beats) == heartbeats.delivered == heartbeats.rounds, "one per round, all delivered"
    assert {m.key for m in messages} == {f"{app.name}.worker"}, "keyed by the agent's consumer group"
    assert all(b.agent == f"{app.name}.worker" and b.worker_id == worker_id for b in beats)
    assert all(b.pid == os.getpid() for b in beats)
    states = [b.state for b in beats]
    # The first beat goes out as the worker starts, before its consumer has joined the group.
    assert states[0] == WorkerState.STARTING and beats[0].assigned_partitions == []
    first_running = states.index(WorkerState.RUNNING)
    assert set(states[:first_running]) == {WorkerState.STARTING}, "STARTING until it joined, then RUNNING"
    assert states[-1] == WorkerState.STOPPED and states.count(WorkerState.STOPPED) == 1
    assert WorkerState.DRAINING in states and states.index(WorkerState.DRAINING) < len(states) - 1
    running_beats = [b for b in beats if b.state == WorkerState.RUNNING]
    assert len(running_beats) >= 2
    caught_up = running_beats[-1]  # sent after every message was handled and committed
    assert caught_up.assigned_partitions == [0, 1]
    assert caught_up.processed_total == 11 and caught_up.errors_total == 1
    assert caught_up.in_flight == 0 and caught_up.lag == 0
    final = beats[-1]
    assert final.processed_total == 11 and final.errors_total == 1 and final.in_flight == 0
    assert final.lag == 0
    sent_at = [b.sent_at for b in beats]
    assert sent_at == sorted(sent_at), "one agent's beats stay in order"


def _write_app(directory: Path, module: str, app_name: str, topic: str) -> None:
    (directory / f"{module}.py").write_text(
        textwrap.dedent(
            f"""
            from streams import App
            from streams.events import TaskRequested

            app = App({app_name!r})
            tasks = app.topic({topic!r}, value=TaskRequested, partitions=2)

            @app.agent(tasks)
            async def reader(task, ctx):
                pass

            @app.agent(tasks)
            async def other(task, ctx):
                pass
            """
        )
    )


def _rows(output: str) -> list[list[str]]:
    """The body rows of a rich table: cells split on its vertical rules."""
    return [
        [cell.strip() for cell in line.strip().strip("│").split("│")]
        for line in output.splitlines()
        if line.startswith("│")  # the header row is drawn with ┃
    ]


def test_lag_command_reports_committed_end_and_lag_per_partition(
    settings: Settings, topic_name: str, cli: Callable[..., Any], tmp_path: Path
) -> None:
    create_topic(settings, topic_name, partitions=2)
    producer = Producer(settings.producer_config())
    for partition, count in ((0, 6), (1, 4)):
        for i in range(count):
            producer.produce(topic_name, value=f"{i}".encode(), partition=partition)
    assert producer.flush(10) == 0
    # Partition 1 now starts at offset 1: an uncommitted group has 3 messages to read there, not 4.
    admin = AdminClient(settings.admin_config())
    [deleted] = admin.delete_records([TopicPartition(topic_name, 1, 1)]).values()
    assert deleted.result(15).low_watermark == 1
    app_name = f"lag-{topic_name[-8:]}"
    group = f"{app_name}.reader"
    committer = Consumer(settings.consumer_config(group))
    committer.commit(offsets=[TopicPartition(topic_name, 0, 2)], asynchronous=False)
    committer.close()
    module = f"lagapp_{uuid.uuid4().hex[:8]}"
    _write_app(tmp_path, module, app_name, topic_name)

    by_app = cli("lag", f"{module}:app", "--agent", "reader", cwd=tmp_path)
    assert by_app.returncode == 0, by_app.stderr
    # Nothing committed on partition 1: its whole backlog counts (marked *), never 0 or "-".
    assert _rows(by_app.stdout) == [
        [group, topic_name, "0", "2", "6", "4"],
        [group, topic_name, "1", "-", "4", "3*"],
        [group, "total", "", "", "", "7*"],
    ]
    assert "* nothing committed: counted from the partition's first offset" in by_app.stdout

    whole_app = cli("lag", f"{module}:app", cwd=tmp_path)
    assert whole_app.returncode == 0, whole_app.stderr
    groups = {row[0] for row in _rows(whole_app.stdout)}
    assert groups == {group, f"{app_name}.other"}, "every agent of the app by default"

    by_group = cli("lag", "--group", group, "--group", f"{app_name}.nobody")
    assert by_group.returncode == 0, by_group.stderr
    assert _rows(by_group.stdout) == [
        [f"{app_name}.nobody", "-", "-", "-", "-", "-"],
        [group, topic_name, "0", "2", "6", "4"],
        [group, "total", "", "", "", "4"],
    ]

    neither = cli("lag")
    assert neither.returncode == 1
    assert "error: name an app (MODULE:APP) or a consumer group (--group)" in neither.stderr


def test_streams_run_serves_the_endpoint_and_says_stopped_on_sigterm(
    settings: Settings, registry: ConfluentRegistry, topic_name: str, tmp_path: Path
) -> None:
    app_name = f"run-{topic_name[-8:]}"
    module = f"runapp_{uuid.uuid4().hex[:8]}"
    _write_app(tmp_path, module, app_name, topic_name)
    beats_topic = topic_name + ".beats"
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "SCHEMA_REGISTRY_URL": settings.schema_registry_url,
        "STREAMS_HEARTBEAT_TOPIC": beats_topic,  # the environment configures what options do not
        "STREAMS_HEARTBEAT_INTERVAL": "0.5",
    }
    log_file = tmp_path / "worker.log"
    with log_file.open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "streams", "run", f"{module}:app", "--metrics-port", "0"],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        url = _wait_for_endpoint(log_file, worker)
        assert http_get(f"{url}/health") == (200, "ok\n")
        deadline = time.monotonic() + 60
        while (status := http_get(f"{url}/ready"))[0] != 200:
            assert time.monotonic() < deadline, f"never ready: {status}"
            time.sleep(0.1)
        assert status == (200, "ready: 2 agent(s) consuming\n")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(60) == 0, log_file.read_text()
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    with pytest.raises(OSError):
        http_get(f"{url}/health")
    beats = [
        AgentHeartbeat.from_avro(m.value)
        for m in tail(settings, registry, beats_topic, from_beginning=True, idle_timeout=3)
        if m.value is not None
    ]
    last = {b.agent: b.state for b in beats}  # in order per agent: one partition each
    assert last == {f"{app_name}.reader": WorkerState.STOPPED, f"{app_name}.other": WorkerState.STOPPED}
    assert {b.pid for b in beats} == {worker.pid}


def _wait_for_endpoint(log_file: Path, worker: subprocess.Popen[bytes]) -> str:
    """The endpoint's URL, from the line the worker logs when port 0 picked one."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = re.search(r"serving metrics on (http://127\.0\.0\.1:\d+)/metrics", log_file.read_text())
        if found:
            return found.group(1)
        assert worker.poll() is None, log_file.read_text()
        time.sleep(0.1)
    raise AssertionError(f"no endpoint logged within 60s:\n{log_file.read_text()}")
