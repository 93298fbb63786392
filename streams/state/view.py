"""What a handler sees of a table: one partition of it, with its own writes on top.

Writes go to an overlay, visible at once to the same handler call. The worker applies the overlay to
the store, and writes it to the changelog, only when the call succeeds: a failed attempt leaves no
trace in the table, and a retry starts from the table as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from streams.state.store import Store

V = TypeVar("V")


class TableView(Generic[V]):
    def __init__(self, name: str, store: Store[V], partition: int) -> None:
        self.name = name
        self.partition = partition
        self._store = store
        self._writes: dict[str | bytes, V | None] = {}

    def get(self, key: str | bytes, default: V | None = None) -> V | None:
        """The value of ``key`` (or ``default``)."""
        if key in self._writes:
            written = self._writes[key]
            return default if written is None else written
        found = self._store.get(self.partition, key)
        return default if found is None else found

    def set(self, key: str | bytes, value: V) -> None:
        self._writes[key] = value

    def delete(self, key: str | bytes) -> None:
        self._writes[key] = None

    def update(self, key: str | bytes, change: Callable[[V | None], V | None]) -> V | None:
        """Replace the value of ``key`` by ``change(current)`` (None deletes it); returns the new value.

        Atomic for the key the agent orders by: handlers of one key never overlap (``ordering="key"``)."""
        value = change(self.get(key))
        self._writes[key] = value
        return value

    def scan(self) -> Iterator[tuple[str | bytes, V]]:
        """Every key and value of this partition, this call's writes included."""
        for key, value in self._store.items(self.partition):
            if key not in self._writes:
                yield key, value
        for key, written in self._writes.items():
            if written is not None:
                yield key, written

    def cache(self) -> dict[str, Any]:
        """Derived data about this partition (e.g. an index of its keys) that the store drops with the
        partition's values, so a rebuilt index never describes state this worker no longer owns."""
        return self._store.cache(self.partition)

    def changes(self) -> dict[str | bytes, V | None]:
        """This call's writes (None: deleted), for the worker to apply and log."""
        return self._writes
