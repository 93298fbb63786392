"""agents/monitoring.py on the in-memory twin: the scenario's three anomalies give exactly six alerts."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agents.monitoring import Scenario, build, readings, sample
from streams.events import AlertStatus
from streams.testing import TestApp

pytestmark = pytest.mark.unit


async def test_the_scenario_raises_and_resolves_one_alert_per_anomaly() -> None:
    app = build("sensors-test")
    alerts = app.topics["sensors-test.alerts"]
    async with TestApp(app) as t:
        start = t.clock.now
        for reading in readings(Scenario()):
            t.clock.now = start + reading.second
            at = datetime.fromtimestamp(t.clock.now, UTC)
            await t.publish(app.topics["sensors-test.samples"], sample(reading, at), key=reading.sensor)
        got = {}
        for alert in t.sent(alerts):
            got.setdefault((alert.rule, alert.labels["sensor"]), []).append(
                (alert.status, round((alert.fired_at.timestamp() - start), 2))
            )
        assert set(got) == {("spike", "s1"), ("overheat", "s2"), ("silent", "s3")}
        assert got[("spike", "s1")] == [(AlertStatus.OPEN, 6.0), (AlertStatus.RESOLVED, 6.25)]
        # The 2 s mean of s2 passes 25 °C in the window ending at 16 s and drops below after 24 s.
        assert got[("overheat", "s2")] == [(AlertStatus.OPEN, 16.0), (AlertStatus.RESOLVED, 24.0)]
        # s3's last reading before the silence is at 9.75 s; the ticker sees 3 s pass at 13 s.
        assert got[("silent", "s3")] == [(AlertStatus.OPEN, 13.0), (AlertStatus.RESOLVED, 20.0)]
        assert all(t.dead_letters(agent) == [] for agent in app.agents)


README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


async def test_the_readme_monitoring_example_alerts_like_the_agents_module() -> None:
    code = README.split("## Monitoring pipelines", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    example: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), example)  # our own README's example, run as written
    app = example["app"]
    assert set(app.agents) == set(build().agents)
    async with TestApp(app) as t:
        start = t.clock.now
        for reading in readings(Scenario()):
            t.clock.now = start + reading.second
            at = datetime.fromtimestamp(t.clock.now, UTC)
            await t.publish(example["samples"], sample(reading, at), key=reading.sensor)
        got = sorted((a.rule, a.labels["sensor"], a.status.value) for a in t.sent(example["alerts"]))
    assert got == [
        ("overheat", "s2", "OPEN"),
        ("overheat", "s2", "RESOLVED"),
        ("silent", "s3", "OPEN"),
        ("silent", "s3", "RESOLVED"),
        ("spike", "s1", "OPEN"),
        ("spike", "s1", "RESOLVED"),
    ]
