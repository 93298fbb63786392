"""The agent watch: heartbeats folded into one status per agent (rates, live instances, merged latency
sketches), and the watch app on the twin: statuses on the compacted topic, alerts for an agent that
goes silent, whose lag keeps growing, that fails or dead-letters, and workflow runs counted by state."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agents.watch import build
from streams import ConfigError
from streams.events import (
    AgentHeartbeat,
    AgentStatus,
    Alert,
    AlertStatus,
    Severity,
    WorkerState,
    WorkflowCounts,
    WorkflowEvent,
    WorkflowEventKind,
)
from streams.monitoring import Bounds, WatchSettings
from streams.monitoring.fleet import breaker_samples, fold, is_live, samples
from streams.monitoring.watch import STATUS
from streams.sketch import Sketch
from streams.telemetry.config import TelemetryConfig
from streams.telemetry.latency import latency_record
from streams.testing import TestApp

pytestmark = pytest.mark.unit

T0 = datetime(2025, 1, 1, tzinfo=UTC)
DOWN, FORGET = 30_000, 600_000


def beat(
    worker: str = "w1",
    at: float = 0.0,
    *,
    agent: str = "shop.orders",
    processed: int = 0,
    errors: int = 0,
    dead: int = 0,
    lag: int = 0,
    state: WorkerState = WorkerState.RUNNING,
    **extra: Any,
) -> AgentHeartbeat:
    return AgentHeartbeat(
        agent=agent,
        worker_id=worker,
        host="h",
        pid=1,
        state=state,
        assigned_partitions=[0, 1],
        processed_total=processed,
        errors_total=errors,
        dead_letters_total=dead,
        lag=lag,
        sent_at=T0 + timedelta(seconds=at),
        **extra,
    )


def run(*beats: AgentHeartbeat, latencies: dict[str, Any] | None = None) -> AgentStatus:
    status = None
    for one in beats:
        status = fold(status, one, latencies or {}, down_after_ms=DOWN, forget_after_ms=FORGET)
    assert status is not None
    return status


def test_rates_come_from_each_workers_last_two_beats_and_add_up_over_live_workers() -> None:
    status = run(
        beat("w1", 0, processed=100),
        beat("w2", 1, processed=0),
        beat("w1", 10, processed=600, errors=20, dead=5),  # 50/s, 2 errors/s, 0.5 dead letters/s
        beat("w2", 11, processed=300),  # 30/s
    )
    assert status.instances == 2 and [w.worker_id for w in status.workers] == ["w1", "w2"]
    assert status.throughput == pytest.approx(80.0)
    assert status.error_rate == pytest.approx(2.0) and status.dead_letter_rate == pytest.approx(0.5)
    assert (status.processed_total, status.errors_total, status.dead_letters_total) == (900, 20, 5)
    assert status.last_seen == T0 + timedelta(seconds=11) and status.down_after_ms == DOWN


def test_a_silent_worker_stops_counting_then_is_forgotten_and_a_stopped_one_never_counts() -> None:
    status = run(beat("w1", 0, processed=0), beat("w2", 0), beat("w1", 10, processed=100))
    assert status.instances == 2 and status.throughput == pytest.approx(10.0)
    status = run(beat("w1", 0), beat("w2", 0), beat("w1", 31, processed=310))  # w2 silent for 31 s
    assert status.instances == 1 and {w.worker_id for w in status.workers} == {"w1", "w2"}
    status = run(beat("w1", 0), beat("w2", 0), beat("w1", 601))
    assert [w.worker_id for w in status.workers] == ["w1"]  # w2 silent for longer than forget_after
    status = run(beat("w1", 0), beat("w2", 1, state=WorkerState.STOPPED))
    assert status.instances == 1
    [stopped] = [w for w in status.workers if w.worker_id == "w2"]
    assert not is_live(stopped, T0 + timedelta(seconds=1), DOWN)
    assert is_live(status.workers[0], T0 + timedelta(seconds=30), DOWN)
    assert not is_live(status.workers[0], T0 + timedelta(seconds=31), DOWN)


def test_latency_quantiles_merge_the_live_workers_sketches_exactly() -> None:
    rng = random.Random(3)
    fast = [rng.uniform(0.001, 0.010) for _ in range(900)]
    slow = [rng.uniform(0.200, 0.400) for _ in range(100)]
    latencies = {
        "w1": latency_record(Sketch(0.01).extend(fast)),
        "w2": latency_record(Sketch(0.01).extend(slow)),
    }
    status = run(beat("w1", 0), beat("w2", 0), latencies=latencies)
    everything = sorted(fast + slow)
    p50, p99 = everything[499], everything[989]
    assert status.latency_p50_ms == pytest.approx(p50 * 1000, rel=0.011)
    assert status.latency_p99_ms == pytest.approx(p99 * 1000, rel=0.011)
    # The slow worker's p99 alone, or an average of per-worker p99s, would be far off.
    assert run(beat("w1", 0), latencies={}).latency_p99_ms is None


def test_lag_rising_counts_growing_beats_keeps_on_flat_ones_and_ends_when_lag_falls() -> None:
    lags = [0, 10, 20, 20, 35, 30, 40]
    expected = [0, 1, 2, 2, 3, 0, 1]
    status = None
    for second, (lag, rising) in enumerate(zip(lags, expected, strict=True)):
        status = fold(status, beat("w1", second, lag=lag), {}, down_after_ms=DOWN, forget_after_ms=FORGET)
        assert status.lag_rising == rising, (lag, status.lag_rising)
    assert status is not None
    assert {s.name: s.value for s in samples(status)} == {
        "heartbeat": 1.0,
        "lag_rising": 1.0,
        "error_rate": 0.0,
        "dead_letter_rate": 0.0,
    }


def test_open_breakers_add_up_over_live_workers_and_a_closed_one_is_sampled_once() -> None:
    first = run(beat("w1", 0, open_breakers=["research"]), beat("w2", 0, open_breakers=["billing"]))
    assert first.open_breakers == ["billing", "research"]
    assert [(key, s.name, s.value) for key, s in breaker_samples(None, first)] == [
        ("shop.orders/billing", "breaker_open", 1.0),
        ("shop.orders/research", "breaker_open", 1.0),
    ]
    # w2 goes silent past down_after: its open breaker no longer counts; w1's research closed.
    later = fold(first, beat("w1", 31), {}, down_after_ms=DOWN, forget_after_ms=FORGET)
    assert later.open_breakers == []
    closing = breaker_samples(first, later)
    assert [(key, s.value, s.labels) for key, s in closing] == [
        ("shop.orders/billing", 0.0, {"agent": "shop.orders", "capability": "billing"}),
        ("shop.orders/research", 0.0, {"agent": "shop.orders", "capability": "research"}),
    ]
    assert breaker_samples(later, later) == []


def test_bounds_refuse_nonsense() -> None:
    with pytest.raises(ConfigError, match="down_after"):
        Bounds(down_after=0)
    with pytest.raises(ConfigError, match="forget_after must not be shorter"):
        Bounds(down_after=60, forget_after=30)
    with pytest.raises(ConfigError, match="STREAMS_WATCH_WORKFLOWS"):
        WatchSettings(workflows="shop.orders")
    assert WatchSettings(workflows="shop.refund.events, shop.pay.events:3").workflow_topics() == [
        ("shop.refund.events", 6),
        ("shop.pay.events", 3),
    ]


# ------------------------------------------------------------------ the watch app on the twin


def _watch(**settings: Any) -> Any:
    watch = WatchSettings(
        app="watch",
        status_topic="t.status",
        alerts_topic="t.alerts",
        workflow_status_topic="t.workflows",
        **settings,
    )
    return build(watch, TelemetryConfig(heartbeat_topic="t.beats"))


async def _beat(t: TestApp, app: Any, **fields: Any) -> None:
    one = beat(**fields).model_copy(update={"sent_at": datetime.fromtimestamp(t.clock.now, UTC)})
    await t.publish(app.topics["t.beats"], one, key=one.agent)


def _alerts(t: TestApp, app: Any) -> list[tuple[str, str, AlertStatus]]:
    return [(a.rule, a.labels["agent"], a.status) for a in t.sent(app.topics["t.alerts"])]


async def test_the_watch_keeps_a_status_per_agent_and_alerts_when_an_agent_goes_silent() -> None:
    app = _watch(down_after=5)
    status_topic = app.topics["t.status"]
    async with TestApp(app) as t:
        for second in range(8):
            await _beat(t, app, agent="shop.orders", processed=10 * second)
            await _beat(t, app, agent="shop.billing", worker="b1", processed=second)
            await t.advance(1)
        latest = {s.agent: s for s in t.sent(status_topic)}
        assert set(latest) == {"shop.orders", "shop.billing"}
        assert latest["shop.orders"].throughput == pytest.approx(10.0)
        assert latest["shop.orders"].instances == 1 and latest["shop.orders"].down_after_ms == 5000
        assert [m.key for m in t.messages(status_topic) if m.value.agent == "shop.billing"][
            -1
        ] == "shop.billing"
        assert t.table("agents", STATUS)["shop.billing"] == latest["shop.billing"]
        assert _alerts(t, app) == []
        for _ in range(7):  # billing is killed: only orders beats on
            await _beat(t, app, agent="shop.orders", processed=100)
            await t.advance(1)
        assert _alerts(t, app) == [("agent-down", "shop.billing", AlertStatus.OPEN)]
        [down] = t.sent(app.topics["t.alerts"])
        assert down.severity == Severity.CRITICAL and down.message.startswith(
            "shop.billing: no heartbeat for"
        )
        await _beat(t, app, agent="shop.billing", worker="b2")  # a new worker of it starts
        assert _alerts(t, app)[-1] == ("agent-down", "shop.billing", AlertStatus.RESOLVED)
        resolved = t.sent(app.topics["t.alerts"])[-1]
        assert resolved.message.startswith("shop.billing: resolved: heartbeats again (the previous one came")


async def test_an_agent_stopped_on_purpose_is_not_down_and_is_watched_again_when_it_restarts() -> None:
    app = _watch(down_after=5)
    async with TestApp(app) as t:
        for _ in range(3):
            await _beat(t, app, agent="shop.mail", worker="m1")
            await t.advance(1)
        await _beat(t, app, agent="shop.mail", worker="m1", state=WorkerState.STOPPED)  # its final beat
        await t.advance(20)
        assert _alerts(t, app) == [], "a deliberate stop is no outage"
        await _beat(t, app, agent="shop.mail", worker="m2")  # started again, then killed
        await t.advance(7)
        assert _alerts(t, app) == [("agent-down", "shop.mail", AlertStatus.OPEN)]
        # Its last worker, silent past the bound, stops cleanly after all: the alert resolves.
        await _beat(t, app, agent="shop.mail", worker="m2", state=WorkerState.STOPPED)
        assert _alerts(t, app)[1:] == [("agent-down", "shop.mail", AlertStatus.RESOLVED)]
        assert t.sent(app.topics["t.alerts"])[-1].message == (
            "shop.mail: resolved: stopped on purpose (every worker sent its final heartbeat)"
        )
        await t.advance(20)
        assert len(_alerts(t, app)) == 2, "and it is not judged again until it beats again"


async def test_the_watch_alerts_on_growing_lag_errors_and_dead_letters_and_resolves_them() -> None:
    app = _watch(lag_rising_beats=3, max_error_rate=2)
    async with TestApp(app) as t:
        for second, lag in enumerate([0, 50, 100, 150, 200, 100]):
            await _beat(t, app, at=second, lag=lag)
            await t.advance(1)
        assert _alerts(t, app) == [
            ("lag-growing", "shop.orders", AlertStatus.OPEN),
            ("lag-growing", "shop.orders", AlertStatus.RESOLVED),
        ]
        alerts: list[Alert] = t.sent(app.topics["t.alerts"])
        assert alerts[0].value == 3.0 and alerts[0].message == "shop.orders: lag grew on 3 beats in a row"
        assert alerts[1].message == "shop.orders: resolved: lag stopped growing"
        await _beat(t, app, errors=10, dead=2)  # 10 failed attempts and 2 dead letters in 1 s
        await t.advance(1)
        await _beat(t, app, errors=10, dead=2)
        assert _alerts(t, app)[2:] == [
            ("error-rate", "shop.orders", AlertStatus.OPEN),
            ("dlq-growing", "shop.orders", AlertStatus.OPEN),
            ("error-rate", "shop.orders", AlertStatus.RESOLVED),
            ("dlq-growing", "shop.orders", AlertStatus.RESOLVED),
        ]
        messages = [a.message for a in t.sent(app.topics["t.alerts"])[2:4]]
        assert messages == ["shop.orders: 10 failed attempts/s, over 2/s", "shop.orders: 2 dead letters/s"]


async def test_the_watch_alerts_while_an_engine_holds_a_breaker_open_and_resolves_when_it_closes() -> None:
    app = _watch()
    async with TestApp(app) as t:
        await _beat(t, app, agent="shop.triage")
        await t.advance(1)
        await _beat(t, app, agent="shop.triage", open_breakers=["research"])
        await t.advance(1)
        await _beat(t, app, agent="shop.triage", open_breakers=["research"])  # still open: no repeat
        assert _alerts(t, app) == [("breaker-open", "shop.triage", AlertStatus.OPEN)]
        [opened] = t.sent(app.topics["t.alerts"])
        assert opened.message == "shop.triage/research: circuit breaker open: calls kept from the capability"
        assert opened.labels["capability"] == "research" and opened.severity == Severity.WARNING
        assert [m.key for m in t.messages(app.topics["t.alerts"])] == ["shop.triage/research"]
        await t.advance(1)
        await _beat(t, app, agent="shop.triage")
        assert _alerts(t, app)[1:] == [("breaker-open", "shop.triage", AlertStatus.RESOLVED)]
        assert t.sent(app.topics["t.alerts"])[1].alert_id == opened.alert_id


async def test_workflow_runs_are_counted_by_state_once_each() -> None:
    app = _watch(workflows="shop.refund.events:1")
    events = app.topics["shop.refund.events"]

    async def event(kind: WorkflowEventKind, workflow_id: str) -> None:
        at = datetime.fromtimestamp(t.clock.now, UTC)
        one = WorkflowEvent(kind=kind, workflow_id=workflow_id, name="refund", sender="test", at=at)
        await t.publish(events, one, key=workflow_id)

    async with TestApp(app) as t:
        for run_id in ["r1", "r2", "r3", "r4"]:
            await event(WorkflowEventKind.STARTED, run_id)
        await event(WorkflowEventKind.STARTED, "r1")  # a repeat
        await event(WorkflowEventKind.STEP_SUCCEEDED, "r1")
        await event(WorkflowEventKind.COMPLETED, "r1")
        await event(WorkflowEventKind.COMPLETED, "r1")  # a repeat
        await event(WorkflowEventKind.FAILED, "r2")
        await event(WorkflowEventKind.CANCELLED, "r5")  # started before the topic's retention
        counts: list[WorkflowCounts] = t.sent(app.topics["t.workflows"])
        last = counts[-1]
        assert (last.agent, last.partition) == ("shop.refund", 0)
        assert (last.running, last.completed, last.failed, last.cancelled) == (2, 1, 1, 1)
        assert len(counts) == 7  # one per change, none for repeats and steps
        assert {m.key for m in t.messages(app.topics["t.workflows"])} == {"shop.refund#0"}
