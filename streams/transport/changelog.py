"""Reading a changelog back: the records of some partitions, from the start (or a checkpoint) to their end
as of the call.

Used to restore state on assignment (dedup ids, tables). read_committed, so records of aborted
transactions never come back. Transaction markers and compaction leave gaps in the offsets; the
consumer's position, not ``offset + 1`` arithmetic, says when a partition is done.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from streams.config import Settings
from streams.errors import TopicError, TransportError
from streams.transport import clients

# A changelog created moments ago may not have a leader yet: these pass, so they are waited out.
_NOT_READY = (
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
)


@dataclass(frozen=True, slots=True)
class ChangelogRecord:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None  # None: a tombstone (the key was deleted)


class ChangelogReader:
    """Some partitions of a changelog: their bounds when it was opened, then their records from chosen
    offsets up to those ends. Raises TransportError once ``timeout`` seconds have passed since opening.
    Use it as a context manager (it closes its consumer)."""

    def __init__(
        self, settings: Settings, topic: str, partitions: Iterable[int], *, timeout: float = 60.0
    ) -> None:
        self.topic = topic
        self._timeout = timeout
        self._deadline = time.monotonic() + timeout
        self._consumer = clients.scan_consumer(
            settings, "changelog-restore", **{"isolation.level": "read_committed"}
        )
        try:
            self.bounds: dict[int, tuple[int, int]] = {
                p: _bounds(self._consumer, topic, p, self._deadline) for p in sorted(set(partitions))
            }
        except BaseException:
            self._consumer.close()
            raise

    def __enter__(self) -> ChangelogReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._consumer.close()

    def read(self, start: Mapping[int, int]) -> Iterator[ChangelogRecord]:
        """Yield the records of each partition in ``start`` from its offset there (within its bounds)
        up to its end, in offset order per partition. Once this is exhausted, every committed record
        between each start and end has been yielded."""
        topic, consumer = self.topic, self._consumer
        ends = {p: self.bounds[p][1] for p in start}
        remaining = {p for p, offset in start.items() if offset < ends[p]}
        if not remaining:
            return
        consumer.assign([TopicPartition(topic, p, start[p]) for p in remaining])
        while remaining:
            if time.monotonic() > self._deadline:
                raise TransportError(f"reading {topic} took over {self._timeout:.0f}s", retriable=True)
            for message in consumer.consume(1000, 0.2):
                partition, offset = message.partition(), message.offset()
                if message.error() or partition is None or offset is None or partition not in remaining:
                    continue
                yield ChangelogRecord(partition, offset, message.key(), message.value())
            for partition in list(remaining):
                position = consumer.position([TopicPartition(topic, partition)])[0].offset
                if position is not None and position >= ends[partition]:
                    remaining.discard(partition)


def changelog_partitions(settings: Settings, topic: str, *, timeout: float) -> list[int]:
    """The partitions ``topic`` has now. Unlike :func:`read_changelog`, which waits for a changelog
    created moments ago, a missing topic fails at once: for readers from outside (``streams state``),
    where it means no worker has created it yet. A broker not reached in ``timeout`` s: TransportError."""
    admin = clients.admin(settings)
    try:
        metadata = admin.list_topics(topic, timeout=timeout)
    except KafkaException as exc:
        raise TransportError(
            f"cannot reach Kafka at {settings.kafka_bootstrap_servers} to read {topic}: {exc.args[0].str()}",
            retriable=True,
        ) from exc
    meta = metadata.topics.get(topic)
    # Other topic errors (a leader not elected yet) are left to read_changelog, which waits them out.
    missing = (
        meta is not None and meta.error is not None and meta.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    )
    if meta is None or missing or not meta.partitions:
        raise TopicError(f"topic {topic} does not exist")
    return sorted(meta.partitions)


def read_changelog(
    settings: Settings, topic: str, partitions: Iterable[int], *, timeout: float = 60.0
) -> Iterator[ChangelogRecord]:
    """Yield every record of ``partitions`` of ``topic`` in offset order per partition, up to each
    partition's end when the call started. Raises TransportError after ``timeout`` seconds."""
    wanted = sorted(set(partitions))
    if not wanted:
        return
    with ChangelogReader(settings, topic, wanted, timeout=timeout) as reader:
        yield from reader.read({p: low for p, (low, _) in reader.bounds.items()})


def end_offsets(
    settings: Settings, topic: str, partitions: Iterable[int], *, timeout: float = 30.0
) -> dict[int, int]:
    """The end offset (high watermark) of each of ``partitions`` of ``topic`` now."""
    with ChangelogReader(settings, topic, partitions, timeout=timeout) as reader:
        return {p: high for p, (_, high) in reader.bounds.items()}


def _bounds(consumer: Any, topic: str, partition: int, deadline: float) -> tuple[int, int]:
    while True:
        try:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            return int(low), int(high)
        except KafkaException as exc:
            error = exc.args[0]
            if not (error.retriable() or error.code() in _NOT_READY) or time.monotonic() > deadline:
                raise TransportError(
                    f"cannot read the end of {topic}[{partition}]: {error.str()}", retriable=True
                ) from exc
            time.sleep(0.2)
