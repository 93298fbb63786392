"""Consumer-group lag as the broker sees it: each group's committed offsets against partition ends.

This is the outside view (``streams lag``), for groups whose workers may be anywhere or nowhere; it
asks the cluster with an admin client and never joins a group. The end of a partition is its last
stable offset (``read_committed``), the furthest a reading agent can get, so open transactions do
not count as lag.

Lag counts offsets from the group's position to the end. Where the group never committed, its
position is the partition's first offset: the whole partition is waiting, not nothing. Offsets are
not all messages: on a transactional topic every commit marker takes one, and a caught-up
exactly-once group sits just before the last marker. So a partition with lag is read from its
position up to its first readable message; lag runs from there, and is 0 when only markers remain.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import (
    ConsumerGroupTopicPartitions,
    IsolationLevel,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import OffsetSpec

from streams.config import Settings
from streams.errors import TopicError, TransportError
from streams.telemetry.scaling import Rates, recommended_workers
from streams.transport import clients

TP = tuple[str, int]


@dataclass(frozen=True)
class PartitionLag:
    """One partition of one group.

    ``committed`` is None when the group never committed there; ``lag`` then counts from the
    partition's first offset. ``lag`` is 0 when nothing readable lies between position and end.
    """

    group: str
    topic: str
    partition: int
    committed: int | None
    end: int
    lag: int

    @property
    def from_start(self) -> bool:
        """Whether lag counts from the partition's first offset because nothing was committed."""
        return self.committed is None


@dataclass(frozen=True)
class Progress:
    """A group at one moment (monotonic seconds): its positions and its partitions' ends, summed."""

    at: float
    position: int
    end: int
    partitions: int


def recommend(
    before: Progress, after: Progress, lag: int, members: int, drain_within: float
) -> tuple[Rates, int | None]:
    """A group's rates between two readings and the workers it needs (:mod:`streams.telemetry.scaling`):
    its members share what it handled equally. Rates count offsets, so commit markers on a topic
    written in transactions count as messages."""
    span = max(after.at - before.at, 1e-9)
    rates = Rates(
        incoming=max(0, after.end - before.end) / span,
        handled=max(0, after.position - before.position) / span,
    )
    per_worker = rates.handled / members if members else 0.0
    workers = recommended_workers(
        incoming=rates.incoming,
        per_worker=per_worker,
        lag=lag,
        partitions=after.partitions,
        drain_within=drain_within,
    )
    return rates, workers


