"""A table under kill -9, on the real broker: exactly-once state restored from its changelog.

A counter per key (tests/chaos/table_app.py) emits the count with every message. If a crash lost a
committed update, a key's counts would repeat a number; if an aborted transaction's update survived
in the restored state, they would skip one. Downstream must see 1..n per key, once each, in order.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from pathlib import Path

import pytest

from streams import Settings
from streams.serde.registry import ConfluentRegistry
from tests.chaos._harness import CommittedReader, Pipeline

pytestmark = pytest.mark.chaos

ROUNDS = 5 if os.environ.get("STREAMS_SOAK") == "1" else 1
KEYS = 1000
DEADLINE = float(os.environ.get("CHAOS_DEADLINE", "900"))


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_counts_in_a_table_survive_kill_9_exactly(
    settings: Settings, registry: ConfluentRegistry, tmp_path: Path, round_: int
) -> None:
    per_key, kills = 20, 3
    pipeline = Pipeline.create(
        settings,
        registry,
        tmp_path,
        app_ref="tests.chaos.table_app:app",
        agents=("count",),
        extra_env={"CHAOS_HANDLER_SLEEP": "0.02"},
    )
    total = pipeline.publish(KEYS, per_key, shuffled=True)
    reader = CommittedReader(settings, registry, f"{pipeline.prefix}.out")
    started = time.monotonic()
    seen_at_kill: list[int] = []

    def wait_for(target: int) -> None:
        while reader.drain(1.0) < target:
            dead = [w for w in pipeline.workers if w.poll() not in (None, 0, -9)]
            assert not dead, f"a worker exited with {dead[0].returncode}:\n{pipeline.logs()}"
            assert time.monotonic() - started < DEADLINE, f"{reader.count} of {target}:\n{pipeline.logs()}"

    try:
        worker = pipeline.start_worker()
        for i in range(kills):
            wait_for(int(total * (i + 1) / (kills + 1)))
            pipeline.kill_9(worker)
            seen_at_kill.append(reader.drain(0.5))
            worker = pipeline.start_worker()
        wait_for(total)
        reader.drain(3.0)  # anything extra (a repeated count) would show up now
    finally:
        codes = pipeline.stop_all()
        reader.close()
    assert codes.count(-9) == kills, codes
    assert all(seen < total for seen in seen_at_kill), f"every kill must land mid-run: {seen_at_kill}"
    counts: dict[str, list[int]] = defaultdict(list)
    for task_id, result in reader.results:
        counts[task_id.rsplit(":", 1)[0]].append(int(result or 0))
    wrong = {key: seen for key, seen in counts.items() if seen != list(range(1, per_key + 1))}
    restores = sum(log.read_text().count("restored table counts") for log in tmp_path.glob("worker-*.log"))
    print(
        f"round {round_}: {reader.count} outputs for {total} messages, kills at {seen_at_kill} outputs, "
        f"{restores} restores"
    )
    assert len(counts) == KEYS
    assert not wrong, f"{len(wrong)} keys counted wrong, e.g. {dict(list(wrong.items())[:3])}"
    assert reader.count == total
