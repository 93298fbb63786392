"""The in-memory store of one table: a dict of values per input partition.

Partitioned like the agent's input, so a revoked partition's state is dropped in one step and a newly
assigned one is restored from exactly its changelog partition. Each partition also has a cache: derived
data (an index, say) that lives exactly as long as the partition's values in this store, so it can never
outlive a revocation and describe values another worker has changed since.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Generic, TypeVar

V = TypeVar("V")


class MemoryStore(Generic[V]):
    def __init__(self) -> None:
        self._partitions: dict[int, dict[str | bytes, V]] = {}
        self._caches: dict[int, dict[str, Any]] = {}

    def get(self, partition: int, key: str | bytes) -> V | None:
        return self._partitions.get(partition, {}).get(key)

    def items(self, partition: int) -> Iterator[tuple[str | bytes, V]]:
        yield from self._partitions.get(partition, {}).items()

    def apply(self, partition: int, changes: Mapping[str | bytes, V | None]) -> None:
        """Write ``changes`` (None deletes the key)."""
        values = self._partitions.setdefault(partition, {})
        for key, value in changes.items():
            if value is None:
                values.pop(key, None)
            else:
                values[key] = value

    def everything(self) -> dict[str | bytes, V]:
        """All partitions' keys and values in one dict (keys are unique across partitions)."""
        return {key: value for values in self._partitions.values() for key, value in values.items()}

    def size(self, partition: int) -> int:
        return len(self._partitions.get(partition, {}))

    def holds(self, partition: int) -> bool:
        return partition in self._partitions

    def open(self, partition: int) -> None:
        """Mark ``partition`` restored (possibly empty)."""
        self._partitions.setdefault(partition, {})

    def cache(self, partition: int) -> dict[str, Any]:
        """Derived data about ``partition``, dropped with it."""
        return self._caches.setdefault(partition, {})

    def drop(self, partition: int) -> None:
        self._partitions.pop(partition, None)
        self._caches.pop(partition, None)
