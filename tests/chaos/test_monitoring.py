"""The monitoring example on the real broker: anomalies injected at known times give exactly the
expected alerts, each opened once and resolved once, with and without a kill -9 of the worker.

tests/chaos/monitor_app.py runs agents/monitoring.py's pipeline (detector, window, alert agents, all
exactly-once) in a `streams run` process. The test plays the scenario in real time: s1 spikes twice,
s2 drifts up and back (caught by the 2-second mean), s3 falls silent for 30 s (caught by the
detector's ticker). In the chaos case the worker is killed with -9 at 13 s, before s3's silence has
lasted long enough to alert, and started again at once: the restarted worker must restore every
detector and window from the changelogs, find the silence itself, and repeat no alert. Readings go on
after the scenario until the worker has been stopped, so the end of the test is not a silence.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agents.monitoring import SENSORS, Reading, Scenario, readings, sample
from streams import Publisher, Settings, Topic
from streams.events import Alert, AlertStatus, MetricSample
from streams.serde.registry import ConfluentRegistry
from tests.chaos._harness import CommittedReader, Pipeline

SILENT_AFTER = 5.0
SCENARIO = Scenario(duration=46.0, spikes=(6.0, 43.0), drift=(8.0, 20.0, 26.0), silence=(10.0, 40.0))
KILL_AT = 13.0
AGENTS = ("watch", "watch-alerts", "means", "trend", "trend-alerts")
EXPECTED = {
    ("spike", "s1"): ["OPEN", "RESOLVED", "OPEN", "RESOLVED"],
    ("overheat", "s2"): ["OPEN", "RESOLVED"],
    ("silent", "s3"): ["OPEN", "RESOLVED"],
}


class Player:
    """Publishes the scenario in real time, then normal readings of every sensor until stopped;
    remembers when each reading was sent (its event time)."""

    def __init__(self, settings: Settings, registry: ConfluentRegistry, topic: Topic[MetricSample]) -> None:
        self._settings = settings
        self._registry = registry
        self._topic = topic
        self.stop = threading.Event()
        self.sent_at: dict[tuple[float, str], datetime] = {}
        self.started = 0.0
        self._thread = threading.Thread(target=self._play, daemon=True)

    def start(self) -> None:
        self.started = time.monotonic()
        self._thread.start()

    def join(self) -> None:
        self.stop.set()
        if self._thread.ident is not None:
            self._thread.join(30)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def _play(self) -> None:
        with Publisher(self._settings, self._registry) as publisher:
            for reading in self._readings():
                delay = self.started + reading.second - time.monotonic()
                if delay > 0:
                    publisher.flush()
                    if self.stop.wait(delay):
                        return
                at = datetime.now(UTC)
                self.sent_at[(reading.second, reading.sensor)] = at
                publisher.publish(self._topic, sample(reading, at), key=reading.sensor)

    def _readings(self) -> list[Reading]:
        after = [
            Reading(SCENARIO.duration + tick / 4, sensor, 21.0)
            for tick in range(4 * 120)
            for sensor in SENSORS
        ]
        return [*readings(SCENARIO), *after]


@pytest.mark.parametrize(
    "kill", [pytest.param(False, marks=pytest.mark.integration), pytest.param(True, marks=pytest.mark.chaos)]
)
def test_injected_anomalies_give_exactly_the_expected_alerts(
    settings: Settings, registry: ConfluentRegistry, tmp_path: Path, kill: bool
) -> None:
    prefix = f"chaos.{uuid.uuid4().hex[:8]}"
    name = prefix.replace(".", "-")
    pipeline = Pipeline(
        settings,
        registry,
        prefix,
        tmp_path,
        app_ref="tests.chaos.monitor_app:app",
        agents=AGENTS,
        extra_env={"CHAOS_SILENT_AFTER": str(SILENT_AFTER)},
    )
    samples = Topic(f"{name}.samples", value=MetricSample, partitions=3)
    player = Player(settings, registry, samples)
    reader: CommittedReader | None = None
    try:
        first = pipeline.start_worker()
        pipeline.wait_until_assigned(first)  # it has created the topics, too
        reader = CommittedReader(settings, registry, f"{name}.alerts", value=Alert)
        player.start()
        if kill:
            while player.elapsed() < KILL_AT:
                reader.drain(0.2)
            pipeline.kill_9(first)
            pipeline.start_worker()
        wanted = sum(len(statuses) for statuses in EXPECTED.values())
        deadline = time.monotonic() + 180
        while reader.count < wanted or player.elapsed() < SCENARIO.duration + 2:
            reader.drain(0.5)
            assert time.monotonic() < deadline, f"only {reader.count} alerts:\n{pipeline.logs()}"
        reader.drain(3.0)  # an alert sent twice, or a false one, would show up now
        codes = pipeline.stop_all()  # SIGTERM while readings still flow: no silence at the end
        reader.drain(2.0)
    finally:
        player.join()
        pipeline.stop_all()
        if reader is not None:
            reader.close()
    alerts: list[Alert] = [a for a in reader.values if isinstance(a, Alert)]
    print("\n".join(f"{a.status.value:8} {a.rule:8} {a.message}" for a in alerts))
    assert codes == ([-9, 0] if kill else [0]), pipeline.logs()
    repeated = [k for k, n in Counter((a.alert_id, a.status) for a in alerts).items() if n > 1]
    assert not repeated, f"alerts sent more than once: {repeated}"
    got: dict[tuple[str, str], list[str]] = {}
    for alert in alerts:
        got.setdefault((alert.rule, alert.labels["sensor"]), []).append(alert.status.value)
    assert got == EXPECTED
    by_rule = {key: [a for a in alerts if (a.rule, a.labels["sensor"]) == key] for key in EXPECTED}
    # Each OPEN is resolved by the next event of its series, under the same id.
    for series in by_rule.values():
        for opened, resolved in zip(series[::2], series[1::2], strict=True):
            assert opened.alert_id == resolved.alert_id
            assert opened.status is AlertStatus.OPEN and resolved.status is AlertStatus.RESOLVED
    # The known event times: the spikes, the reading after each, and s3's return.
    spikes = by_rule[("spike", "s1")]
    for i, second in enumerate(SCENARIO.spikes):
        assert spikes[2 * i].value == 45.0
        assert _same_ms(spikes[2 * i].fired_at, player.sent_at[(second, "s1")])
        assert _same_ms(spikes[2 * i + 1].fired_at, player.sent_at[(second + 0.25, "s1")])
    silent = by_rule[("silent", "s3")]
    quiet_from = player.sent_at[(SCENARIO.silence[0] - 0.25, "s3")]
    assert (silent[0].fired_at - quiet_from).total_seconds() > SILENT_AFTER
    # Resolved by s3's first reading after the silence (its Kafka timestamp, set as it was sent).
    assert abs((silent[1].fired_at - player.sent_at[(SCENARIO.silence[1], "s3")]).total_seconds()) < 0.5
    overheat = by_rule[("overheat", "s2")]
    drift_start, _, drift_end = (player.sent_at[(s, "s2")] for s in SCENARIO.drift)
    assert drift_start < overheat[0].fired_at < overheat[1].fired_at < drift_end
    assert "dead-lettering" not in pipeline.logs()


def _same_ms(kept: datetime, sent: datetime) -> bool:
    """Whether ``kept`` is ``sent`` as Avro's timestamp-millis keeps it (to the millisecond)."""
    return abs((kept - sent).total_seconds()) <= 0.002
