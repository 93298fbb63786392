"""The quantile sketch and windowed summaries: relative-error guarantee, exact merging, Avro round trip."""

from __future__ import annotations

import io
import math
import random
from datetime import timedelta

import fastavro
import pytest

from streams import App, ConfigError, Session, Tumbling, Window
from streams.events import MetricSample, WindowSummary
from streams.monitoring import Sketch, Summarize, combine, mean, quantile, rate, sum_rate
from streams.serde.schema import parse
from streams.testing import TestApp
from tests._records import EPOCH, observed

pytestmark = pytest.mark.unit

QUANTILES = [0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0]


def _exact(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[math.floor(q * (len(ordered) - 1))]


def _datasets() -> dict[str, list[float]]:
    rng = random.Random(12)
    return {
        "lognormal latencies": [rng.lognormvariate(3, 1.5) for _ in range(20_000)],
        "normal around 0 (both signs)": [rng.gauss(0, 50) for _ in range(20_000)],
        "heavy tail": [rng.paretovariate(1.1) for _ in range(20_000)],
        "with zeros": [0.0] * 300 + [rng.uniform(-1, 1e6) for _ in range(5_000)],
    }


@pytest.mark.parametrize("accuracy", [0.01, 0.05])
@pytest.mark.parametrize("name", list(_datasets()))
def test_every_quantile_is_within_the_relative_accuracy(name: str, accuracy: float) -> None:
    values = _datasets()[name]
    sketch = Sketch(accuracy).extend(values)
    assert sketch.count == len(values)
    for q in QUANTILES:
        exact = _exact(values, q)
        found = sketch.quantile(q)
        assert found is not None
        assert abs(found - exact) <= accuracy * abs(exact) + 1e-12, (q, found, exact)


def test_a_uniform_sketch_would_fail_the_accuracy_check() -> None:
    """The check above can fail: a sketch 10x coarser than claimed misses the 1 % bound."""
    values = _datasets()["lognormal latencies"]
    coarse = Sketch(0.1).extend(values)
    misses = [q for q in QUANTILES if abs(coarse.quantile(q) - _exact(values, q)) > 0.01 * _exact(values, q)]  # type: ignore[operator]
    assert misses


def test_merging_sketches_equals_sketching_the_union() -> None:
    rng = random.Random(3)
    parts = [[rng.expovariate(0.1) - 5 for _ in range(1_000)] for _ in range(7)]
    merged = Sketch()
    for part in parts:
        merged.merge(Sketch().extend(part))
    union = Sketch().extend(v for part in parts for v in part)
    assert merged == union
    assert merged.quantile(0.5) == union.quantile(0.5)
    with pytest.raises(ValueError, match="cannot merge"):
        Sketch(0.01).merge(Sketch(0.02))


def test_max_bins_bounds_memory_and_keeps_the_upper_quantiles() -> None:
    values = [10.0**e for e in range(-8, 9) for _ in range(10)]  # 17 decades
    sketch = Sketch(0.01, max_bins=100).extend(values)
    record = sketch.to_record()
    assert len(record.positive.indices) <= 100
    assert sketch.count == len(values)
    assert sketch.quantile(1.0) == pytest.approx(1e8, rel=0.01)
    assert sketch.quantile(0.9) == pytest.approx(_exact(values, 0.9), rel=0.01)


def test_a_sketch_round_trips_through_avro_inside_a_window_summary() -> None:
    sketch = Sketch(0.02).extend([-3.5, 0.0, 1e-12, 2.0, 2.0, 1e6])
    summary = WindowSummary(key="k", start=EPOCH, end=EPOCH, count=6, sketch=sketch.to_record())
    schema = parse(WindowSummary.avro_schema())
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, schema, summary.to_avro())
    buffer.seek(0)
    back = WindowSummary.from_avro(fastavro.schemaless_reader(buffer, schema))
    assert back.sketch is not None
    assert Sketch.from_record(back.sketch) == sketch
    assert Sketch.from_record(back.sketch).quantile(0.0) == pytest.approx(-3.5, rel=0.02)
    assert Sketch.from_record(back.sketch).quantile(0.5) == 0.0  # 0.0 and 1e-12 count as zero


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ConfigError, match="relative_accuracy"):
        Sketch(1.5)
    with pytest.raises(ValueError, match="finite"):
        Sketch().add(math.nan)
    with pytest.raises(ValueError, match="q must lie"):
        Sketch().quantile(1.5)
    assert Sketch().quantile(0.5) is None


