"""A table under kill -9, on the real broker: exactly-once state restored from its changelog.

A counter per key (tests/chaos/table_app.py) emits the count with every message. If a crash lost a
committed update, a key's counts would repeat a number; if an aborted transaction's update survived
in the restored state, they would skip one. Downstream must see 1..n per key, once each, in order.
"""

from __future__ import annotations

import os
import re
import time
from collections import defaultdict
from collections.abc import Callable
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
    logs = _count_through_stops(settings, registry, tmp_path, ["kill", "kill", "kill"], {})
    print(f"round {round_}: {logs.count('restored table counts')} restores")


def test_a_rocksdb_table_survives_kill_9_and_resumes_after_sigterm_exactly(
    settings: Settings, registry: ConfluentRegistry, tmp_path: Path
) -> None:
    """On disk: a kill -9 leaves writes no checkpoint covers (some in aborted transactions), so the next
    worker restores those partitions from the changelog's start; a SIGTERM seals them, so the next one
    reads only the changelog's tail. Either way the counts go on without a gap or a repeat."""
    store = {"CHAOS_TABLE_STORE": "rocksdb", "STREAMS_STATE_DIR": str(tmp_path / "state")}
    stops = ["kill", "term", "kill", "term"]
    # A SIGTERM finishes everything received (thousands of messages): more of them, so all stops land
    # mid-run.
    logs = _count_through_stops(settings, registry, tmp_path, stops, store, per_key=40)
    assert re.search(r"from changelog offset [1-9]\d* \(local checkpoint\)", logs), (
        "a worker after a SIGTERM resumes from its checkpoints"
    )
    assert re.search(r"from changelog offset 0 \(full restore\): [1-9]\d* record", logs), (
        "a worker after a kill -9 reads the changelog from its start"
    )


def _count_through_stops(
    settings: Settings,
    registry: ConfluentRegistry,
    tmp_path: Path,
    stops: list[str],
    env: dict[str, str],
    per_key: int = 20,
) -> str:
    """Run the counter over KEYS keys, stopping its worker mid-run as ``stops`` say (kill -9 or SIGTERM)
    and starting another; check every key counted 1..n downstream, once each. Returns the workers' logs."""
    pipeline = Pipeline.create(
        settings,
        registry,
        tmp_path,
        app_ref="tests.chaos.table_app:app",
        agents=("count",),
        # 32 handlers of 50 ms: at most 640 inputs/s, so a run of 20,000 lasts long enough for each
        # stop to land mid-way though checking the group's progress takes a moment.
        extra_env={"CHAOS_HANDLER_SLEEP": "0.05", **env},
    )
    total = pipeline.publish(KEYS, per_key, shuffled=True)
    reader = CommittedReader(settings, registry, f"{pipeline.prefix}.out")
    started = time.monotonic()
    seen_at_stop: list[int] = []

    def wait_for(done: Callable[[], bool], what: str) -> None:
        while not done():
            reader.drain(0.2)
            dead = [w for w in pipeline.workers if w.poll() not in (None, 0, -9)]
            assert not dead, f"a worker exited with {dead[0].returncode}:\n{pipeline.logs()}"
            assert time.monotonic() - started < DEADLINE, f"stuck waiting for {what}:\n{pipeline.logs()}"

    progress = [0]

    def reached(target: int) -> bool:
        # One query per check (each takes a moment), and the stop is judged on the value that
        # satisfied it: the worker moves on meanwhile, and a second query could find it done.
        progress[0] = pipeline.committed_input("count")
        return progress[0] >= target

    try:
        worker = pipeline.start_worker()
        for i, stop in enumerate(stops):
            # Each worker stops after it took its partitions and made progress of its own (input it
            # committed, not output a reader saw: a killed worker's open transaction hides the output
            # of its successor from read_committed readers until it times out).
            pipeline.wait_until_assigned(worker)
            floor = seen_at_stop[-1] if seen_at_stop else 0
            target = max(int(total * (i + 1) / (len(stops) + 1)), floor + total // 20)
            wait_for(lambda target=target: reached(target), f"{target} inputs committed")
            seen_at_stop.append(progress[0])
            if stop == "kill":
                pipeline.kill_9(worker)
            else:
                assert pipeline.sigterm(worker) == 0, pipeline.logs()
            worker = pipeline.start_worker()
        wait_for(lambda: reader.count >= total, f"{total} outputs")
        reader.drain(3.0)  # anything extra (a repeated count) would show up now
    finally:
        codes = pipeline.stop_all()
        reader.close()
    assert codes.count(-9) == stops.count("kill"), codes
    assert all(seen < total for seen in seen_at_stop), (
        f"every stop must land mid-run: {seen_at_stop} inputs committed"
    )
    counts: dict[str, list[int]] = defaultdict(list)
    for task_id, result in reader.results:
        counts[task_id.rsplit(":", 1)[0]].append(int(result or 0))
    wrong = {key: seen for key, seen in counts.items() if seen != list(range(1, per_key + 1))}
    logs = "\n".join(log.read_text(errors="replace") for log in sorted(tmp_path.glob("worker-*.log")))
    print(f"{reader.count} outputs for {total} messages, stops at {seen_at_stop} inputs committed")
    assert len(counts) == KEYS
    assert not wrong, f"{len(wrong)} keys counted wrong, e.g. {dict(list(wrong.items())[:3])}"
    assert reader.count == total
    return logs
