"""A RocksDB table on the real broker: a clean restart resumes from the local checkpoint, a missing state
directory is rebuilt from the whole changelog, and every way leaves the same table."""

from __future__ import annotations

import logging
import re
import shutil
from collections import defaultdict
from pathlib import Path

import pytest

from streams import App, AtLeastOnce, ExactlyOnce, Settings
from streams.context import Context
from streams.events import MetricSample, TaskRequested
from streams.options import Guarantee
from streams.serde.codec import RecordDecoder
from streams.serde.registry import ConfluentRegistry
from streams.state.rocks import RocksStore
from streams.state.store import Codec
from streams.worker.stats import WorkerStats
from tests._records import count_up
from tests.integration._agents import eventually, running
from tests.integration._kafka import message_count
from tests.integration.test_agents import _publish, _task

KEYS = 5
PARTITIONS = 2
RESTORED = re.compile(r"restored table counts partition (\d+) from changelog offset (\d+) \(([a-z ]+)\)")


def _on_disk(registry: ConfluentRegistry, directory: Path) -> dict[str, float]:
    """The table as the stopped worker left it in its state directory."""

    def unused(value: MetricSample) -> bytes:
        raise AssertionError("only reading")

    codec: Codec[MetricSample] = Codec(
        encode_key=lambda key: key.encode() if isinstance(key, str) else key,
        decode_key=lambda data: data.decode(),
        encode=unused,
        decode=RecordDecoder(registry, MetricSample),
    )
    store = RocksStore(directory, codec)
    try:
        for partition in range(PARTITIONS):
            store.open(partition)
        return {str(key): value.value for key, value in store.everything().items()}
    finally:
        store.close()


@pytest.mark.parametrize("guarantee", [AtLeastOnce(), ExactlyOnce()], ids=["at-least-once", "exactly-once"])
async def test_a_rocksdb_table_resumes_from_its_checkpoint_and_rebuilds_without_its_state_dir(
    settings: Settings,
    registry: ConfluentRegistry,
    topic_name: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    guarantee: Guarantee,
) -> None:
    app = App(f"rocks-{topic_name[-8:]}", settings)
    tasks = app.topic(topic_name, value=TaskRequested, partitions=PARTITIONS)
    counts = app.table("counts", value=MetricSample, store="rocksdb")
    seen: list[tuple[str, int]] = []

    @app.agent(tasks, concurrency=8, guarantee=guarantee, tables=[counts])
    async def count(task: TaskRequested, ctx: Context) -> None:
        now = ctx.table(counts).update(str(ctx.key), count_up)
        assert now is not None
        seen.append((str(ctx.key), int(now.value)))

    agent = app.agents["count"]
    changelog = agent.changelog(counts).name
    machine_a, machine_b = tmp_path / "a", tmp_path / "b"

    def table_on(machine: Path) -> dict[str, float]:
        return _on_disk(registry, machine / agent.group_id / "counts")

    async def run(machine: Path, messages: int) -> tuple[WorkerStats, list[str]]:
        """Publish ``messages`` more, run a worker with ``machine``'s state directory until they are
        handled, stop it cleanly; its stats, and how it restored each partition."""
        first = len(seen)
        _publish(settings, registry, tasks, [_task(f"k{i % KEYS}", first + i) for i in range(messages)])
        app.settings = settings.model_copy(update={"streams_state_dir": machine})
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="streams.worker"):
            async with running(app) as runner:
                await eventually(lambda: len(seen) == first + messages, what=f"{first + messages} handled")
        restores = sorted((int(p), int(offset), how) for p, offset, how in RESTORED.findall(caplog.text))
        assert [p for p, _, _ in restores] == list(range(PARTITIONS)), caplog.text
        return runner.workers[0].stats, [how for _, _, how in restores]

    stats, restores = await run(machine_a, 40)
    assert restores == ["full restore"] * PARTITIONS, "nothing local yet"
    assert stats.restored_records == 0
    assert table_on(machine_a) == {f"k{k}": 8.0 for k in range(KEYS)}

    # A clean restart on the same disk: each partition resumes where the stopped worker sealed it.
    written = message_count(settings, changelog)
    stats, restores = await run(machine_a, 10)
    assert restores == ["local checkpoint"] * PARTITIONS
    assert max(int(offset) for _, offset, _ in RESTORED.findall(caplog.text)) > 0
    assert stats.checkpoint_restores == PARTITIONS and stats.full_restores == 0
    assert stats.restored_records < written, f"read {stats.restored_records} of {written} changelog records"
    assert table_on(machine_a) == {f"k{k}": 10.0 for k in range(KEYS)}

    # Another machine takes over with nothing local: everything comes back from the changelog.
    # A commit logs the last write of each key since the previous one, so a read can only be
    # bounded: at least one record per key, at most one per write.
    def read(records: int, writes: int, keys: int = KEYS) -> bool:
        return keys <= records <= writes

    stats, restores = await run(machine_b, 10)
    assert restores == ["full restore"] * PARTITIONS
    assert read(stats.restored_records, 50), f"{stats.restored_records}: the whole changelog so far"
    full = stats.restored_records
    assert table_on(machine_b) == {f"k{k}": 12.0 for k in range(KEYS)}

    # Back on the first machine: its checkpoints are behind, so it reads exactly what it missed.
    stats, restores = await run(machine_a, 10)
    assert restores == ["local checkpoint"] * PARTITIONS
    assert read(stats.restored_records, 10, keys=1), "the tail the other machine wrote, nothing before it"
    assert stats.restored_records < full
    assert table_on(machine_a) == {f"k{k}": 14.0 for k in range(KEYS)}

    # Its state directory deleted: a full restore, to the same table.
    shutil.rmtree(machine_a)
    stats, restores = await run(machine_a, 10)
    assert restores == ["full restore"] * PARTITIONS
    assert stats.full_restores == PARTITIONS and stats.checkpoint_restores == 0
    assert read(stats.restored_records, 70) and stats.restored_records > full
    assert table_on(machine_a) == {f"k{k}": 16.0 for k in range(KEYS)}

    by_key: dict[str, list[int]] = defaultdict(list)
    for key, value in seen:
        by_key[key].append(value)
    assert by_key == {f"k{k}": list(range(1, 17)) for k in range(KEYS)}, "no count lost or repeated"
