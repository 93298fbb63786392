"""Reading a table from outside its agents (interactive queries): the latest value of every key.

The changelog is the table: this module reads it read_committed from the start to its end as of the
call, keeping the last record of each key in each partition and dropping keys whose last record is
a tombstone. That is
exactly what a worker restores on assignment, so the answer is the table as its agents had committed
it when the read started; records of aborted transactions never show. Reading joins no consumer
group and commits nothing, so running agents are not disturbed.

Only the last raw record of each key is kept while reading, and values are decoded when asked for:
a changelog compaction has not caught up with yet holds many versions of a key, and a ``get`` needs
one value, not all of them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from streams.agent import Agent
from streams.app import App
from streams.config import Settings
from streams.errors import ConfigError, DeserializationError, TopicError, TransportError
from streams.serde.codec import RecordDecoder, decode_key, encode_key
from streams.serde.record import Record
from streams.serde.registry import SchemaRegistry
from streams.tables import Table
from streams.transport.changelog import changelog_partitions, read_changelog

V = TypeVar("V", bound=Record)

# Called about once a second during a read with the records read so far, the number of partitions
# being read and the seconds spent; a read that ends within a second never calls it.
Progress = Callable[[int, int, float], None]

_PROGRESS_EVERY = 1.0


@dataclass(frozen=True, slots=True)
class Row(Generic[V]):
    """One key of a table: its latest value and where in the changelog that value was written."""

    key: str | bytes
    value: V
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class _Latest:
    offset: int
    value: bytes


def find_table(app: App, name: str, agent: str | None = None) -> tuple[Agent[Any], Table[Any]]:
    """The agent holding table ``name`` and the table; ``agent`` chooses when several agents hold one
    of that name. Every mistake is a ConfigError that lists the choices."""
    holders = [a for a in app.agents.values() if any(t.name == name for t in a.tables)]
    if agent is not None:
        chosen = app.agents.get(agent)
        if chosen is None:
            raise ConfigError(f"app {app.name} has no agent {agent}; agents: {', '.join(app.agents) or '-'}")
        if chosen not in holders:
            mine = ", ".join(t.name for t in chosen.tables) or "none"
            raise ConfigError(f"agent {agent} has no table {name}; its tables: {mine}")
        holders = [chosen]
    if not holders:
        raise ConfigError(f"app {app.name} has no table {name}; {_tables_of(app)}")
    if len(holders) > 1:
        raise ConfigError(
            f"table {name} is held by agents {', '.join(a.name for a in holders)}: choose one with --agent"
        )
    [holder] = holders
    return holder, next(t for t in holder.tables if t.name == name)


def _tables_of(app: App) -> str:
    held = sorted(f"{t.name} (agent {a.name})" for a in app.agents.values() for t in a.tables)
    if held:
        return f"tables: {', '.join(held)}"
    if app.tables:
        return f"tables {', '.join(sorted(app.tables))} are declared but no agent holds one (tables=[...])"
    return "it declares none"


class TableState(Generic[V]):
    """A table as its changelog held it when :func:`read_table` ran; values decode on access.

    A table is partitioned like its agent's input, and each partition is a table of its own: a key is
    usually in one partition (the partition of the messages with that key), but a handler that writes
    a key while handling messages of several partitions keeps one value of it per partition. Rows are
    therefore (key, partition) pairs.
    """

    def __init__(
        self,
        agent: Agent[Any],
        table: Table[V],
        partitions: Sequence[int],
        records: int,
        latest: dict[tuple[bytes, int], _Latest],
        decode: RecordDecoder[V],
    ) -> None:
        self.agent = agent
        self.table = table
        self.changelog = agent.changelog(table).name
        self.partitions = tuple(partitions)
        self.records = records  # changelog records read, tombstones and superseded versions included
        self._latest = latest
        self._decode = decode

    def __len__(self) -> int:
        """The number of rows."""
        return len(self._latest)

    def get(self, key: str | bytes, partition: int | None = None) -> Row[V] | None:
        """The row of ``key`` (in ``partition``), or None when there is none (never set, or deleted).

        Raises ConfigError when ``partition`` is None and several partitions hold the key."""
        raw = encode_key(key)
        assert raw is not None
        if partition is not None:
            found = self._latest.get((raw, partition))
            return None if found is None else self._row(raw, partition, found)
        holders = [p for p in self.partitions if (raw, p) in self._latest]
        if len(holders) > 1:
            raise ConfigError(
                f"key {key!r} of table {self.table.name} is in partitions {', '.join(map(str, holders))}, "
                "each with its own value: choose one with --partition"
            )
        return None if not holders else self._row(raw, holders[0], self._latest[(raw, holders[0])])

    def rows(self, limit: int | None = None) -> Iterator[Row[V]]:
        """Rows in key order, then partition order (UTF-8 byte order for text keys, which is code point
        order); at most ``limit`` of them, and only those are decoded."""
        ordered = sorted(self._latest)
        for raw, partition in ordered if limit is None else ordered[:limit]:
            yield self._row(raw, partition, self._latest[(raw, partition)])

    def _row(self, raw: bytes, partition: int, latest: _Latest) -> Row[V]:
        where = f"{self.changelog}[{partition}]@{latest.offset}"
        try:
            key = decode_key(raw, self.table.key)
            value = self._decode(latest.value)
        except DeserializationError as exc:
            raise DeserializationError(f"{where}: {exc}") from exc
        assert key is not None  # never None for bytes in: keyless records are skipped while reading
        return Row(key, value, partition, latest.offset)


def read_table(
    settings: Settings,
    registry: SchemaRegistry,
    agent: Agent[Any],
    table: Table[V],
    *,
    partitions: Iterable[int] | None = None,
    timeout: float = 300.0,
    progress: Progress | None = None,
) -> TableState[V]:
    """Read ``table`` of ``agent`` from its changelog: every partition, or only ``partitions``.

    A broker not reached within ``settings.kafka_timeout`` fails at once; the read as a whole fails
    after ``timeout`` seconds. Both raise TransportError; a changelog that does not exist (no worker
    of the agent has run yet) raises TopicError.
    """
    topic = agent.changelog(table).name
    try:
        existing = changelog_partitions(settings, topic, timeout=settings.kafka_timeout)
    except TopicError as exc:
        raise TopicError(
            f"table {table.name} has no changelog yet ({exc}): has agent {agent.name} run?"
        ) from exc
    wanted = existing if partitions is None else sorted(set(partitions))
    unknown = sorted(set(wanted) - set(existing))
    if unknown:
        raise ConfigError(
            f"{topic} has no partition {', '.join(map(str, unknown))}; its partitions are 0-{max(existing)}"
        )
    latest: dict[tuple[bytes, int], _Latest] = {}
    records = 0
    started = time.monotonic()
    reported = started
    try:
        for record in read_changelog(settings, topic, wanted, timeout=timeout):
            records += 1
            if record.key is not None:  # the worker never writes one; skipped as its restore does
                row = (record.key, record.partition)
                if record.value is None:
                    latest.pop(row, None)
                else:
                    latest[row] = _Latest(record.offset, record.value)
            if progress is not None and (now := time.monotonic()) - reported >= _PROGRESS_EVERY:
                reported = now
                progress(records, len(wanted), now - started)
    except TransportError as exc:
        raise TransportError(
            f"table {table.name}: {exc}; a large table may need a longer timeout",
            retriable=exc.retriable,
        ) from exc
    return TableState(agent, table, wanted, records, latest, RecordDecoder(registry, table.value))


__all__ = ["Progress", "Row", "TableState", "find_table", "read_table"]
