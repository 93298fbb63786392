"""Sensor monitoring: a synthetic temperature stream with injected anomalies, and the pipeline that
catches them and raises (and resolves) alerts.

    python -m agents.monitoring                 # run the pipeline, play the scenario, print the alerts

or, to watch it as a user would, in two terminals::

    streams run agents.monitoring:app           # the detector, window and alert agents
    python -m agents.monitoring --publish-only  # play the scenario once
    streams tail sensors.alerts --from-beginning

Three sensors send a reading every quarter second (``MetricSample``, key: the sensor). The scenario
(:func:`readings`, 30 s, seeded) injects three anomalies:

- ``s1`` spikes to 45 °C once at 6 s: the ``spike`` rule (an EWMA z-score on each reading) opens an
  alert and resolves it with the next normal reading;
- ``s2`` drifts from 21 °C to 28 °C and back between 8 s and 26 s, too slowly for the z-score (its
  baseline follows), but the ``overheat`` rule on its 2-second mean (a window summary) catches it;
- ``s3`` stops sending between 10 s and 20 s: the ``silent`` rule (no reading for 3 s) opens an alert
  from the detector's ticker and resolves it when the readings come back.

Alerts go to ``sensors.alerts``. Every step keeps its state in tables and runs exactly-once, so
killing the worker at any point and starting it again changes no alert.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from streams import App, ExactlyOnce, Publisher, Topic, Tumbling
from streams.events import Alert, MetricSample, Severity, WindowSummary
from streams.monitoring import Absence, Monitor, Rule, Summarize, Threshold, ZScore, mean
from streams.runner import AgentRunner
from streams.serde.registry import ConfluentRegistry
from streams.tail import tail

HZ = 4  # readings per sensor per second
SENSORS = ("s1", "s2", "s3")
DURATION = 30.0


@dataclass(frozen=True)
class Scenario:
    """When each anomaly happens, in seconds from the start."""

    duration: float = DURATION
    spikes: tuple[float, ...] = (6.0,)  # s1
    drift: tuple[float, float, float] = (8.0, 20.0, 26.0)  # s2: starts, peaks, is back
    silence: tuple[float, float] = (10.0, 20.0)  # s3


@dataclass(frozen=True)
class Reading:
    second: float
    sensor: str
    value: float


def readings(scenario: Scenario = Scenario(), seed: int = 7) -> Iterator[Reading]:
    """The scenario's readings in time order: 21 °C with 0.3 °C of noise, plus the anomalies."""
    rng = random.Random(seed)
    start, peak, end = scenario.drift
    for tick in range(math.ceil(scenario.duration * HZ)):
        second = tick / HZ
        for sensor in SENSORS:
            value = rng.gauss(21.0, 0.3)
            if sensor == "s1" and any(abs(second - at) < 1e-9 for at in scenario.spikes):
                value = 45.0
            if sensor == "s2" and start <= second < end:
                rise = (second - start) / (peak - start) if second < peak else (end - second) / (end - peak)
                value += 7.0 * rise
            if sensor == "s3" and scenario.silence[0] <= second < scenario.silence[1]:
                continue
            yield Reading(second, sensor, value)


def sample(reading: Reading, at: datetime) -> MetricSample:
    return MetricSample(
        name="temperature", value=reading.value, labels={"sensor": reading.sensor}, observed_at=at
    )


def build(name: str = "sensors", silent_after: float = 3.0) -> App:
    """The pipeline as app ``name`` (tests run it under names of their own)."""
    app = App(name)
    samples = app.topic(f"{name}.samples", value=MetricSample, partitions=3)
    means = app.topic(f"{name}.means-2s", value=WindowSummary, partitions=3)
    alerts = app.topic(f"{name}.alerts", value=Alert, partitions=3)
    Monitor(
        app,
        samples,
        alerts=alerts,
        name="watch",
        rules=[
            Rule("spike", ZScore(threshold=5, min_std=0.5), severity=Severity.WARNING),
            Rule("silent", Absence(after=silent_after), severity=Severity.CRITICAL),
        ],
    )
    app.windowed(
        samples,
        Tumbling(size=2),
        into=means,
        name="means",
        timestamp=lambda s: s.observed_at,
        guarantee=ExactlyOnce(),
    )(Summarize(key=lambda s: s.labels["sensor"]))
    Monitor(
        app,
        means,
        alerts=alerts,
        name="trend",
        rules=[Rule("overheat", Threshold(above=25.0), severity=Severity.CRITICAL)],
        value=mean,
        timestamp=lambda w: w.end,
        labels=lambda w: {"sensor": w.key, "metric": "temperature, 2 s mean"},
    )
    return app


app = build()


def topic(app: App, suffix: str) -> Topic[object]:
    return app.topics[f"{app.name}.{suffix}"]


def play(app: App, scenario: Scenario = Scenario(), say: Callable[[str], None] | None = None) -> None:
    """Publish the scenario's readings in real time, stamped with the time they are sent."""
    samples = topic(app, "samples")
    notes = {
        scenario.spikes[0]: "s1 spikes",
        scenario.drift[0]: "s2 starts drifting up",
        scenario.drift[2]: "s2 is back",
        scenario.silence[0]: "s3 goes silent",
        scenario.silence[1]: "s3 is back",
    }
    started = time.monotonic()
    with Publisher(app.settings) as publisher:
        for reading in readings(scenario):
            delay = started + reading.second - time.monotonic()
            if delay > 0:
                publisher.flush()
                time.sleep(delay)
            note = notes.pop(reading.second, None)
            if note and say:
                say(f"{reading.second:5.1f} s  {note}")
            publisher.publish(samples, sample(reading, datetime.now(UTC)), key=reading.sensor)


def alerts_so_far(app: App, since: datetime) -> list[Alert]:
    """The alerts on the app's alert topic fired since ``since``, as a read_committed consumer sees them."""
    registry = ConfluentRegistry(app.settings.registry_config())
    try:
        found = tail(app.settings, registry, topic(app, "alerts").name, from_beginning=True, idle_timeout=3)
        alerts = [Alert.model_validate(message.value) for message in found if message.value is not None]
        return [alert for alert in alerts if alert.fired_at >= since]
    finally:
        registry.close()


async def _main(publish_only: bool) -> None:
    if publish_only:
        await asyncio.to_thread(play, app, Scenario(), print)
        return
    stop = asyncio.Event()
    runner = AgentRunner(app)
    workers = asyncio.create_task(runner.run(stop))
    print(f"starting the agents {', '.join(app.agents)}", flush=True)
    while not all(worker.assigned_partitions() for worker in runner.workers):
        if workers.done():
            await workers  # it failed: say why
        await asyncio.sleep(0.2)
    started = datetime.now(UTC)
    await asyncio.to_thread(play, app, Scenario(), lambda line: print(line, flush=True))
    # Less than the silence the "silent" rule waits for: from now on every sensor is silent.
    await asyncio.sleep(1.5)
    for alert in await asyncio.to_thread(alerts_so_far, app, started):
        when = alert.fired_at.strftime("%H:%M:%S.%f")[:-3]
        print(f"{when} {alert.status.value:8} {alert.severity.value:8} {alert.rule:8} {alert.message}")
    stop.set()
    await workers


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--publish-only", action="store_true", help="play the scenario; run no agents")
    asyncio.run(_main(parser.parse_args().publish_only))
