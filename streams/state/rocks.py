"""A table's store on disk, in RocksDB: for state larger than memory, and restarts that read only the
changelog's tail.

Values stay encoded, as the changelog's bytes (the registry's wire format), and are decoded on read: no
value is kept in a Python dict, so memory holds RocksDB's caches and nothing that grows with the table.

One database per input partition, in ``<directory>/<partition>`` (the worker passes
``<STREAMS_STATE_DIR>/<group>/<table>``), rather than one per table with the partition in a key prefix:
RocksDB lets one process at a time open a database, and the workers of an agent on one host (``streams
run --workers N``) own different partitions of it. Per-partition databases let them share one state
directory, and a partition moves between them with its directory. Dropping a revoked partition closes
its database (its memory goes with it); wiping one deletes a directory.

Inside a partition's database, data keys are the changelog's key bytes behind ``d``; ``m:`` keys hold
metadata, the checkpoint among them. The checkpoint invariant (see :class:`streams.state.store.Store`)
holds because every write keeps it:

- :meth:`RocksStore.restore` writes changelog records and the offset after them in one ``WriteBatch``,
  which RocksDB applies atomically; after a crash it recovers a prefix of its write-ahead log, so a
  restore cut short leaves an earlier checkpoint, still true.
- The first handler write after the partition was opened deletes the checkpoint, in the same batch.
  From then on the database may hold writes whose changelog records are not committed yet, or never
  will be (a transaction aborted by a crash): after a crash, nothing local is trusted and the next owner
  restores the partition from the changelog's start.
- :meth:`RocksStore.seal` puts a checkpoint back only when its caller knows every write applied is
  committed in the changelog below it (the worker seals on a clean revocation or shutdown).
"""

from __future__ import annotations

import gc
import logging
import shutil
import struct
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

from rocksdict import DBRecoveryMode, Options, Rdict, WriteBatch

from streams.errors import StateError
from streams.state.store import ChangelogEntry, Codec, Key

log = logging.getLogger("streams.state")

V = TypeVar("V")

_DATA = b"d"
_CHECKPOINT = b"m:checkpoint"
_OFFSET = struct.Struct(">Q")
_LOCK_RETRY = 0.2


def _options() -> Options:
    options = Options(raw_mode=True)  # bytes in, bytes out: rocksdict pickles nothing
    options.create_if_missing(True)
    # The default, spelled out because the checkpoint relies on it: after a crash, recover the
    # write-ahead log up to its first damaged record, never a later write without an earlier one.
    options.set_wal_recovery_mode(DBRecoveryMode.point_in_time())
    return options


