"""The RocksDB store and checkpoint restores, without a broker: a changelog in a list stands in for the
topic, and a store on tmp_path is reopened to stand in for a restart."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from streams import App, ConfigError, StateError, Table
from streams.events import MetricSample
from streams.state.rocks import RocksStore
from streams.state.store import Codec, Key, MemoryStore, Store
from streams.transport.changelog import ChangelogRecord
from streams.worker.restore import Changelog, restore_table
from streams.worker.stats import WorkerStats
from tests._records import sample

pytestmark = pytest.mark.unit


def _key(key: Key) -> bytes:
    return key.encode() if isinstance(key, str) else key


# JSON instead of the registry's wire format: the store only moves bytes, whichever they are.
CODEC: Codec[MetricSample] = Codec(
    encode_key=_key,
    decode_key=lambda data: data.decode(),
    encode=lambda value: value.model_dump_json().encode(),
    decode=MetricSample.model_validate_json,
)


def _rocks(path: Path, **options: float) -> RocksStore[MetricSample]:
    return RocksStore(path, CODEC, **options)


def _values(store: Store[MetricSample], partition: int) -> dict[Key, float]:
    return {key: value.value for key, value in store.items(partition)}


class ListChangelog:
    """A changelog topic in memory: records per partition, offsets given by the caller (gaps allowed,
    as transaction markers leave them)."""

    def __init__(self) -> None:
        self.records: dict[int, list[ChangelogRecord]] = {}
        self.ends: dict[int, int] = {}
        self.reads: list[dict[int, int]] = []

    def append(self, partition: int, key: str, value: float | None) -> None:
        offset = self.ends.get(partition, 0)
        payload = None if value is None else CODEC.encode(sample("count", value))
        self.records.setdefault(partition, []).append(
            ChangelogRecord(partition, offset, key.encode(), payload)
        )
        self.ends[partition] = offset + 1

    def commit_marker(self, partition: int) -> None:
        self.ends[partition] = self.ends.get(partition, 0) + 1

    @contextmanager
    def open(self, topic: str, partitions: Sequence[int]) -> Iterator[Changelog]:
        yield _Reader(self, partitions)


class _Reader:
    def __init__(self, changelog: ListChangelog, partitions: Sequence[int]) -> None:
        self._changelog = changelog
        self.bounds = {p: (0, changelog.ends.get(p, 0)) for p in partitions}

    def read(self, start: Mapping[int, int]) -> Iterator[ChangelogRecord]:
        self._changelog.reads.append(dict(start))
        for partition, offset in start.items():
            end = self.bounds[partition][1]
            for record in self._changelog.records.get(partition, []):
                if offset <= record.offset < end:
                    yield record


def _restore(
    store: Store[MetricSample], changelog: ListChangelog, partitions: Sequence[int], **options: object
) -> tuple[list[int], WorkerStats]:
    stats = WorkerStats()
    restored = restore_table(
        store,
        "app.agent.counts-changelog",
        partitions,
        changelog.open,
        agent="agent",
        table="counts",
        stats=stats,
        **options,  # type: ignore[arg-type]
    )
    return restored, stats


# ----------------------------------------------------------------- the store


def test_values_by_partition_with_deletes_and_scans(tmp_path: Path) -> None:
    store = _rocks(tmp_path)
    store.open(0)
    store.open(1)
    store.apply(0, {"a": sample("n", 1), "b": sample("n", 2)})
    store.apply(1, {"c": sample("n", 3)})
    store.apply(0, {"a": None, "b": sample("n", 20)})
    assert store.get(0, "a") is None
    assert store.get(0, "b") == sample("n", 20)
    assert store.get(1, "b") is None, "partitions are separate"
    assert _values(store, 0) == {"b": 20.0}
    assert {k: v.value for k, v in store.everything().items()} == {"b": 20.0, "c": 3.0}
    assert store.size(1) == 1
    store.close()


def test_the_cache_lives_exactly_as_long_as_the_partition(tmp_path: Path) -> None:
    store = _rocks(tmp_path)
    store.open(0)
    store.cache(0)["index"] = {"b": 1}
    assert store.cache(0) is store.cache(0)
    assert store.cache(1) == {}, "per partition"
    store.apply(0, {"k": sample("n", 1)})
    store.drop(0)
    assert not store.holds(0)
    assert store.get(0, "k") is None, "a dropped partition is not readable"
    store.open(0)
    assert store.cache(0) == {}, "the cache went with the partition"
    assert store.get(0, "k") == sample("n", 1), "the data stayed on disk"
    store.close()


def test_a_reopened_store_finds_its_data_and_checkpoint_on_disk(tmp_path: Path) -> None:
    first = _rocks(tmp_path)
    first.restore(3, [(b"a", CODEC.encode(sample("n", 1))), (b"b", CODEC.encode(sample("n", 2)))], 2)
    first.restore(3, [(b"a", None)], 7)
    first.open(3)
    assert first.checkpoint(3) == 7
    first.close()
    second = _rocks(tmp_path)
    assert second.checkpoint(3) == 7
    second.open(3)
    assert _values(second, 3) == {"b": 2.0}
    assert (tmp_path / "3").is_dir(), "one database per partition"
    second.close()


def test_a_handler_write_removes_the_checkpoint_until_sealed(tmp_path: Path) -> None:
    store = _rocks(tmp_path)
    store.restore(0, [(b"a", CODEC.encode(sample("n", 1)))], 5)
    store.open(0)
    assert not store.unsealed(0)
    store.apply(0, {"a": sample("n", 2)})
    assert store.unsealed(0)
    assert store.checkpoint(0) is None, "local data is ahead of the changelog: nothing to resume from"
    store.close()
    assert _rocks(tmp_path).checkpoint(0) is None, "not even after a crash and a restart"

    store = _rocks(tmp_path)
    store.open(0)
    store.apply(0, {"b": sample("n", 1)})
    store.seal(0, 9)
    assert not store.unsealed(0)
    store.close()
    assert _rocks(tmp_path).checkpoint(0) == 9


def test_reset_wipes_data_and_checkpoint(tmp_path: Path) -> None:
    store = _rocks(tmp_path)
    store.restore(0, [(b"a", CODEC.encode(sample("n", 1)))], 1)
    store.reset(0)
    assert store.checkpoint(0) is None
    store.open(0)
    assert _values(store, 0) == {}
    store.close()


def test_a_write_after_the_partition_was_dropped_is_ignored(tmp_path: Path) -> None:
    store = _rocks(tmp_path)
    store.restore(0, [], 4)
    store.open(0)
    store.drop(0)
    store.apply(0, {"late": sample("n", 1)})  # a handler that outlived the revocation
    store.open(0)
    assert _values(store, 0) == {}
    assert store.checkpoint(0) == 4
    store.close()


def test_the_memory_store_ignores_a_write_to_a_partition_it_no_longer_holds() -> None:
    store: MemoryStore[MetricSample] = MemoryStore(CODEC)
    store.open(0)
    store.apply(0, {"k": sample("n", 1)})
    store.drop(0)
    store.apply(0, {"late": sample("n", 2)})  # a handler that outlived the revocation
    assert not store.holds(0), "a late write must not make the partition look restored"
    store.restore(0, [(b"k", None)], 1)
    assert not store.holds(0), "restoring is not holding: nothing is readable until open()"
    store.open(0)
    assert _values(store, 0) == {}


def test_a_scan_left_unfinished_does_not_keep_the_database_locked(tmp_path: Path) -> None:
    store = _rocks(tmp_path, lock_wait=1.0)
    store.open(0)
    store.apply(0, {"a": sample("n", 1), "b": sample("n", 2)})
    scan = store.items(0)
    next(scan)
    del scan
    store.drop(0)
    other = _rocks(tmp_path, lock_wait=1.0)
    other.open(0)
    assert _values(other, 0) == {"a": 1.0, "b": 2.0}
    other.close()


def test_a_partition_another_owner_holds_is_waited_for_then_refused(tmp_path: Path) -> None:
    owner = _rocks(tmp_path)
    owner.open(0)
    with pytest.raises(StateError, match="cannot open the local store"):
        _rocks(tmp_path, lock_wait=0.3).open(0)
    threading.Timer(0.3, owner.drop, args=(0,)).start()  # the previous owner lets it go meanwhile
    successor = _rocks(tmp_path, lock_wait=10)
    successor.open(0)
    assert successor.holds(0)
    successor.close()


def test_table_declarations_choose_their_store() -> None:
    app = App("stores")
    table = app.table("big", value=MetricSample, store="rocksdb")
    assert table.store == "rocksdb"
    assert app.table("small", value=MetricSample).store == "memory"
    with pytest.raises(ConfigError, match="store must be 'memory' or 'rocksdb'"):
        Table("bad", MetricSample, store="disk")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="declared twice"):
        app.table("big", value=MetricSample)


# ----------------------------------------------------------------- restoring


def _history(changelog: ListChangelog, partition: int, writes: int, keys: int = 7) -> dict[str, float]:
    """``writes`` counter updates over ``keys`` keys, as a counting agent logs them; the final state."""
    state: dict[str, float] = {}
    for i in range(writes):
        key = f"k{i % keys}"
        state[key] = state.get(key, 0) + 1
        changelog.append(partition, key, state[key])
    return state


def test_a_restart_reads_only_what_came_after_the_checkpoint(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    changelog = ListChangelog()
    expected = {0: _history(changelog, 0, 2500), 1: _history(changelog, 1, 40)}
    changelog.commit_marker(0)  # the end is a transaction marker, not a record
    restored, stats = _restore(_rocks(tmp_path), changelog, [0, 1])
    assert restored == [0, 1]
    assert (stats.full_restores, stats.checkpoint_restores, stats.restored_records) == (2, 0, 2540)

    for i in range(30):  # written after the first restore, by another owner
        changelog.append(0, f"k{i % 3}", expected[0][f"k{i % 3}"] + 1 + i // 3)
    for i in range(3):
        expected[0][f"k{i}"] += 10
    changelog.reads.clear()
    store = _rocks(tmp_path)  # a restart: the same directory, a new process
    with caplog.at_level(logging.INFO, logger="streams.worker"):
        restored, stats = _restore(store, changelog, [0, 1])
    assert restored == [0, 1]
    assert changelog.reads == [{0: 2501, 1: 40}], "from each checkpoint: after the marker, at the end"
    assert (stats.full_restores, stats.checkpoint_restores, stats.restored_records) == (0, 2, 30)
    assert "agent agent restored table counts partition 0 from changelog offset 2501 (local checkpoint)" in (
        caplog.text
    )
    assert {p: _values(store, p) for p in (0, 1)} == expected
    full = MemoryStore(CODEC)
    _restore(full, changelog, [0, 1])
    assert {p: _values(full, p) for p in (0, 1)} == expected, "the same state as a full restore"
    store.close()


def test_writes_never_sealed_are_not_trusted_after_a_crash(tmp_path: Path) -> None:
    changelog = ListChangelog()
    expected = _history(changelog, 0, 50)
    store = _rocks(tmp_path)
    _restore(store, changelog, [0])
    # A handler's write whose transaction never committed: applied locally, absent from the changelog.
    store.apply(0, {"k0": sample("count", 999), "ghost": sample("count", 1)})
    del store  # a crash: no seal
    changelog.reads.clear()
    store = _rocks(tmp_path)
    restored, stats = _restore(store, changelog, [0])
    assert restored == [0]
    assert changelog.reads == [{0: 0}], "a full restore"
    assert stats.full_restores == 1
    assert _values(store, 0) == expected, "the uncommitted writes are gone"
    store.close()


def test_a_sealed_store_resumes_from_its_seal(tmp_path: Path) -> None:
    changelog = ListChangelog()
    _history(changelog, 0, 10)
    store = _rocks(tmp_path)
    _restore(store, changelog, [0])
    store.apply(0, {"k0": sample("count", 2)})
    changelog.append(0, "k0", 2)  # the same write, committed in the changelog
    changelog.commit_marker(0)
    store.seal(0, changelog.ends[0])
    store.close()
    changelog.reads.clear()
    store = _rocks(tmp_path)
    _, stats = _restore(store, changelog, [0])
    assert changelog.reads == [{0: 12}]
    assert stats.restored_records == 0
    assert _values(store, 0)["k0"] == 2.0
    store.close()


def test_a_checkpoint_beyond_the_changelog_means_a_full_restore(tmp_path: Path) -> None:
    store = _rocks(tmp_path)
    store.restore(0, [(b"stale", CODEC.encode(sample("count", 5)))], 500)
    store.close()
    changelog = ListChangelog()  # the changelog was deleted and created again
    expected = _history(changelog, 0, 20)
    store = _rocks(tmp_path)
    _, stats = _restore(store, changelog, [0])
    assert stats.full_restores == 1
    assert _values(store, 0) == expected
    store.close()


def test_a_restore_stopped_midway_marks_nothing_restored_and_keeps_its_progress(tmp_path: Path) -> None:
    changelog = ListChangelog()
    expected = _history(changelog, 0, 3500)
    store = _rocks(tmp_path)
    asked: list[int] = []

    def stop_after_first_batch() -> bool:
        asked.append(1)
        return True

    restored, stats = _restore(store, changelog, [0], should_stop=stop_after_first_batch)
    assert restored == []
    assert asked == [1], "asked after the first batch"
    assert not store.holds(0), "no handler may see a half-restored partition"
    assert store.checkpoint(0) == 1000
    assert stats.restored_records == 1000
    store.close()
    changelog.reads.clear()
    store = _rocks(tmp_path)
    restored, stats = _restore(store, changelog, [0])
    assert restored == [0]
    assert changelog.reads == [{0: 1000}]
    assert stats.restored_records == 2500
    assert _values(store, 0) == expected
    store.close()
