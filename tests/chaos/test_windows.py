"""A windowed count under kill -9 and rebalances, on the real broker: exact, and each window once.

tests/chaos/window_app.py counts samples per key in 10-second tumbling windows of event time, with
exactly-once. Samples arrive up to 3 s out of order (grace is 5 s), spread over 6 partitions; worker
processes are killed with -9 three times and the group grows from 1 to 3 workers and shrinks back to 1.
Every window's final result must arrive once, with exactly the count computed from the input.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from streams import Publisher, Settings, Topic
from streams.admin import TopicAdmin
from streams.events import MetricSample, WindowSummary
from streams.serde.registry import ConfluentRegistry
from streams.telemetry.lag import LagReader
from tests._records import EPOCH, observed
from tests.chaos._harness import CommittedReader, Pipeline

pytestmark = pytest.mark.chaos

SOAK = os.environ.get("STREAMS_SOAK") == "1"
KEYS = 1000
PER_KEY = 100 if SOAK else 20  # 100,000 samples over 100 s of event time; 20,000 over 20 s in CI
DEADLINE = float(os.environ.get("CHAOS_DEADLINE", "1500"))
WINDOW_S = 10
DISORDER_S = 3.0


def _samples() -> list[tuple[str, float]]:
    """(key, event second) of every sample, in the order they are published: by event time, but up
    to DISORDER_S out of order."""
    rng = random.Random(7)
    events = [(f"key-{k}", i + (k % 10) / 20) for k in range(KEYS) for i in range(PER_KEY)]
    events.sort(key=lambda event: event[1] + rng.uniform(0, DISORDER_S))
    return events


@pytest.mark.parametrize("store", ["memory", "rocksdb"])
def test_a_windowed_count_is_exact_and_emitted_once_through_kills_and_rebalances(
    settings: Settings, registry: ConfluentRegistry, tmp_path: Path, store: str
) -> None:
    pipeline = Pipeline.create(
        settings,
        registry,
        tmp_path,
        app_ref="tests.chaos.window_app:app",
        agents=("count",),
        # Workers share one state directory, as processes on one host do: each owns its partitions'.
        extra_env={
            "CHAOS_REDUCE_SLEEP": "0.002",
            "CHAOS_TABLE_STORE": store,
            "STREAMS_STATE_DIR": str(tmp_path / "state"),
        },
    )
    samples = Topic(f"{pipeline.prefix}.samples", value=MetricSample, partitions=6)
    windows = Topic(f"{pipeline.prefix}.windows", value=WindowSummary, partitions=6)
    TopicAdmin(settings, registry).apply([samples, windows])
    events = _samples()
    with Publisher(settings, registry) as publisher:
        for key, second in events:
            publisher.publish(samples, observed(key, 1.0, second), key=key)
        # One far-later sample per key moves every partition's stream time past all windows above.
        for k in range(KEYS):
            publisher.publish(samples, observed(f"key-{k}", 1.0, 100_000), key=f"key-{k}")
    total = len(events) + KEYS
    expected = Counter((key, int(second // WINDOW_S) * WINDOW_S) for key, second in events)

    reader = CommittedReader(settings, registry, windows.name, value=WindowSummary)
    lag = LagReader(settings)
    group = f"{pipeline.prefix.replace('.', '-')}.count"
    started = time.monotonic()
    committed_at: list[int] = []

    def committed() -> int:
        return sum(row.committed or 0 for row in lag.lag({group: [samples.name]}))

    def wait(done: Callable[[], bool], what: str) -> None:
        while not done():
            reader.drain(0.2)
            dead = [w for w in pipeline.workers if w.poll() not in (None, 0, -9)]
            assert not dead, f"a worker exited with {dead[0].returncode}:\n{pipeline.logs()}"
            assert time.monotonic() - started < DEADLINE, f"stuck waiting for {what}:\n{pipeline.logs()}"

    def at(fraction: float) -> None:
        # And past the previous step, so each set of workers makes progress before the next change,
        # but never so near the end that the step could come after the last sample.
        target = min(
            max(fraction * total, (committed_at[-1] if committed_at else 0) + total // 20), 0.85 * total
        )
        wait(lambda: committed() >= target, f"{target:.0f} of the input committed")
        committed_at.append(committed())

    try:
        first = pipeline.start_worker()
        at(0.15)
        pipeline.kill_9(first)  # kill 1
        second = pipeline.start_worker()
        at(0.30)
        third, fourth = pipeline.start_worker(), pipeline.start_worker()  # 1 -> 3 workers
        at(0.45)
        pipeline.kill_9(third)  # kill 2
        at(0.60)
        assert pipeline.sigterm(fourth) == 0, pipeline.logs()  # back to 1 worker
        at(0.75)
        pipeline.kill_9(second)  # kill 3
        pipeline.start_worker()
        wait(lambda: reader.count >= len(expected), f"{len(expected)} window results")
        reader.drain(5.0)  # a result sent twice would show up now
    finally:
        codes = pipeline.stop_all()
        reader.close()
    assert codes.count(-9) == 3, codes
    assert all(c < total for c in committed_at), f"every step must land mid-run: {committed_at} of {total}"
    got = Counter((s.key, int((s.start - EPOCH) / timedelta(seconds=1))) for s in reader.values)
    repeated = {window: n for window, n in got.items() if n > 1}
    counts = {(s.key, int((s.start - EPOCH) / timedelta(seconds=1))): s.count for s in reader.values}
    wrong = {w: (counts.get(w), n) for w, n in expected.items() if counts.get(w) != n}
    restores = sum(log.read_text().count("restored table windows") for log in tmp_path.glob("worker-*.log"))
    print(
        f"{reader.count} window results for {len(expected)} windows of {total} samples; "
        f"steps at {committed_at} committed; {restores} window-table restores"
    )
    assert not repeated, f"{len(repeated)} windows emitted more than once, e.g. {list(repeated.items())[:3]}"
    assert not wrong, f"{len(wrong)} windows wrong (got, expected), e.g. {list(wrong.items())[:3]}"
    assert set(got) == set(expected), f"unexpected windows: {sorted(set(got) - set(expected))[:3]}"
    assert "dead-lettering" not in pipeline.logs(), "no sample may be late or fail"
