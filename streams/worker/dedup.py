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
from collections.abc import Iterable
from typing import Any

from streams.config import Settings
from streams.transport.changelog import read_changelog
from streams.worker.outbox import Sender

_RESTORE_TIMEOUT = 60.0

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
        seen: dict[int, set[str]] = {p: set() for p in wanted}
        for record in read_changelog(self._settings, self.changelog, wanted, timeout=_RESTORE_TIMEOUT):
            if record.key is not None:
                seen[record.partition].add(record.key.decode())
                self.restored += 1
        self._seen.update(seen)

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
