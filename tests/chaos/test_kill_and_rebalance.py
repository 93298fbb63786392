"""Faults on the real broker: kill -9 worker processes and rebalance them mid-run, then prove what a
downstream read_committed consumer sees: every input exactly once, each key in order."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from streams import Settings
from streams.serde.registry import ConfluentRegistry
from tests.chaos._harness import CommittedReader, Pipeline, check_exactly_once_in_key_order

pytestmark = pytest.mark.chaos

KEYS = 1000
PER_KEY = int(os.environ.get("CHAOS_PER_KEY", "50"))  # 50,000 messages by default
DEADLINE = float(os.environ.get("CHAOS_DEADLINE", "900"))


def _wait_for(reader: CommittedReader, target: int, pipeline: Pipeline, started: float) -> None:
    while reader.drain(1.0) < target:
        # Exits by our own kill -9 (-9) or SIGTERM (0) are expected; anything else is a crash.
        dead = [w for w in pipeline.workers if w.poll() not in (None, 0, -9)]
        assert not dead, f"a worker exited with {dead[0].returncode}:\n{pipeline.logs()}"
        assert time.monotonic() - started < DEADLINE, (
            f"only {reader.count} of {target} outputs after {DEADLINE:.0f}s:\n{pipeline.logs()}"
        )


def test_kill_9_three_times_during_an_exactly_once_run(
    settings: Settings, registry: ConfluentRegistry, tmp_path: Path
) -> None:
    pipeline = Pipeline.create(settings, registry, tmp_path)
    total = pipeline.publish(KEYS, PER_KEY)
    reader = CommittedReader(settings, registry, f"{pipeline.prefix}.out")
    started = time.monotonic()
    try:
        worker = pipeline.start_worker()
        for fraction in (0.15, 0.4, 0.65):
            _wait_for(reader, int(total * fraction), pipeline, started)
            pipeline.kill_9(worker)
            worker = pipeline.start_worker()
        _wait_for(reader, total, pipeline, started)
        reader.drain(3.0)  # anything extra (a duplicate) would show up now
    finally:
        codes = pipeline.stop_all()
        reader.close()
    assert codes.count(-9) == 3 and codes[-1] == 0, codes
    check_exactly_once_in_key_order(reader, KEYS, PER_KEY)
    assert reader.count == total


def test_rebalance_one_to_three_to_one_worker_under_load(
    settings: Settings, registry: ConfluentRegistry, tmp_path: Path
) -> None:
    # Handlers that wait 30 ms (I/O-bound, like a model call) keep the run long enough that the group
    # changes twice while most of the work is still ahead.
    pipeline = Pipeline.create(settings, registry, tmp_path, extra_env={"CHAOS_HANDLER_SLEEP": "0.03"})
    total = pipeline.publish(KEYS, PER_KEY)
    reader = CommittedReader(settings, registry, f"{pipeline.prefix}.out")
    started = time.monotonic()
    try:
        first = pipeline.start_worker()
        _wait_for(reader, int(total * 0.05), pipeline, started)
        extra = [pipeline.start_worker(), pipeline.start_worker()]
        for worker in extra:
            pipeline.wait_until_assigned(worker)
        scaled_out_at = reader.drain(0.1)
        assert scaled_out_at < total * 0.8, "the scale-out must happen while work remains"
        # Scale back in halfway through what was left when the extra workers joined.
        _wait_for(reader, scaled_out_at + (total - scaled_out_at) // 2, pipeline, started)
        for worker in extra:
            worker.send_signal(15)
        for worker in extra:
            assert worker.wait(60) == 0, pipeline.logs()
        _wait_for(reader, total, pipeline, started)
        reader.drain(3.0)
        assert first.poll() is None, "the first worker kept running throughout"
    finally:
        pipeline.stop_all()
        reader.close()
    check_exactly_once_in_key_order(reader, KEYS, PER_KEY)
    assert reader.count == total
