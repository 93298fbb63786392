"""An in-memory broker: partitioned, append-only topics with offsets, and committed group positions.

Enough of Kafka for unit tests of agents: keyed messages go to a partition chosen from the key (the
same key always lands in the same partition), offsets grow per partition, and each consumer group
keeps a committed position per partition. No retention, no transactions: the twin commits a batch's
outputs and offsets together, which is what a transaction looks like to a read_committed reader.
"""

from __future__ import annotations

import asyncio
import itertools
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from streams.errors import TopicError, TransportError
from streams.headers import Headers

TP = tuple[str, int]


@dataclass(frozen=True)
class StoredMessage:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers
    timestamp_ms: int


class InMemoryBroker:
    def __init__(self, clock_ms: Any = None) -> None:
        self._partitions: dict[str, list[list[StoredMessage]]] = {}
        self._committed: dict[str, dict[TP, int]] = {}
        self._round_robin = itertools.count()
        self._clock_ms = clock_ms or (lambda: 0)

    def create_topic(self, name: str, partitions: int) -> None:
        """Create ``name`` unless it exists (its partition count then stays as it is)."""
        self._partitions.setdefault(name, [[] for _ in range(partitions)])

    def partitions(self, topic: str) -> int:
        return len(self._log(topic))

    def append(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> StoredMessage:
        log = self._log(topic)
        if partition is None:
            # Keyed: a stable hash of the key, as librdkafka's default partitioner (CRC32) does.
            partition = zlib.crc32(key) % len(log) if key is not None else next(self._round_robin) % len(log)
        messages = log[partition]
        stored = StoredMessage(
            topic,
            partition,
            len(messages),
            key,
            value,
            list(headers or ()),
            int(self._clock_ms()) if timestamp_ms is None else timestamp_ms,
        )
        messages.append(stored)
        return stored

    def read(self, topic: str, partition: int, offset: int) -> list[StoredMessage]:
        """The messages of one partition from ``offset`` on."""
        return self._log(topic)[partition][offset:]

    def messages(self, topic: str) -> list[StoredMessage]:
        """Every message of ``topic``, partition by partition, in offset order."""
        return [m for part in self._log(topic) for m in part]

    def commit(self, group: str, positions: dict[TP, int]) -> None:
        committed = self._committed.setdefault(group, {})
        for tp, position in positions.items():
            committed[tp] = max(position, committed.get(tp, 0))

    def committed(self, group: str) -> dict[TP, int]:
        return dict(self._committed.get(group, {}))

    def _log(self, topic: str) -> list[list[StoredMessage]]:
        log = self._partitions.get(topic)
        if log is None:
            raise TopicError(f"topic {topic} does not exist in the test app; declare it with app.topic()")
        return log


class BrokerSender:
    """The twin's producer: appends at once and returns an acknowledged delivery."""

    def __init__(self, broker: InMemoryBroker) -> None:
        self._broker = broker

    async def send(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
        partition: int | None = None,
    ) -> asyncio.Future[Any]:
        stored = self._broker.append(topic, value, key, headers, partition)
        delivered: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        delivered.set_result(stored)
        return delivered

    def send_reported(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        headers: Sequence[tuple[str, bytes]] | None,
        partition: int | None,
        report: Callable[[TransportError | None], None],
    ) -> None:
        self._broker.append(topic, value, key, headers, partition)
        report(None)


class InMemoryIds:
    """The idempotent consumer's id log, in memory (the twin of :class:`streams.worker.dedup.DedupStore`)."""

    def __init__(self) -> None:
        self._seen: dict[int, set[str]] = {}

    def seen(self, partition: int, message_id: str) -> bool:
        return message_id in self._seen.get(partition, ())

    async def record(self, partition: int, message_id: str) -> asyncio.Future[Any]:
        self._seen.setdefault(partition, set()).add(message_id)
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done
