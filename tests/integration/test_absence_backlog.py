"""Silence after a restart, on the real broker: a detector that comes back to a backlog judges each
series by its latest record, not by the old records it is still working through.

While the monitor is stopped, series s1 keeps sending (a record every 0.1 s, timestamps spread over
the last BACKLOG_S seconds) and s2 stops halfway through. The monitor starts again, each record
slowed by SLOW_S so that the backlog takes several times ``after`` to handle, while s1 goes on live.
Expected: one `silent` alert, for s2, and no firing detection at all for s1 (judged by the clock
while the backlog is handled, s1's last record handled is always seconds old: silent).
"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from streams import App, Context, Publisher, Settings
from streams.events import Alert, Detection, MetricSample
from streams.middleware import CallNext, Middleware
from streams.monitoring import Absence, Monitor, Rule
from streams.serde.registry import ConfluentRegistry
from streams.tail import tail
from tests.integration._agents import eventually, on_cluster, running, unique

AFTER_S = 1.0
BACKLOG_S = 20.0
SLOW_S = 0.02  # per record: the backlog's 300 records take about 6 s, six times AFTER_S


class Slow(Middleware):
    """Handling that takes time, as a busy detector's does."""

    def __init__(self) -> None:
        self.on = False

    async def handle(self, ctx: Context, call_next: CallNext) -> None:
        if self.on:
            await asyncio.sleep(SLOW_S)
        await call_next()


def _app(name: str) -> tuple[App, Slow]:
    slow = Slow()
    app = App(name, middleware=[slow])
    samples = app.topic(f"{name}.samples", value=MetricSample, partitions=1)
    alerts = app.topic(f"{name}.alerts", value=Alert, partitions=1)
    Monitor(app, samples, alerts=alerts, name="watch", rules=[Rule("silent", Absence(after=AFTER_S))])
    return app, slow


def _sample(at: datetime) -> MetricSample:
    return MetricSample(name="temperature", value=20.0, observed_at=at)


class Live:
    """s1's records as they happen, every 0.1 s, until stopped."""

    def __init__(self, settings: Settings, registry: ConfluentRegistry, topic: str) -> None:
        self._args = (settings, registry, topic)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Live:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        settings, registry, topic = self._args
        with Publisher(settings, registry) as publisher:
            while not self._stop.wait(0.1):
                publisher.publish(topic, _sample(datetime.now(UTC)), key="s1")
                publisher.flush()


def _read(settings: Settings, registry: ConfluentRegistry, topic: str) -> list[tuple[str | None, dict]]:  # type: ignore[type-arg]
    found = tail(settings, registry, topic, from_beginning=True, idle_timeout=3)
    return [(m.key, m.value) for m in found if m.value is not None]


async def test_a_restarted_detector_judges_silence_only_once_it_has_caught_up(
    settings: Settings, registry: ConfluentRegistry
) -> None:
    name = unique("absence-backlog")
    app, slow = _app(name)
    on_cluster(app, settings, registry)
    samples = f"{name}.samples"
    # One record handled before the stop, older than the backlog that follows.
    first = datetime.now(UTC) - timedelta(seconds=2 * BACKLOG_S)
    with Publisher(settings, registry) as publisher:
        publisher.publish(samples, _sample(first), key="s1", timestamp=first)
    async with running(app) as runner:
        watch = next(w for w in runner.workers if w.agent.name == "watch")
        await eventually(lambda: watch.stats.processed >= 1, what="the first sample handled")

    # Stopped: the backlog builds up, s1 steady throughout, s2 quiet for its second half.
    now = datetime.now(UTC)
    with Publisher(settings, registry) as publisher:
        for tenth in range(int(BACKLOG_S * 10)):
            at = now - timedelta(seconds=BACKLOG_S - tenth / 10)
            publisher.publish(samples, _sample(at), key="s1", timestamp=at)
            if tenth < BACKLOG_S * 5:
                publisher.publish(samples, _sample(at), key="s2", timestamp=at)

    slow.on = True
    with Live(settings, registry, samples):
        async with running(app) as runner:
            watch = next(w for w in runner.workers if w.agent.name == "watch")
            await eventually(watch.assigned_partitions, what="the partition assigned")
            assigned_at = time.monotonic()
            while not await watch.caught_up_partitions():
                assert time.monotonic() < assigned_at + 90, "the backlog never handled"
                await asyncio.sleep(0.05)
            caught_up_after = time.monotonic() - assigned_at
            deadline = time.monotonic() + 60
            while not any(
                key == "s2" for key, _ in await asyncio.to_thread(_alerts, settings, registry, name)
            ):
                assert time.monotonic() < deadline, "no silent alert for s2"
            await asyncio.sleep(3 * AFTER_S)  # s1 live, judged meanwhile
        assert watch.stats.processed > BACKLOG_S * 15

    assert caught_up_after > 3 * AFTER_S, "the backlog must take longer than `after` to handle"
    alerts = _alerts(settings, registry, name)
    assert [(key, a["rule"], a["status"]) for key, a in alerts] == [("s2", "silent", "OPEN")]
    detections = [
        (key, Detection.model_validate(value))
        for key, value in _read(settings, registry, f"{name}.watch.detections")
    ]
    assert {key for key, d in detections if d.firing} == {"s2"}, detections


def _alerts(settings: Settings, registry: ConfluentRegistry, name: str) -> list[tuple[str | None, dict]]:  # type: ignore[type-arg]
    return _read(settings, registry, f"{name}.alerts")


pytestmark = pytest.mark.integration
