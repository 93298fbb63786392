"""A Monitor on the in-memory twin with its fake clock: alerts opened once, resolved, suppressed by
the cool-down, silence found by the ticker, state in tables; and monitors over window summaries."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from streams import App, ConfigError, ExactlyOnce, Tumbling
from streams.events import Alert, AlertStatus, MetricSample, Severity, WindowSummary
from streams.monitoring import (
    MAD,
    Absence,
    Monitor,
    RateOfChange,
    Rule,
    Summarize,
    Threshold,
    ZScore,
    quantile,
)
from streams.monitoring.monitor import ALERTS_TABLE
from streams.testing import TestApp

pytestmark = pytest.mark.unit


def _app(*rules: Rule, partitions: int = 2) -> tuple[App, Any, Any, Monitor[MetricSample]]:
    app = App("plant")
    samples = app.topic("plant.samples", value=MetricSample, partitions=partitions)
    alerts = app.topic("plant.alerts", value=Alert, partitions=partitions)
    monitor = Monitor(app, samples, alerts=alerts, rules=list(rules), name="watch")
    return app, samples, alerts, monitor


async def _send(t: TestApp, samples: Any, key: str, value: float, name: str = "temperature") -> None:
    now = datetime.fromtimestamp(t.clock.now, UTC)
    await t.publish(
        samples, MetricSample(name=name, value=value, labels={"sensor": key}, observed_at=now), key=key
    )


def _alerts(t: TestApp, alerts: Any) -> list[tuple[str, str, str]]:
    """(rule, series, status) of every alert sent, in the order of the alert topic's partitions."""
    return [(a.rule, a.alert_id.split(":")[1], a.status.value) for a in t.sent(alerts)]


async def test_a_threshold_rule_opens_once_resolves_and_is_kept_in_a_table() -> None:
    app, samples, alerts, _ = _app(Rule("hot", Threshold(above=30), severity=Severity.CRITICAL))
    assert set(app.agents) == {"watch", "watch-alerts"}
    async with TestApp(app) as t:
        for value in [20, 31, 35, 40, 33, 25, 22]:
            await _send(t, samples, "s1", value)
            await t.advance(1)
        [opened, resolved] = t.sent(alerts)
        assert (opened.status, resolved.status) == (AlertStatus.OPEN, AlertStatus.RESOLVED)
        assert opened.alert_id == resolved.alert_id and opened.value == 31.0 and resolved.value == 25.0
        assert opened.severity == Severity.CRITICAL
        assert opened.labels == {"sensor": "s1", "metric": "temperature"}
        assert [m.key for m in t.messages(alerts)] == ["s1", "s1"]
        [(key, state)] = t.table("watch-alerts", ALERTS_TABLE).items()
        assert key == "hot:s1" and not state.open and state.alert_id == opened.alert_id


async def test_each_series_has_its_own_alert() -> None:
    app, samples, alerts, _ = _app(Rule("hot", Threshold(above=30)))
    async with TestApp(app) as t:
        for key in ["s1", "s2", "s3"]:
            await _send(t, samples, key, 50)
        await _send(t, samples, "s2", 10)
        assert sorted(_alerts(t, alerts)) == [
            ("hot", "s1", "OPEN"),
            ("hot", "s2", "OPEN"),
            ("hot", "s2", "RESOLVED"),
            ("hot", "s3", "OPEN"),
        ]


async def test_cooldown_keeps_a_flapping_series_to_one_alert_per_period() -> None:
    app, samples, alerts, _ = _app(Rule("hot", Threshold(above=30), cooldown=60))
    async with TestApp(app) as t:
        for _ in range(10):  # flaps every 5 s for 100 s
            await _send(t, samples, "s1", 50)
            await t.advance(5)
            await _send(t, samples, "s1", 10)
            await t.advance(5)
        statuses = [status for _, _, status in _alerts(t, alerts)]
        # Opens at 0 s, resolves at 5 s, quiet until 65 s, opens at 70 s, resolves at 75 s.
        assert statuses == ["OPEN", "RESOLVED", "OPEN", "RESOLVED"]
        [state] = t.table("watch-alerts", ALERTS_TABLE).values()
        assert state.suppressed == 8  # the firings at 10, 20, ..., 60 s and at 80 and 90 s


