"""Worker snapshots (states, thread hand-off), heartbeat events built from them, and telemetry settings."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from streams import App, Settings
from streams.events import AgentHeartbeat, TaskRequested, WorkerState
from streams.serde.codec import AvroDecoder, AvroEncoder
from streams.serde.registry import InMemoryRegistry
from streams.sketch import Sketch
from streams.telemetry.config import TelemetryConfig
from streams.telemetry.heartbeat import heartbeat_of, heartbeat_topic
from streams.telemetry.latency import LatencyMiddleware, latency_record, latency_sketch
from streams.telemetry.probe import ProbeUnavailable, WorkerProbe, WorkerSnapshot
from streams.telemetry.watermarks import Watermarks
from streams.worker.agent_worker import AgentWorker, WorkerStats

pytestmark = pytest.mark.unit


def _worker() -> AgentWorker:
    app = App("probeapp")
    topic = app.topic("probe.in", value=TaskRequested)

    @app.agent(topic)
    async def reader(task: TaskRequested, ctx: Any) -> None:
        return None

    return AgentWorker(app.agents["reader"], Settings(), InMemoryRegistry(), worker_id="w7")


async def test_states_follow_the_worker_task_and_the_stop_event() -> None:
    worker = _worker()
    probe = WorkerProbe([worker], {})
    [before] = probe.snapshots()
    assert before.state == WorkerState.STARTING
    assert (before.agent, before.group_id, before.worker_id) == ("reader", "probeapp.reader", "w7")
    assert (before.assigned, before.in_flight, before.paused_partitions, before.lag) == ((), 0, 0, {})

    task: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    probe.bind({worker: task}, stop)
    assert probe.snapshots()[0].state == WorkerState.STARTING, "running, but not in its group yet"
    worker.stats.assignments = 1
    assert probe.snapshots()[0].state == WorkerState.RUNNING
    stop.set()
    assert probe.snapshots()[0].state == WorkerState.DRAINING
    task.set_result(None)
    assert probe.snapshots()[0].state == WorkerState.STOPPED
    assert probe.snapshots()[0].failure is None


async def test_a_worker_the_group_gave_no_partition_runs_once_its_statistics_say_it_joined() -> None:
    worker = _worker()
    watermarks = Watermarks()
    probe = WorkerProbe([worker], {worker: watermarks})
    probe.bind({worker: asyncio.get_running_loop().create_future()}, asyncio.Event())
    joining = {"name": "c", "topics": {}, "cgrp": {"state": "up", "join_state": "wait-join"}}
    watermarks.on_statistics(json.dumps(joining))
    assert probe.snapshots()[0].state == WorkerState.STARTING
    watermarks.on_statistics(json.dumps({**joining, "cgrp": {"state": "up", "join_state": "steady"}}))
    assert probe.snapshots()[0].state == WorkerState.RUNNING
    watermarks.on_statistics(json.dumps(joining))  # a later rebalance is not a new start
    assert probe.snapshots()[0].state == WorkerState.RUNNING
    assert worker.stats.assignments == 0 and probe.snapshots()[0].assigned == ()


async def test_a_worker_that_died_before_its_loop_reports_why() -> None:
    worker = _worker()
    probe = WorkerProbe([worker], {})
    task: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    task.set_exception(ValueError("bad consumer setting"))
    probe.bind({worker: task}, asyncio.Event())
    [snapshot] = probe.snapshots()
    assert snapshot.state == WorkerState.STOPPED
    assert snapshot.failure == "ValueError: bad consumer setting"
    task.exception()  # retrieved: no "exception never retrieved" warning


async def test_other_threads_get_snapshots_through_the_loop_and_time_out_when_it_is_stuck() -> None:
    worker = _worker()
    probe = WorkerProbe([worker], {})
    probe.bind({worker: asyncio.get_running_loop().create_future()}, asyncio.Event())
    answers: list[list[WorkerSnapshot] | BaseException] = []

    def scrape(timeout: float) -> None:
        try:
            answers.append(probe.snapshots(timeout))
        except ProbeUnavailable as exc:
            answers.append(exc)

    await asyncio.to_thread(scrape, 5.0)  # the loop is free: answered on it
    assert isinstance(answers[0], list) and answers[0][0].agent == "reader"

    thread = threading.Thread(target=scrape, args=(0.2,))
    thread.start()
    thread.join()  # blocks the loop itself, so the scrape's hand-off cannot be served before its timeout
    assert isinstance(answers[1], ProbeUnavailable)
    assert "did not answer within" in str(answers[1])


def test_a_heartbeat_describes_its_snapshot_and_round_trips_through_avro() -> None:
    snapshot = WorkerSnapshot(
        agent="reader",
        group_id="probeapp.reader",
        worker_id="w7",
        state=WorkerState.RUNNING,
        assigned=(("probe.in", 0), ("probe.in", 3)),
        in_flight=4,
        paused_partitions=0,
        lag={("probe.in", 0): 10, ("probe.in", 3): 5},
        stats=WorkerStats(received=30, processed=25, retries=3, dead_lettered=2),
        failure=None,
    )
    beat = heartbeat_of(snapshot)
    assert beat.agent == "probeapp.reader" and beat.worker_id == "w7"
    assert beat.pid == os.getpid() and beat.host
    assert beat.state == WorkerState.RUNNING
    assert beat.assigned_partitions == [0, 3]
    assert (beat.in_flight, beat.processed_total, beat.errors_total, beat.lag) == (4, 25, 5, 15)
    assert abs((datetime.now(UTC) - beat.sent_at).total_seconds()) < 5
    assert (beat.retries_total, beat.dead_letters_total, beat.paused_partitions) == (3, 2, 0)
    assert (beat.interval_ms, beat.latency) == (0, None)
    assert heartbeat_of(snapshot, WorkerState.STOPPED).state == WorkerState.STOPPED
    paused = heartbeat_of(
        replace(snapshot, paused_partitions=2), interval=2.5, latency=latency_record(Sketch(0.01).add(0.25))
    )
    assert (paused.paused_partitions, paused.interval_ms) == (2, 2500)
    assert paused.latency is not None and latency_sketch(paused.latency).quantile(0.5) == pytest.approx(
        0.25, rel=0.01
    )
    beat = paused

    registry = InMemoryRegistry()
    topic = heartbeat_topic("streams.heartbeats")
    payload = AvroEncoder(registry, topic.value_subject, AgentHeartbeat.avro_schema())(beat)
    _, decoded = AvroDecoder(registry, AgentHeartbeat.avro_schema()).decode(payload)
    assert AgentHeartbeat.from_avro(decoded) == beat


async def test_the_latency_middleware_sketches_each_interval_failed_calls_included() -> None:
    timer = LatencyMiddleware()
    ctx = cast(Any, None)  # the middleware never looks at the context

    async def slow() -> None:
        await asyncio.sleep(0.05)

    async def fails() -> None:
        raise ValueError("no")

    assert timer.take() is None  # nothing finished: the beat says so
    await timer.handle(ctx, slow)
    with pytest.raises(ValueError):
        await timer.handle(ctx, fails)
    taken = timer.take()
    assert taken is not None and latency_sketch(taken).count == 2
    assert 0.049 <= (latency_sketch(taken).quantile(1.0) or 0) < 1.0
    assert timer.take() is None  # each beat carries its own interval only


def test_telemetry_settings_come_from_streams_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = TelemetryConfig()
    assert (defaults.metrics_port, defaults.heartbeat_interval) == (None, 10.0)
    assert not defaults.metrics_enabled and defaults.heartbeats_enabled
    monkeypatch.setenv("STREAMS_METRICS_PORT", "0")
    monkeypatch.setenv("STREAMS_HEARTBEAT_INTERVAL", "0")
    monkeypatch.setenv("STREAMS_HEARTBEAT_TOPIC", "ops.beats")
    config = TelemetryConfig()
    assert config.metrics_port == 0 and config.metrics_enabled
    assert not config.heartbeats_enabled and config.heartbeat_topic == "ops.beats"
    assert TelemetryConfig(metrics_port=9464).metrics_port == 9464, "explicit values beat the environment"
    monkeypatch.setenv("STREAMS_METRICS_PORT", "70000")
    with pytest.raises(ValueError, match="metrics_port"):
        TelemetryConfig()
