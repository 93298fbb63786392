"""Table declarations: keyed state an agent keeps beside its input, partitioned like it.

A :class:`Table` is plain data, like a :class:`~streams.topics.Topic`. Give it to an agent
(``@app.agent(topic, tables=[counts])``) and read or change it from the handler with
``ctx.table(counts)``; the worker keeps it in a local store and in the compacted changelog topic
``<app>.<agent>.<table>-changelog``, restored on assignment before the partition's first message.

``store`` says where the worker keeps it: ``"memory"`` (a dict; restored from the whole changelog at
every assignment) or ``"rocksdb"`` (on disk under ``STREAMS_STATE_DIR``, for state larger than memory,
resuming from a local checkpoint when the database survived).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar, get_args

from streams.errors import ConfigError
from streams.serde.record import Record

V = TypeVar("V", bound=Record)

StoreKind = Literal["memory", "rocksdb"]

_LEGAL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,100}$")


@dataclass(frozen=True)
class Table(Generic[V]):
    """A table of ``value`` records by key (``str`` or ``bytes``)."""

    name: str
    value: type[V]
    key: type[str] | type[bytes] = str
    store: StoreKind = "memory"

    def __post_init__(self) -> None:
        if not _LEGAL_NAME.match(self.name):
            raise ConfigError(f"illegal table name {self.name!r}: use letters, digits, '_' and '-'")
        if not (isinstance(self.value, type) and issubclass(self.value, Record)):
            raise ConfigError(f"table {self.name}: value must be a Record subclass, not {self.value!r}")
        if self.key not in (str, bytes):
            raise ConfigError(f"table {self.name}: key must be str or bytes")
        if self.store not in get_args(StoreKind):
            raise ConfigError(f"table {self.name}: store must be 'memory' or 'rocksdb', not {self.store!r}")
