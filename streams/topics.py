"""Topic declarations: name, key and value types, and the broker-side settings a topic should have.

A :class:`Topic` is plain data; :mod:`streams.admin` makes the cluster match it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar

from streams.errors import ConfigError
from streams.serde.record import Record
from streams.serde.registry import subject_for

V = TypeVar("V", bound=Record)
CleanupPolicy = Literal["delete", "compact", "compact,delete"]

_LEGAL_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


@dataclass(frozen=True)
class Topic(Generic[V]):
    """A typed topic. ``replication=None`` means min(3, number of brokers)."""

    name: str
    value: type[V]
    key: type[str] | type[bytes] | None = str
    partitions: int = 6
    replication: int | None = None
    cleanup_policy: CleanupPolicy = "delete"
    retention_ms: int | None = None
    config: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _LEGAL_NAME.match(self.name) or self.name in {".", ".."}:
            raise ConfigError(
                f"illegal topic name {self.name!r}: use 1-249 characters of letters, digits, '.', '_', '-'"
            )
        if not (isinstance(self.value, type) and issubclass(self.value, Record)):
            raise ConfigError(f"topic {self.name}: value must be a Record subclass, not {self.value!r}")
        if self.key not in (str, bytes, None):
            raise ConfigError(f"topic {self.name}: key must be str, bytes or None")
        if self.partitions < 1:
            raise ConfigError(f"topic {self.name}: partitions must be >= 1")
        if self.replication is not None and self.replication < 1:
            raise ConfigError(f"topic {self.name}: replication must be >= 1")
        if self.retention_ms is not None and self.retention_ms < -1:
            raise ConfigError(f"topic {self.name}: retention_ms must be -1 (forever) or positive")

    @property
    def value_subject(self) -> str:
        return subject_for(self.name)

    def broker_config(self) -> dict[str, str]:
        """Topic-level broker settings this declaration pins (others stay at broker defaults)."""
        conf: dict[str, str] = {"cleanup.policy": self.cleanup_policy}
        if self.retention_ms is not None:
            conf["retention.ms"] = str(self.retention_ms)
        conf.update(self.config)
        return conf
