"""Auto-scaling signals without a broker: the rule, the rates it is fed, the workers' gauge and the
group view of `streams lag --recommend`."""

from __future__ import annotations

from dataclasses import replace

import pytest
from prometheus_client import CollectorRegistry

from streams.errors import ConfigError
from streams.telemetry.lag import Progress, recommend
from streams.telemetry.metrics import WorkerCollector
from streams.telemetry.probe import WorkerProbe, WorkerSnapshot
from streams.telemetry.scaling import RateMeter, Rates, recommended_workers
from streams.worker.stats import WorkerStats
from tests.unit.test_metrics import _snapshot as worker_snapshot

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("incoming", "per_worker", "lag", "partitions", "expected"),
    [
        (100.0, 100.0, 0, 12, 1),  # one worker keeps up exactly
        (103.0, 100.0, 300, 12, 1),  # 1.08 workers: within the 0.1 tolerance: measurement noise, not a need
        (250.0, 100.0, 0, 12, 3),  # ceil(2.5)
        (100.0, 100.0, 6000, 12, 2),  # keeping up, plus 6000 to clear in 60 s: 200 msg/s
        (100.0, 10.0, 60_000, 12, 12),  # far behind: as many as there are partitions, no more
        (0.0, 0.0, 0, 6, 1),  # idle: one worker stays
        (0.0, 50.0, 0, 6, 1),
    ],
)
def test_the_rule_sizes_for_the_arrivals_plus_the_backlog_within_bounds(
    incoming: float, per_worker: float, lag: int, partitions: int, expected: int
) -> None:
    assert (
        recommended_workers(incoming=incoming, per_worker=per_worker, lag=lag, partitions=partitions)
        == expected
    )


def test_the_drain_target_and_an_unknown_pace() -> None:
    assert recommended_workers(incoming=0, per_worker=10, lag=300, partitions=8, drain_within=10) == 3
    assert recommended_workers(incoming=0, per_worker=10, lag=300, partitions=8, drain_within=60) == 1
    assert recommended_workers(incoming=5, per_worker=0, lag=300, partitions=8) is None, "nothing handled yet"
    with pytest.raises(ConfigError, match="drain_within must be positive"):
        recommended_workers(incoming=1, per_worker=1, lag=0, partitions=1, drain_within=0)


def test_the_meter_takes_rates_from_what_was_handled_and_how_far_the_ends_moved() -> None:
    meter = RateMeter(window=10, min_span=1)
    assert meter.observe("a", at=0.0, handled=0, end=100) is None
    assert meter.observe("a", at=0.5, handled=10, end=100) is None, "not a second yet"
    assert meter.observe("a", at=2.0, handled=40, end=160) == Rates(incoming=30.0, handled=20.0)
    assert meter.observe("b", at=2.0, handled=5, end=0) is None, "each key on its own"
    # Older observations fall out of the window: rates are over the last ~10 s, not since the start.
    for second in range(3, 30):
        rates = meter.observe("a", at=float(second), handled=40 + 50 * (second - 2), end=160)
    assert rates == Rates(incoming=0.0, handled=50.0)
    # Ends of other partitions (a rebalance, an end newly reported): measured afresh.
    assert meter.observe("a", at=29.5, handled=1390, end=900, basis=("in", 3)) is None
    assert meter.observe("a", at=30.5, handled=1440, end=950, basis=("in", 3)) == Rates(50.0, 50.0)
    # A restarted worker's totals start again: no negative rate.
    assert meter.observe("a", at=31.5, handled=3, end=950, basis=("in", 3)) == Rates(
        incoming=25.0, handled=0.0
    )


def _snapshot(at_total: int, lag: int, end: int, assigned: int = 2, partitions: int = 6) -> WorkerSnapshot:
    return worker_snapshot(
        "a",
        assigned=tuple(("in", p) for p in range(assigned)),
        lag={("in", 0): lag} if assigned else {},
        stats=WorkerStats(processed=at_total - 5, dead_lettered=5),
        partitions=partitions,
        ends={("in", p): end // assigned for p in range(assigned)},
    )


class StubProbe(WorkerProbe):
    def __init__(self) -> None:
        super().__init__([], {})
        self.answer: list[WorkerSnapshot] = []

    def snapshots(self, timeout: float = 5.0) -> list[WorkerSnapshot]:
        return self.answer


def test_the_workers_gauge_extrapolates_its_partitions_to_the_topic() -> None:
    now = [0.0]
    probe = StubProbe()
    registry = CollectorRegistry()
    registry.register(WorkerCollector(probe, drain_within=10, clock=lambda: now[0]))

    def gauge() -> float | None:
        return registry.get_sample_value("streams_recommended_workers", {"agent": "a"})

    probe.answer = [_snapshot(at_total=100, lag=0, end=100)]
    assert gauge() is None, "one reading gives no rate"
    now[0] = 2.0
    # 2 of 6 partitions: 40 msg/s handled (dead letters count), 30 msg/s arriving, 40 waiting there.
    # For the topic: (90 + 120 / 10) / 40 = 2.55 workers.
    probe.answer = [_snapshot(at_total=180, lag=40, end=160)]
    assert gauge() == 3
    now[0] = 4.0  # a burst: 1,000 more arrived there; (3 * 1060 / 4 + 3 * 1000 / 10) / 20 = 54.75
    probe.answer = [_snapshot(at_total=180, lag=1000, end=1160)]
    assert gauge() == 6, "no more than the topic's partitions"
    now[0] = 40.0  # the lag cleared, arrivals as fast as it handles: its share needs what runs now
    probe.answer = [_snapshot(at_total=3780, lag=0, end=4760)]
    now[0] = 50.0
    probe.answer = [_snapshot(at_total=4780, lag=0, end=5760)]
    assert gauge() == 3
    probe.answer = [replace(_snapshot(at_total=4800, lag=0, end=5760), assigned=())]
    now[0] = 52.0
    assert gauge() is None, "a worker without partitions speaks for none"


def test_a_group_recommendation_shares_its_rate_among_its_members() -> None:
    before, after = Progress(0.0, 1000, 5000, 4), Progress(2.0, 1100, 5400, 4)
    rates, workers = recommend(before, after, lag=3900, members=1, drain_within=60)
    # 200 msg/s arrive, 50 msg/s handled by one member, 3900 to clear in 60 s: (200 + 65) / 50 -> 6 > 4
    assert rates == Rates(incoming=200.0, handled=50.0) and workers == 4
    assert recommend(before, after, lag=0, members=2, drain_within=60)[1] == 4, "each member 25 msg/s"
    assert recommend(before, replace(after, position=1000), lag=3900, members=0, drain_within=60)[1] is None
