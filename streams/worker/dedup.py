"""The idempotent consumer: ids of handled messages, kept per input partition in a compacted changelog.

Changelog partition p holds the ids handled from input partition p, so a worker that is assigned p
reads back exactly that partition before handling anything from it. An id is written only after its
handler succeeded and the broker acknowledged every output, so a durable id proves the message's
outputs are delivered and a redelivery it turns away has nothing left to do. The one gap is a crash
after a handler's side effect but before its id is durable: that message runs again. The worker holds
the key's lane until the id is durable, so at most ``concurrency`` messages are in that gap at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, TopicPartition

from streams.config import Settings
from streams.errors import TransportError
from streams.transport import clients
from streams.worker.outbox import Sender

_RESTORE_TIMEOUT = 60.0
_NOT_READY = (
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
)

# Ids are unique, so compaction alone would keep every one forever: time retention bounds the store
# (and so the window in which a redelivery is recognised) to a week.
DEDUP_CHANGELOG_CONFIG = {"cleanup.policy": "compact,delete", "retention.ms": str(7 * 24 * 3600 * 1000)}


class DedupStore:
    def __init__(self, settings: Settings, changelog: str, producer: Sender) -> None:
        self.changelog = changelog
        self._settings = settings
        self._producer = producer
        self._seen: dict[int, set[str]] = {}
        self.restored = 0

    def restore(self, partitions: Iterable[int]) -> None:
        """Load the ids of ``partitions`` from the changelog (blocking; called on assignment)."""
        wanted = [p for p in partitions if p not in self._seen]
        if not wanted:
            return
        consumer = clients.scan_consumer(
            self._settings, "dedup-restore", **{"isolation.level": "read_committed"}
        )
        deadline = time.monotonic() + _RESTORE_TIMEOUT
        try:
            ends: dict[int, int] = {}
            for partition in wanted:
                ends[partition] = self._end_offset(consumer, partition, deadline)
                self._seen[partition] = set()
            consumer.assign([TopicPartition(self.changelog, p, OFFSET_BEGINNING) for p in wanted])
            positions = {p: -1 for p in wanted}
            while any(positions[p] + 1 < ends[p] for p in wanted):
                if time.monotonic() > deadline:
                    raise TransportError(
                        f"restoring {self.changelog} took over {_RESTORE_TIMEOUT:.0f}s", retriable=True
                    )
                for message in consumer.consume(1000, 0.2):
                    source, found, key = message.partition(), message.offset(), message.key()
                    if message.error() or source is None or found is None:
                        continue
                    positions[source] = found
                    if key is not None:
                        self._seen[source].add(key.decode())
                        self.restored += 1
                # Transaction markers and compaction leave gaps: the position is what counts.
                for partition in wanted:
                    now_at = consumer.position([TopicPartition(self.changelog, partition)])[0].offset
                    if now_at is not None and now_at >= 0:
                        positions[partition] = max(positions[partition], now_at - 1)
        finally:
            consumer.close()

    def _end_offset(self, consumer: Any, partition: int, deadline: float) -> int:
        """The changelog partition's end, retried until ``deadline`` while the broker says it is not
        ready: a changelog created moments ago may not have a leader yet."""
        while True:
            try:
                _, high = consumer.get_watermark_offsets(
                    TopicPartition(self.changelog, partition), timeout=10
                )
                return int(high)
            except KafkaException as exc:
                error = exc.args[0]
                if not (error.retriable() or error.code() in _NOT_READY) or time.monotonic() > deadline:
                    raise TransportError(
                        f"cannot read the end of {self.changelog}[{partition}]: {error.str()}", retriable=True
                    ) from exc
                time.sleep(0.2)

    def seen(self, partition: int, message_id: str) -> bool:
        return message_id in self._seen.get(partition, ())

    async def record(self, partition: int, message_id: str) -> asyncio.Future[Any]:
        """Write ``message_id`` to the changelog; the returned delivery resolves once it is durable
        (the worker commits the input only after that)."""
        self._seen.setdefault(partition, set()).add(message_id)
        return await self._producer.send(self.changelog, b"1", message_id.encode(), partition=partition)

    def forget(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            self._seen.pop(partition, None)
