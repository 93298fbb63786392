"""Where a table's values live on a worker: the :class:`Store` protocol, and :class:`MemoryStore`, a dict
of values per input partition (the RocksDB store is :mod:`streams.state.rocks`).

Partitioned like the agent's input, so a revoked partition's state is dropped in one step and a newly
assigned one is restored from exactly its changelog partition. Each partition also has a cache: derived
data (an index, say) that lives exactly as long as the partition's values in this store, so it can never
outlive a revocation and describe values another worker has changed since.

Restoring goes through bytes, the changelog's own (:class:`Codec` turns them into keys and values), so
a store on disk can keep them as they are. A store that survives its process also keeps a checkpoint
per partition: the changelog offset below which its data is complete (see :class:`Store`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

V = TypeVar("V")

Key = str | bytes

ChangelogEntry = tuple[bytes, bytes | None]
"""One changelog record as restored: key bytes and value bytes (None: a tombstone, the key was deleted)."""


@dataclass(frozen=True, slots=True)
class Codec(Generic[V]):
    """How keys and values turn into the changelog's bytes and back (the worker builds one per table from
    its key type and the registry's wire format; stores stay free of serialization)."""

    encode_key: Callable[[Key], bytes]
    decode_key: Callable[[bytes], Key]
    encode: Callable[[V], bytes]
    decode: Callable[[bytes], V]


class Store(Protocol[V]):
    """One table's values on one worker, by input partition.

    A partition is *held* once restored (:meth:`open`) and until :meth:`drop`; handlers only see held
    partitions. Restoring a partition: :meth:`checkpoint` says where its changelog must be read from
    (None: from the start, after :meth:`reset`), :meth:`restore` applies what was read, :meth:`open`
    marks it done.

    The checkpoint invariant, for stores that keep one: with checkpoint ``C``, the partition's data is
    what applying its changelog's committed records below ``C`` in offset order leaves. Restoring from
    ``C`` on then gives the same state as restoring everything.
    """

    persistent: bool
    """Whether the data outlives the process (and :meth:`seal` is worth calling)."""

    def get(self, partition: int, key: Key) -> V | None: ...

    def items(self, partition: int) -> Iterator[tuple[Key, V]]: ...

    def apply(self, partition: int, changes: Mapping[Key, V | None]) -> None:
        """A handler call's writes (None deletes the key)."""
        ...

    def everything(self) -> dict[Key, V]:
        """All held partitions' keys and values in one dict (keys are unique across partitions)."""
        ...

    def size(self, partition: int) -> int:
        """How many keys ``partition`` holds (RocksDB reads them all to count: not for hot paths)."""
        ...

    def holds(self, partition: int) -> bool: ...

    def open(self, partition: int) -> None:
        """Mark ``partition`` restored (possibly empty): handlers may use it now."""
        ...

    def cache(self, partition: int) -> dict[str, Any]:
        """Derived data about ``partition``, dropped with it."""
        ...

    def drop(self, partition: int) -> None:
        """Stop holding ``partition`` (revoked). Its cache goes; a persistent store keeps the data."""
        ...

    def checkpoint(self, partition: int) -> int | None:
        """The changelog offset to restore ``partition`` from, or None: nothing local to trust."""
        ...

    def reset(self, partition: int) -> None:
        """Delete ``partition``'s local data and checkpoint, before restoring it from the start."""
        ...

    def restore(self, partition: int, entries: Sequence[ChangelogEntry], next_offset: int) -> None:
        """Apply changelog records of ``partition``, in offset order; every committed record below
        ``next_offset`` has now been applied."""
        ...

    def unsealed(self, partition: int) -> bool:
        """Whether ``partition`` has writes its checkpoint does not cover."""
        ...

    def seal(self, partition: int, offset: int) -> None:
        """Record ``offset`` as the checkpoint: the caller knows every write applied to ``partition`` is
        committed in the changelog below it."""
        ...

    def close(self) -> None:
        """Drop every partition and release what the store holds open."""
        ...


class MemoryStore(Generic[V]):
    """Values in a dict per partition: fast, bounded by memory, restored from the changelog's start at
    every assignment (nothing survives the process, so there is no checkpoint). ``codec`` is needed
    only to restore."""

    persistent = False

    def __init__(self, codec: Codec[V] | None = None) -> None:
        self._codec = codec
        self._partitions: dict[int, dict[Key, V]] = {}
        self._restoring: dict[int, dict[Key, V]] = {}  # held only once open() says it is complete
        self._caches: dict[int, dict[str, Any]] = {}

    def get(self, partition: int, key: Key) -> V | None:
        return self._partitions.get(partition, {}).get(key)

    def items(self, partition: int) -> Iterator[tuple[Key, V]]:
        yield from self._partitions.get(partition, {}).items()

    def apply(self, partition: int, changes: Mapping[Key, V | None]) -> None:
        values = self._partitions.get(partition)
        if values is None:
            # A handler that outlived its partition's revocation: the partition is not this worker's
            # any more (its new owner handles the message again). Writing would make it look restored.
            return
        for key, value in changes.items():
            if value is None:
                values.pop(key, None)
            else:
                values[key] = value

    def everything(self) -> dict[Key, V]:
        return {key: value for values in self._partitions.values() for key, value in values.items()}

    def size(self, partition: int) -> int:
        return len(self._partitions.get(partition, {}))

    def holds(self, partition: int) -> bool:
        return partition in self._partitions

    def open(self, partition: int) -> None:
        if partition not in self._partitions:
            self._partitions[partition] = self._restoring.pop(partition, {})

    def cache(self, partition: int) -> dict[str, Any]:
        return self._caches.setdefault(partition, {})

    def drop(self, partition: int) -> None:
        self._partitions.pop(partition, None)
        self._restoring.pop(partition, None)
        self._caches.pop(partition, None)

    def checkpoint(self, partition: int) -> int | None:
        return None

    def reset(self, partition: int) -> None:
        self.drop(partition)

    def restore(self, partition: int, entries: Sequence[ChangelogEntry], next_offset: int) -> None:
        if not entries:
            return
        assert self._codec is not None, "restoring needs the table's codec"
        codec = self._codec
        values = self._restoring.setdefault(partition, {})
        for key, value in entries:
            if value is None:
                values.pop(codec.decode_key(key), None)
            else:
                values[codec.decode_key(key)] = codec.decode(value)

    def unsealed(self, partition: int) -> bool:
        return False

    def seal(self, partition: int, offset: int) -> None:
        """Nothing to record: the data goes with the process."""

    def close(self) -> None:
        self._partitions.clear()
        self._restoring.clear()
        self._caches.clear()