async def test_a_silent_series_is_alerted_once_by_the_ticker_and_resolved_when_it_returns() -> None:
    app, samples, alerts, _ = _app(Rule("silent", Absence(after=30), severity=Severity.CRITICAL))
    async with TestApp(app) as t:
        for second in range(0, 100, 5):
            await _send(t, samples, "alive", 1)
            if second < 20:
                await _send(t, samples, "quiet", 1)  # last record at 15 s
            await t.advance(5)
        assert _alerts(t, alerts) == [("silent", "quiet", "OPEN")]
        [opened] = t.sent(alerts)
        assert opened.labels == {"sensor": "quiet", "metric": "temperature"}
        assert "no record for" in opened.message and opened.severity == Severity.CRITICAL
        await _send(t, samples, "quiet", 1)
        assert _alerts(t, alerts) == [("silent", "quiet", "OPEN"), ("silent", "quiet", "RESOLVED")]


async def test_a_silence_that_outlasts_the_cooldown_is_alerted_when_the_cooldown_ends() -> None:
    app, samples, alerts, _ = _app(Rule("silent", Absence(after=10), cooldown=60))
    async with TestApp(app) as t:
        await _send(t, samples, "s1", 1)
        await t.advance(11)  # silent: opens
        await _send(t, samples, "s1", 1)  # back: resolves at 11 s
        for _ in range(14):
            await t.advance(5)  # silent from 11 s: reported at 22 s, 32 s, ... suppressed until 71 s
        assert [status for _, _, status in _alerts(t, alerts)] == ["OPEN", "RESOLVED", "OPEN"]
        [_, resolved, reopened] = t.sent(alerts)
        assert (reopened.fired_at - resolved.fired_at).total_seconds() >= 60


async def test_silence_is_judged_by_the_latest_record_once_the_backlog_is_handled() -> None:
    app, samples, alerts, _ = _app(Rule("silent", Absence(after=30)))
    async with TestApp(app) as t:
        await _send(t, samples, "s1", 1)
        await t.advance(29)
        assert t.sent(alerts) == []
        await t.advance(2)
        assert _alerts(t, alerts) == [("silent", "s1", "OPEN")]
    # A worker that starts on a backlog judges it once it has handled it, by its latest record: a
    # series whose last record is an hour old has been silent for an hour, and a live one has not.
    async with TestApp(app) as t:
        now = datetime.fromtimestamp(t.clock.now, UTC)
        sample = MetricSample(name="temperature", value=1, observed_at=now)
        await t.publish(samples, sample, key="s1", settle=False)
        await t.publish(samples, sample, key="s2", settle=False)
        t.clock.now += 3600
        await t.publish(samples, sample, key="s2", settle=False)
        await t.settle()
        assert _alerts(t, alerts) == [("silent", "s1", "OPEN")]


async def test_a_partition_with_records_still_to_handle_is_judged_by_its_stream_time() -> None:
    """A worker behind (a backlog after a restart, or load) knows a partition only up to its latest
    record handled: judged by the clock, every series in it would look silent."""
    app, samples, alerts, _ = _app(Rule("silent", Absence(after=30)), partitions=1)
    async with TestApp(app) as t:
        await _send(t, samples, "s1", 1)
        await _send(t, samples, "s2", 1)
        t.clock.now += 60  # no worker ran meanwhile: s1 sent one record, s2 none
        sample = MetricSample(name="temperature", value=1, observed_at=datetime.now(UTC))
        await t.publish(samples, sample, key="s1", settle=False)
        await t.settle()  # which ticks first, with s1's record not handled yet
        assert _alerts(t, alerts) == [("silent", "s2", "OPEN")]


