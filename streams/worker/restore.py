"""Restoring one table's partitions from its changelog on assignment, from the store's checkpoint when it
has one it can trust, and counting what it read.

Runs inside the consumer's assignment callback, on the poll thread, which librdkafka blocks until the
callback returns: no revocation can interleave with a restore (librdkafka delivers the next rebalance
only from a later poll on this same thread). What can happen meanwhile is a shutdown, so ``should_stop``
is asked between batches: a stopped restore keeps what it wrote (each batch moved the checkpoint with
it) and marks nothing restored, so no handler ever sees a half-restored partition, and the next owner
resumes where this one stopped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from streams.state.store import ChangelogEntry, Store
from streams.transport.changelog import ChangelogRecord
from streams.worker.stats import WorkerStats

log = logging.getLogger("streams.worker")

# Records applied per write: each batch moves the checkpoint, so a restore cut short loses at most this
# much of its progress; big enough that the checkpoint write is noise.
_BATCH = 1000


class Changelog(Protocol):
    """Some partitions of a changelog (see :class:`streams.transport.changelog.ChangelogReader`)."""

    @property
    def bounds(self) -> Mapping[int, tuple[int, int]]:
        """Per partition: its first offset and its end when opened."""
        ...

    def read(self, start: Mapping[int, int]) -> Iterator[ChangelogRecord]: ...


OpenChangelog = Callable[[str, Sequence[int]], AbstractContextManager[Changelog]]
"""Opens partitions of the changelog topic of that name (the worker's reads the broker)."""


@dataclass
class _Progress:
    start: int
    from_checkpoint: bool
    records: int = 0
    batch: list[ChangelogEntry] = field(default_factory=list)


def restore_table(
    store: Store[Any],
    changelog: str,
    partitions: Sequence[int],
    open_changelog: OpenChangelog,
    *,
    agent: str,
    table: str,
    stats: WorkerStats,
    should_stop: Callable[[], bool] = lambda: False,
) -> list[int]:
    """Restore ``partitions`` of ``store`` from the topic ``changelog``; returns those now restored (all
    of them, unless ``should_stop`` said to stop). ``agent`` and ``table`` name it in log lines."""
    started = time.monotonic()
    with open_changelog(changelog, partitions) as reader:
        what = f"agent {agent} table {table}"
        progress = {p: _start(store, p, reader.bounds[p], what) for p in partitions}
        stopped = False
        for record in reader.read({p: state.start for p, state in progress.items()}):
            if record.key is None:
                continue  # not a table write: nothing to apply (the offset is covered at the end)
            state = progress[record.partition]
            state.batch.append((record.key, record.value))
            if len(state.batch) >= _BATCH:
                _flush(store, record.partition, state, record.offset + 1, stats)
                if should_stop():
                    stopped = True
                    break
        if not stopped:
            # The reader reached every partition's end: everything committed below it is applied, even
            # where the last records were transaction markers or skipped.
            for partition, state in progress.items():
                _flush(store, partition, state, reader.bounds[partition][1], stats)
                store.open(partition)
    elapsed = time.monotonic() - started
    stats.restore_seconds = elapsed
    if stopped:
        log.warning(
            "agent %s stopped restoring table %s at shutdown; partitions %s stay unrestored (a local "
            "checkpoint keeps the progress)",
            agent,
            table,
            list(partitions),
        )
        return []
    for partition, state in progress.items():
        if state.from_checkpoint:
            stats.checkpoint_restores += 1
        else:
            stats.full_restores += 1
        log.info(
            "agent %s restored table %s partition %d from changelog offset %d (%s): %s%d record(s) in %.2fs",
            agent,
            table,
            partition,
            state.start,
            "local checkpoint" if state.from_checkpoint else "full restore",
            # Counting keys on disk means reading them all: only the in-memory store says how many.
            "" if store.persistent else f"{store.size(partition)} key(s) from ",
            state.records,
            elapsed,
        )
    return list(partitions)


def _start(store: Store[Any], partition: int, bounds: tuple[int, int], what: str) -> _Progress:
    """Where to read ``partition`` from: its checkpoint if the changelog still has everything after it,
    else the changelog's first offset, with the local data wiped."""
    low, high = bounds
    checkpoint = store.checkpoint(partition)
    if checkpoint is not None and low <= checkpoint <= high:
        return _Progress(checkpoint, from_checkpoint=True)
    if checkpoint is not None:
        # The changelog was deleted and created again, or truncated: the local data describes another.
        log.warning(
            "%s partition %d: local checkpoint %d is outside the changelog's offsets %d..%d; "
            "restoring from the start",
            what,
            partition,
            checkpoint,
            low,
            high,
        )
    store.reset(partition)
    return _Progress(low, from_checkpoint=False)


def _flush(store: Store[Any], partition: int, state: _Progress, next_offset: int, stats: WorkerStats) -> None:
    store.restore(partition, state.batch, next_offset)
    state.records += len(state.batch)
    stats.restored_records += len(state.batch)
    state.batch = []