def _window_app(window: Tumbling | Session) -> tuple[App, object, object]:
    app = App("agg")
    samples = app.topic("agg.samples", value=MetricSample, partitions=1)
    summaries = app.topic("agg.summaries", value=WindowSummary, partitions=1)
    summarize = Summarize(relative_accuracy=0.01)
    app.windowed(
        samples,
        window,
        into=summaries,
        name="summaries",
        timestamp=lambda s: s.observed_at,
        merge=summarize.merge if isinstance(window, Session) else None,
    )(summarize)
    return app, samples, summaries


async def test_tumbling_summaries_give_count_sum_mean_extremes_rate_and_quantiles() -> None:
    app, samples, summaries = _window_app(Tumbling(size=10))
    latencies = [float(v) for v in range(1, 101)]  # 100 values in the first 10 s
    async with TestApp(app) as t:
        for i, v in enumerate(latencies):
            await t.publish(samples, observed("latency", v, i / 10), key="api", settle=False)
        await t.publish(samples, observed("latency", 1.0, 10.0), key="api")  # closes [0, 10)
        [summary] = t.sent(summaries)  # type: ignore[arg-type]
    assert (summary.key, summary.count, summary.sum, summary.min, summary.max) == (
        "latency",
        100,
        5050.0,
        1,
        100,
    )
    assert summary.end - summary.start == timedelta(seconds=10)
    assert mean(summary) == 50.5
    assert rate(summary) == 10.0
    assert sum_rate(summary) == 505.0
    assert quantile(summary, 0.5) == pytest.approx(50, rel=0.01)
    assert quantile(summary, 0.99) == pytest.approx(99, rel=0.01)
    assert quantile(summary, 1.0) == 100.0  # clamped to the exact max


async def test_session_summaries_merge_when_a_record_bridges_two_sessions() -> None:
    app, samples, summaries = _window_app(Session(gap=5, grace=10))
    async with TestApp(app) as t:
        for value, second in [(1.0, 0), (2.0, 8), (3.0, 4), (4.0, 100)]:  # 4 s joins the first two
            await t.publish(samples, observed("m", value, second), key="k")
        first = t.sent(summaries)[0]  # type: ignore[arg-type]
    assert (first.count, first.sum, first.min, first.max) == (3, 6.0, 1.0, 3.0)
    assert quantile(first, 0.5) == pytest.approx(2.0, rel=0.01)


def test_combining_minutes_into_an_hour_is_exact() -> None:
    rng = random.Random(5)
    minutes = []
    everything: list[float] = []
    summarize = Summarize()
    for m in range(60):
        window = Window(m * 60_000, (m + 1) * 60_000)
        current = None
        for _ in range(50):
            value = rng.gauss(100, 15)
            everything.append(value)
            current = summarize(window, current, MetricSample(name="m", value=value, observed_at=EPOCH))
        minutes.append(current)
    hour = combine([m for m in minutes if m is not None], Window(0, 3_600_000))
    assert hour is not None
    assert hour.count == 3000
    assert hour.sum == pytest.approx(sum(everything))
    assert (hour.min, hour.max) == (min(everything), max(everything))
    assert quantile(hour, 0.99) == pytest.approx(_exact(everything, 0.99), rel=0.01)
    assert combine([], Window(0, 1)) is None
