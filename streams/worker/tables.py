"""An agent's tables on a worker: local stores, the view each handler call opens, the changelog
records of a successful call, and restoring a partition from its changelog on assignment.

A call's writes reach the store and the changelog together, only when the call succeeds. The changelog
records are held by the delivery mode until the commit that passes the input: the last record of each
key is encoded then and acknowledged before the offsets commit (at-least-once), or produced in the
transaction that commits them (exactly-once; an aborted transaction leaves nothing to restore).

Each table is kept in the store its declaration names: in memory, or in RocksDB under
``STREAMS_STATE_DIR/<group>/<table>/<partition>`` (the in-memory twin keeps every table in memory). A
RocksDB partition restores from its local checkpoint when the worker let it go cleanly: :meth:`seal`
records the changelog's end once every write applied to it is known to be committed (see
:mod:`streams.state.rocks` for the invariant). One caveat under at-least-once only: a former owner
that lost the partition without noticing may still append to the changelog after this worker restored
it; this worker's state never saw those records, and a checkpoint restore does not either, while a full
restore would. Under exactly-once such a writer is fenced and its records are aborted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from streams.agent import Agent
from streams.config import Settings
from streams.errors import ConfigError, TransportError
from streams.serde.codec import RecordDecoder, decode_key, encode_key
from streams.serde.registry import SchemaRegistry
from streams.state.rocks import RocksStore
from streams.state.store import Codec, Key, MemoryStore, Store
from streams.state.view import TableView
from streams.tables import Table
from streams.topics import Topic
from streams.transport.changelog import ChangelogReader, end_offsets
from streams.worker.outbox import DirectOutbox, Encoders, HeldOutbox, Output
from streams.worker.restore import Changelog, restore_table
from streams.worker.stats import WorkerStats

log = logging.getLogger("streams.worker")

_RESTORE_TIMEOUT = 300.0


class AgentTables:
    """``settings`` reach the changelogs to restore from and the state directory; without them (the
    in-memory twin, which never loses its stores) :meth:`restore` is not available and every table is
    kept in memory. ``stats`` count what restores read."""

    def __init__(
        self,
        agent: Agent[Any],
        registry: SchemaRegistry,
        encoders: Encoders,
        settings: Settings | None = None,
        stats: WorkerStats | None = None,
    ) -> None:
        self._agent = agent
        self._registry = registry
        self._settings = settings
        self._encoders = encoders
        self._stats = stats if stats is not None else WorkerStats()
        self._tables = {table.name: table for table in agent.tables}
        self._changelogs: dict[str, Topic[Any]] = {t.name: agent.changelog(t) for t in agent.tables}
        self._stores: dict[str, Store[Any]] = {t.name: self._store_for(t) for t in agent.tables}

    def _store_for(self, table: Table[Any]) -> Store[Any]:
        changelog = self._changelogs[table.name]

        def encode(value: Any) -> bytes:
            return self._encoders.encode(changelog, value)

        def decode_key_bytes(data: bytes) -> Key:
            key = decode_key(data, changelog.key)
            assert key is not None
            return key

        codec: Codec[Any] = Codec(
            encode_key=_key_bytes,
            decode_key=decode_key_bytes,
            encode=encode,
            decode=RecordDecoder(self._registry, changelog.value),
        )
        if table.store == "rocksdb" and self._settings is not None:
            return RocksStore(self._settings.state_dir / self._agent.group_id / table.name, codec)
        return MemoryStore(codec)

    def open(self, table: Table[Any], partition: int) -> TableView[Any]:
        """A handler call's view of one partition of ``table``."""
        found = self._tables.get(table.name)
        if found is not table and found != table:
            raise ConfigError(
                f"agent {self._agent.name} has no table {table.name}; list it in @app.agent(tables=[...])"
            )
        return TableView(table.name, self._stores[table.name], partition)

    def write(self, views: Iterable[TableView[Any]], outbox: DirectOutbox | HeldOutbox) -> None:
        """After a successful call: apply its writes to the stores and put them on the changelogs."""
        for view in views:
            changes = view.changes()
            if not changes:
                continue
            changelog = self._changelogs[view.name]
            self._stores[view.name].apply(view.partition, changes)
            for key, value in changes.items():
                # Encoded at the commit, and only if no later write of the key replaces it.
                outbox.emit(
                    Output(
                        changelog.name,
                        None,
                        encode_key(key),
                        [],
                        view.partition,
                        latest_only=True,
                        record=value,
                        encode_as=None if value is None else changelog,
                    )
                )

    def restore(self, partitions: Iterable[int], *, should_stop: Callable[[], bool] = lambda: False) -> None:
        """Blocking, on assignment: bring each table's partitions up to their changelog's end (from a
        local checkpoint where one can be trusted). ``should_stop`` is asked between batches; a stopped
        restore leaves its partitions unrestored (see :meth:`ready`)."""
        assert self._settings is not None, "restoring needs the settings of the cluster"
        settings = self._settings
        wanted = sorted(set(partitions))

        @contextmanager
        def open_changelog(topic: str, todo: Sequence[int]) -> Iterator[Changelog]:
            with ChangelogReader(settings, topic, todo, timeout=_RESTORE_TIMEOUT) as reader:
                yield reader

        for name, store in self._stores.items():
            todo = [p for p in wanted if not store.holds(p)]
            if todo and not should_stop():
                restore_table(
                    store,
                    self._changelogs[name].name,
                    todo,
                    open_changelog,
                    agent=self._agent.name,
                    table=name,
                    stats=self._stats,
                    should_stop=should_stop,
                )

    def start_empty(self, partitions: Iterable[int]) -> None:
        """Own ``partitions`` with nothing to restore (the in-memory twin, whose stores never go away)."""
        for store in self._stores.values():
            for partition in partitions:
                store.open(partition)

    def ready(self, partition: int) -> bool:
        """Whether every table holds ``partition`` (restored, so handlers may use it)."""
        return all(store.holds(partition) for store in self._stores.values())

    def seal(self, partitions: Iterable[int]) -> None:
        """Blocking, on a clean revocation or shutdown, for partitions whose every applied write is
        committed in the changelog (nothing unfinished, nothing left to commit): record the changelog's
        end as their local checkpoint, so their next owner on this disk reads only what comes after.
        If the end cannot be read, nothing is recorded and the next restore reads everything."""
        assert self._settings is not None, "sealing needs the settings of the cluster"
        wanted = sorted(set(partitions))
        for name, store in self._stores.items():
            todo = [p for p in wanted if store.persistent and store.unsealed(p)]
            if not todo:
                continue
            changelog = self._changelogs[name].name
            try:
                ends = end_offsets(self._settings, changelog, todo, timeout=self._settings.kafka_timeout)
            except TransportError as exc:
                log.warning(
                    "agent %s: no local checkpoint for table %s partitions %s (the next restore reads "
                    "their whole changelog): %s",
                    self._agent.name,
                    name,
                    todo,
                    exc,
                )
                continue
            for partition in todo:
                store.seal(partition, ends[partition])
            log.debug("agent %s: table %s checkpoints %s", self._agent.name, name, ends)

    def forget(self, partitions: Iterable[int]) -> None:
        dropped = list(partitions)
        for store in self._stores.values():
            for partition in dropped:
                store.drop(partition)

    def close(self) -> None:
        """Release every store (on disk: close the databases)."""
        for store in self._stores.values():
            store.close()

    def changelogs(self) -> list[Topic[Any]]:
        return list(self._changelogs.values())

    def snapshot(self, table: Table[Any]) -> dict[str | bytes, Any]:
        """Every key and value of ``table`` this worker holds, over all its partitions."""
        self.open(table, 0)  # the same check as a handler's
        return self._stores[table.name].everything()


def _key_bytes(key: Key) -> bytes:
    return key.encode() if isinstance(key, str) else key
