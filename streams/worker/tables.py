"""An agent's tables on a worker: local stores, the view each handler call opens, the changelog
records of a successful call, and restoring a partition from its changelog on assignment.

A call's writes reach the store and the changelog together, only when the call succeeds. The changelog
records go through the outbox like any output, so the delivery mode decides their fate: acknowledged
before the input's offset commits (at-least-once), or produced in the transaction that commits it
(exactly-once; an aborted transaction leaves nothing to restore).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from streams.agent import Agent
from streams.config import Settings
from streams.errors import ConfigError
from streams.serde.codec import RecordDecoder, decode_key, encode_key
from streams.serde.registry import SchemaRegistry
from streams.state.store import MemoryStore
from streams.state.view import TableView
from streams.tables import Table
from streams.topics import Topic
from streams.transport.changelog import read_changelog
from streams.worker.outbox import DirectOutbox, Encoders, HeldOutbox, Output

log = logging.getLogger("streams.worker")

_RESTORE_TIMEOUT = 300.0


class AgentTables:
    """``settings`` reach the changelogs to restore from; without them (the in-memory twin, which
    never loses its stores) :meth:`restore` is not available."""

    def __init__(
        self,
        agent: Agent[Any],
        registry: SchemaRegistry,
        encoders: Encoders,
        settings: Settings | None = None,
    ) -> None:
        self._agent = agent
        self._registry = registry
        self._settings = settings
        self._encoders = encoders
        self._tables = {table.name: table for table in agent.tables}
        self._stores: dict[str, MemoryStore[Any]] = {name: MemoryStore() for name in self._tables}
        self._changelogs: dict[str, Topic[Any]] = {t.name: agent.changelog(t) for t in agent.tables}

    def open(self, table: Table[Any], partition: int) -> TableView[Any]:
        """A handler call's view of one partition of ``table``."""
        if self._tables.get(table.name) != table:
            raise ConfigError(
                f"agent {self._agent.name} has no table {table.name}; list it in @app.agent(tables=[...])"
            )
        return TableView(table.name, self._stores[table.name], partition)

    async def write(self, views: Iterable[TableView[Any]], outbox: DirectOutbox | HeldOutbox) -> None:
        """After a successful call: apply its writes to the stores and put them on the changelogs."""
        for view in views:
            changes = view.changes()
            if not changes:
                continue
            changelog = self._changelogs[view.name]
            self._stores[view.name].apply(view.partition, changes)
            for key, value in changes.items():
                payload = None if value is None else self._encoders.encode(changelog, value)
                await outbox.emit(
                    Output(changelog.name, payload, encode_key(key), [], view.partition, latest_only=True)
                )

    def restore(self, partitions: Iterable[int]) -> None:
        """Blocking, on assignment: read each table's changelog partitions into the store."""
        assert self._settings is not None, "restoring needs the settings of the cluster"
        settings = self._settings
        wanted = sorted(set(partitions))
        for name, store in self._stores.items():
            todo = [p for p in wanted if not store.holds(p)]
            if not todo:
                continue
            changelog = self._changelogs[name]
            decode = RecordDecoder(self._registry, changelog.value)
            started = time.monotonic()
            records = 0
            for record in read_changelog(settings, changelog.name, todo, timeout=_RESTORE_TIMEOUT):
                key = decode_key(record.key, changelog.key)
                if key is None:
                    continue
                value = None if record.value is None else decode(record.value)
                store.apply(record.partition, {key: value})
                records += 1
            for partition in todo:
                store.open(partition)
            log.info(
                "agent %s restored table %s partitions %s: %d key(s) from %d record(s) in %.2fs",
                self._agent.name,
                name,
                todo,
                sum(store.size(p) for p in todo),
                records,
                time.monotonic() - started,
            )

    def forget(self, partitions: Iterable[int]) -> None:
        dropped = list(partitions)
        for store in self._stores.values():
            for partition in dropped:
                store.drop(partition)

    def changelogs(self) -> list[Topic[Any]]:
        return list(self._changelogs.values())

    def snapshot(self, table: Table[Any]) -> dict[str | bytes, Any]:
        """Every key and value of ``table`` this worker holds, over all its partitions."""
        self.open(table, 0)  # the same check as a handler's
        return self._stores[table.name].everything()