async def test_a_sample_may_feed_several_rules_and_where_narrows_them() -> None:
    app, samples, alerts, monitor = _app(
        Rule("hot", Threshold(above=30), where=lambda s: s.name == "temperature"),
        Rule("jump", RateOfChange(max_per_second=5), where=lambda s: s.name == "temperature"),
        Rule("spike", ZScore(threshold=4, warmup=5)),
        Rule("outlier", MAD(threshold=5, size=10, warmup=5)),
    )
    assert set(monitor.tables) == {"thresholds", "rates", "ewma", "mad"}
    async with TestApp(app) as t:
        for value in [20, 20.5, 19.5, 20, 20.2, 19.8, 20.1]:
            await _send(t, samples, "s1", value)
            await t.advance(1)
        await _send(t, samples, "s1", 99, name="humidity")  # only spike and outlier see it
        await t.advance(1)
        await _send(t, samples, "s1", 40)  # hot, jump, spike and outlier
        # spike and outlier fire on 99 and stay open through 40; hot and jump open on 40.
        assert sorted(_alerts(t, alerts)) == [
            ("hot", "s1", "OPEN"),
            ("jump", "s1", "OPEN"),
            ("outlier", "s1", "OPEN"),
            ("spike", "s1", "OPEN"),
        ]


async def test_an_exactly_once_monitor_writes_alerts_and_state_in_one_transaction() -> None:
    app, samples, alerts, _ = _app(Rule("hot", Threshold(above=30)))
    assert all(isinstance(agent.guarantee, ExactlyOnce) for agent in app.agents.values())
    async with TestApp(app) as t:
        await _send(t, samples, "s1", 50)
        # Replaying the same detection changes nothing: the open alert is not sent again.
        [detection] = t.sent(app.topics["plant.watch.detections"])
        await t.publish(app.topics["plant.watch.detections"], detection, key="s1")
        assert _alerts(t, alerts) == [("hot", "s1", "OPEN")]


async def test_a_monitor_over_window_summaries_alerts_on_a_percentile() -> None:
    app = App("api")
    latencies = app.topic("api.latency", value=MetricSample, partitions=1)
    windows = app.topic("api.latency-10s", value=WindowSummary, partitions=1)
    alerts = app.topic("api.alerts", value=Alert, partitions=1)
    app.windowed(latencies, Tumbling(10), into=windows, name="p99", timestamp=lambda s: s.observed_at)(
        Summarize(key=lambda s: s.labels["route"])
    )
    Monitor(
        app,
        windows,
        alerts=alerts,
        rules=[Rule("slow", Threshold(above=0.5))],
        value=lambda w: quantile(w, 0.99),
        timestamp=lambda w: w.end,
    )
    async with TestApp(app) as t:
        for second in range(40):
            slow = 10 <= second < 20
            for i in range(50):
                value = 0.9 if slow and i == 0 else 0.05 + i / 1000  # 1 slow call in 50: 2 %
                sample = MetricSample(
                    name="latency",
                    value=value,
                    labels={"route": "/pay"},
                    observed_at=datetime.fromtimestamp(1_800_000_000 + second, UTC),
                )
                await t.publish(latencies, sample, key="/pay", settle=False)
        await t.settle()
        assert [(a.status.value, round(a.value or 0, 1)) for a in t.sent(alerts)] == [
            ("OPEN", 0.9),
            ("RESOLVED", 0.1),
        ]


def test_a_monitor_checks_its_declaration() -> None:
    app = App("m")
    alerts = app.topic("m.alerts", value=Alert)
    windows = app.topic("m.windows", value=WindowSummary)
    with pytest.raises(ConfigError, match="value="):
        Monitor(app, windows, alerts=alerts, rules=[Rule("r", Threshold(above=1))])
    samples = app.topic("m.samples", value=MetricSample)
    with pytest.raises(ConfigError, match="two rules named alike"):
        Monitor(app, samples, alerts=alerts, rules=[Rule("r", Threshold(above=1)), Rule("r", MAD())])
    with pytest.raises(ConfigError, match="at least one rule"):
        Monitor(app, samples, alerts=alerts, rules=[])
    other = App("other")
    with pytest.raises(ConfigError, match="not declared"):
        Monitor(other, samples, alerts=alerts, rules=[Rule("r", Threshold(above=1))])
