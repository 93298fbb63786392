"""agents/capability_routing.py on the real broker, under an app name of its own: of its two pools
the fast one takes most of the calls, and critical calls overtake the low ones made before them."""

from __future__ import annotations

import asyncio
import statistics

import pytest

from agents import capability_routing
from streams import Client, Settings
from streams.serde.registry import ConfluentRegistry
from streams.telemetry.config import TelemetryConfig
from tests.integration._agents import eventually, on_cluster, running, unique

pytestmark = pytest.mark.integration

OUTSTANDING = 60  # low calls kept in flight: each pool holds a queue of about 30


async def test_capability_routing_sends_most_calls_to_the_fast_pool_and_critical_ones_first(
    settings: Settings, registry: ConfluentRegistry
) -> None:
    app = on_cluster(capability_routing.build(unique("routing")), settings, registry)
    beats = TelemetryConfig(heartbeat_interval=0.3, lag_interval=0.3)  # routing follows the beats
    async with running(app, telemetry=beats), Client(app, registry=registry) as client:
        pools = app.specialists["translate"].pools.values()

        def beating() -> bool:
            source = app.routing.source
            loads = [None if source is None else source.load(pool.group_id) for pool in pools]
            return all(load is not None and load.live for load in loads)

        await eventually(beating, within=60, what="both pools to beat")
        report = await asyncio.wait_for(capability_routing.feed(client, 240, 4, OUTSTANDING), 60)
    print(capability_routing.summary(report))
    assert sum(report.served.values()) == 244
    assert report.served["gpu"] >= 2 * report.served["cpu"], "the pool 8x faster takes most calls"
    # Without priorities a critical call would wait behind its pool's queue of ~30 low calls (0.75 s on
    # gpu, while ~35 calls are answered in all); first in line, it is answered while most still wait.
    assert len(report.overtaken) == 4
    assert min(report.overtaken) >= OUTSTANDING * 0.6, report.overtaken
    assert statistics.median(report.seconds["critical"]) < statistics.median(report.seconds["low"])