class RocksStore(Generic[V]):
    """``lock_wait``: how long to wait for a partition's database that another process (the previous
    owner, still letting it go) has open, before failing with :class:`StateError`."""

    persistent = True

    def __init__(self, directory: Path, codec: Codec[V], *, lock_wait: float = 60.0) -> None:
        self.directory = directory
        self._codec = codec
        self._lock_wait = lock_wait
        self._options = _options()
        self._dbs: dict[int, Rdict] = {}
        self._held: set[int] = set()
        self._unsealed: set[int] = set()
        self._caches: dict[int, dict[str, Any]] = {}

    # ----------------------------------------------------------------- what handlers use

    def get(self, partition: int, key: Key) -> V | None:
        db = self._dbs.get(partition)
        if db is None:
            return None
        found = db.get(_DATA + self._codec.encode_key(key))
        return None if found is None else self._codec.decode(found)

    def items(self, partition: int) -> Iterator[tuple[Key, V]]:
        decode_key, decode = self._codec.decode_key, self._codec.decode
        for raw, value in self._entries(partition):
            yield decode_key(raw), decode(value)

    def apply(self, partition: int, changes: Mapping[Key, V | None]) -> None:
        db = self._dbs.get(partition)
        if db is None:
            # A handler that outlived its partition's revocation: the partition is not this worker's
            # any more, and its new owner handles the message again.
            log.debug("%s: write to partition %d after it was dropped; ignored", self.directory, partition)
            return
        batch = WriteBatch(raw_mode=True)
        if partition not in self._unsealed:
            batch.delete(_CHECKPOINT)  # see the module docstring: local data is ahead of the changelog
        encode_key, encode = self._codec.encode_key, self._codec.encode
        for key, value in changes.items():
            if value is None:
                batch.delete(_DATA + encode_key(key))
            else:
                batch.put(_DATA + encode_key(key), encode(value))
        self._write(partition, db, batch)
        self._unsealed.add(partition)

    def everything(self) -> dict[Key, V]:
        return {key: value for p in sorted(self._held) for key, value in self.items(p)}

    def size(self, partition: int) -> int:
        """Counted by reading every key: RocksDB keeps no count (only an estimate, far off after
        deletes), so this is for tests and tools, not for a hot path."""
        return sum(1 for _ in self._keys(partition))

    def holds(self, partition: int) -> bool:
        return partition in self._held

    def open(self, partition: int) -> None:
        self._db(partition)
        self._held.add(partition)

    def cache(self, partition: int) -> dict[str, Any]:
        return self._caches.setdefault(partition, {})

    def drop(self, partition: int) -> None:
        self._held.discard(partition)
        self._unsealed.discard(partition)
        self._caches.pop(partition, None)
        db = self._dbs.pop(partition, None)
        if db is not None:
            db.close()

    # ----------------------------------------------------------------- restoring

    def checkpoint(self, partition: int) -> int | None:
        found = self._db(partition).get(_CHECKPOINT)
        return None if found is None else int(_OFFSET.unpack(found)[0])

    def reset(self, partition: int) -> None:
        self.drop(partition)
        path = self._path(partition)
        try:
            Rdict.destroy(str(path), self._options)
            shutil.rmtree(path, ignore_errors=True)  # what destroy leaves (rocksdict's own config file)
        except Exception as exc:  # rocksdict raises bare Exception
            raise StateError(f"cannot delete the local store {path}: {exc}") from exc
        self._db(partition)

    def restore(self, partition: int, entries: Sequence[ChangelogEntry], next_offset: int) -> None:
        db = self._db(partition)
        batch = WriteBatch(raw_mode=True)
        for key, value in entries:
            if value is None:
                batch.delete(_DATA + key)
            else:
                batch.put(_DATA + key, value)  # the changelog's bytes, as they are
        batch.put(_CHECKPOINT, _OFFSET.pack(next_offset))
        self._write(partition, db, batch)

    def unsealed(self, partition: int) -> bool:
        return partition in self._unsealed

    def seal(self, partition: int, offset: int) -> None:
        db = self._dbs.get(partition)
        if db is None:
            return
        batch = WriteBatch(raw_mode=True)
        batch.put(_CHECKPOINT, _OFFSET.pack(offset))
        self._write(partition, db, batch)
        self._unsealed.discard(partition)

    def close(self) -> None:
        for partition in list(self._dbs):
            self.drop(partition)

    # ----------------------------------------------------------------- the databases

    def _entries(self, partition: int) -> Iterator[tuple[bytes, bytes]]:
        """The data keys (without their prefix) and values of ``partition``, in key order."""
        db = self._dbs.get(partition)
        if db is None:
            return
        cursor = db.iter()
        try:
            cursor.seek(_DATA)
            while cursor.valid():
                raw: bytes = cursor.key()
                if not raw.startswith(_DATA):
                    break
                yield raw[1:], cursor.value()
                cursor.next()
        finally:
            del cursor  # an open iterator keeps the database (and its lock) alive past close()

    def _keys(self, partition: int) -> Iterator[bytes]:
        return (key for key, _ in self._entries(partition))

    def _path(self, partition: int) -> Path:
        return self.directory / str(partition)

    def _db(self, partition: int) -> Rdict:
        db = self._dbs.get(partition)
        if db is None:
            db = self._dbs[partition] = self._open(self._path(partition))
        return db

    def _open(self, path: Path) -> Rdict:
        deadline = time.monotonic() + self._lock_wait
        while True:
            try:
                path.mkdir(parents=True, exist_ok=True)
                return Rdict(str(path), self._options)
            except Exception as exc:  # rocksdict raises bare Exception
                message = str(exc)
                if "lock" not in message.lower() or time.monotonic() > deadline:
                    raise StateError(f"cannot open the local store {path}: {message}") from exc
                if "current process" in message:
                    gc.collect()  # a closed database whose iterator is still unreferenced garbage
                time.sleep(_LOCK_RETRY)

    def _write(self, partition: int, db: Rdict, batch: WriteBatch) -> None:
        try:
            db.write(batch)
        except Exception as exc:  # rocksdict raises bare Exception
            raise StateError(f"cannot write the local store {self._path(partition)}: {exc}") from exc