class LagReader:
    """Reads committed offsets and partition ends with one admin client."""

    def __init__(self, settings: Settings, timeout: float = 15.0) -> None:
        self._settings = settings
        self._admin = clients.admin(settings)
        self._timeout = timeout

    def lag(self, groups: Mapping[str, Sequence[str] | None]) -> list[PartitionLag]:
        """Lag per partition of each group, sorted by group, topic and partition.

        With topics named for a group, every partition of those topics is listed (committed or not);
        with None, the partitions the group has committed offsets for.
        """
        committed, wanted, positions, ends = self._positions(groups)
        behind = {(tp, position) for (_, tp), position in positions.items() if position < ends[tp]}
        readable = self._first_readable(behind, ends)
        rows: list[PartitionLag] = []
        for group in sorted(wanted):
            for tp in sorted(wanted[group]):
                position, end = positions[(group, tp)], ends[tp]
                first = readable.get((tp, position), end) if position < end else end
                rows.append(PartitionLag(group, tp[0], tp[1], committed[group].get(tp), end, end - first))
        return rows

    def progress(self, groups: Mapping[str, Sequence[str] | None]) -> dict[str, Progress]:
        """Each group's position and its partitions' ends, summed, now (read twice, they give rates)."""
        _, wanted, positions, ends = self._positions(groups)
        at = time.monotonic()
        return {
            group: Progress(
                at, sum(positions[(group, tp)] for tp in tps), sum(ends[tp] for tp in tps), len(tps)
            )
            for group, tps in wanted.items()
        }

    def members(self, groups: Iterable[str]) -> dict[str, int]:
        """How many consumers each group has now (workers of an agent: one per process)."""
        names = list(groups)
        if not names:
            return {}
        futures = self._admin.describe_consumer_groups(names, request_timeout=self._timeout)
        found: dict[str, int] = {}
        for group, future in futures.items():
            try:
                found[group] = len(future.result(timeout=self._timeout).members or [])
            except KafkaException as exc:
                raise TransportError(f"cannot describe consumer group {group}: {exc.args[0]}") from exc
        return found

    def _positions(
        self, groups: Mapping[str, Sequence[str] | None]
    ) -> tuple[dict[str, dict[TP, int]], dict[str, set[TP]], dict[tuple[str, TP], int], dict[TP, int]]:
        """Committed offsets and wanted partitions per group, where each group would read next, and
        the partitions' ends."""
        committed = {group: self._committed(group) for group in groups}
        wanted: dict[str, set[TP]] = {}
        for group, topics in groups.items():
            if topics is None:
                wanted[group] = set(committed[group])
            else:
                wanted[group] = {(t, p) for t in topics for p in self._partitions(t)}
        everything = {tp for tps in wanted.values() for tp in tps}
        ends = self._offsets(everything, OffsetSpec.latest())  # type: ignore[no-untyped-call]
        starts = self._offsets(everything, OffsetSpec.earliest())  # type: ignore[no-untyped-call]
        # Where each group would read next: its commit, or the first offset still in the partition.
        positions = {
            (group, tp): max(committed[group].get(tp, starts[tp]), starts[tp])
            for group, tps in wanted.items()
            for tp in tps
        }
        return committed, wanted, positions, ends

    def _committed(self, group: str) -> dict[tuple[str, int], int]:
        """The group's committed positions; an unknown group simply has none."""
        futures = self._admin.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group)], request_timeout=self._timeout
        )
        try:
            result = futures[group].result(timeout=self._timeout)
        except KafkaException as exc:
            raise TransportError(f"cannot read committed offsets of group {group}: {exc.args[0]}") from exc
        return {
            (tp.topic, tp.partition): tp.offset
            for tp in result.topic_partitions or []
            if tp.error is None and tp.offset >= 0
        }

    def _partitions(self, topic: str) -> list[int]:
        try:
            metadata = self._admin.list_topics(topic, timeout=self._timeout)
        except KafkaException as exc:
            raise TransportError(f"cannot reach Kafka to read topic {topic}: {exc.args[0]}") from exc
        meta = metadata.topics.get(topic)
        if meta is None or meta.error is not None:
            raise TopicError(f"topic {topic} does not exist")
        return sorted(meta.partitions)

    def _offsets(self, partitions: Iterable[TP], spec: Any) -> dict[TP, int]:
        """The offset ``spec`` (earliest, latest) names in each partition, as read_committed sees it."""
        request: dict[Any, Any] = {TopicPartition(t, p): spec for t, p in partitions}
        if not request:
            return {}
        futures = self._admin.list_offsets(
            request, isolation_level=IsolationLevel.READ_COMMITTED, request_timeout=self._timeout
        )
        found: dict[TP, int] = {}
        for tp, future in futures.items():
            try:
                found[(tp.topic, tp.partition)] = future.result(timeout=self._timeout).offset
            except KafkaException as exc:
                raise TransportError(
                    f"cannot read the offsets of {tp.topic}[{tp.partition}]: {exc.args[0]}"
                ) from exc
        return found

    def _first_readable(self, starts: set[tuple[TP, int]], ends: dict[TP, int]) -> dict[tuple[TP, int], int]:
        """For each (partition, position): the offset of the first message a read_committed consumer
        receives from there, or the end if only transaction markers (or aborted records) remain.

        One fetch per partition and position, from a consumer that joins no group and commits nothing.
        A partition that does not answer in time keeps its full offset range as lag.
        """
        found: dict[tuple[TP, int], int] = {}
        # Positions differ per group: a consumer's assignment holds each partition once, so one round
        # per distinct position of a partition (commonly one).
        for tps in _rounds(starts):
            found.update(self._peek(tps, ends))
        return found

    def _peek(self, starts: dict[TP, int], ends: dict[TP, int]) -> dict[tuple[TP, int], int]:
        consumer = clients.scan_consumer(self._settings, "streams-lag", **_PEEK)
        found: dict[tuple[TP, int], int] = {}
        try:
            consumer.assign([TopicPartition(t, p, offset) for (t, p), offset in starts.items()])
            waiting = set(starts)
            deadline = time.monotonic() + self._timeout
            while waiting and time.monotonic() < deadline:
                for message in consumer.consume(500, 0.5):
                    tp: TP = (message.topic() or "", message.partition() or 0)
                    if tp not in waiting:
                        continue
                    error = message.error()
                    if error is not None and error.code() != KafkaError._PARTITION_EOF:
                        continue  # transient; librdkafka retries, the deadline bounds the wait
                    # End of partition, or a message at or past the end read at the start: none readable.
                    offset = message.offset()
                    eof = error is not None or offset is None
                    found[(tp, starts[tp])] = ends[tp] if eof else min(offset or 0, ends[tp])
                    waiting.discard(tp)
                    consumer.pause([TopicPartition(*tp)])
        except KafkaException as exc:
            raise TransportError(f"cannot read ahead of the committed offsets: {exc.args[0]}") from exc
        finally:
            consumer.close()
        return found


# Read as little as possible: one small fetch per partition is enough to see whether a message lies
# ahead; librdkafka would otherwise prefetch up to a million messages per partition.
_PEEK: dict[str, Any] = {
    "enable.partition.eof": True,
    "max.partition.fetch.bytes": 64 * 1024,
    "fetch.max.bytes": 1024 * 1024,
    "queued.min.messages": 1,
    "queued.max.messages.kbytes": 1024,
}


def _rounds(starts: set[tuple[TP, int]]) -> list[dict[TP, int]]:
    """Split (partition, position) pairs into rounds that hold each partition at most once."""
    rounds: list[dict[TP, int]] = []
    for tp, position in sorted(starts):
        for round_ in rounds:
            if tp not in round_:
                round_[tp] = position
                break
        else:
            rounds.append({tp: position})
    return rounds
