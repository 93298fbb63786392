"""Agent declarations: a handler bound to a topic with its ordering, concurrency and delivery options."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from streams.context import Context
from streams.errors import ConfigError
from streams.retry import NO_RETRY, Retry
from streams.runtime.lanes import Ordering
from streams.serde.record import Record
from streams.topics import Topic

V = TypeVar("V", bound=Record)
Guarantee = Literal["at_least_once", "exactly_once"]
Handler = Callable[[V, Context], Awaitable[None]]
StartFrom = Literal["latest", "earliest"] | datetime


@dataclass(frozen=True)
class Agent(Generic[V]):
    """One agent: a consumer group named ``<app>.<name>`` running ``handler`` on every message of ``topic``.

    ``start`` applies only when the group has no committed position yet (a new agent attached to a
    running pipeline): the oldest message (``"earliest"``, the default, so nothing published before
    the agent's first start is skipped), the newest, or the first at or after a timestamp.
    ``max_in_flight`` and ``max_bytes`` bound what a worker holds (received, not yet finished); above
    them it pauses its partitions and resumes below half; it can overshoot by one fetch (at most
    ``max_in_flight`` or 500 messages, whichever is smaller). ``consumer_config`` adds librdkafka consumer
    settings (e.g. ``session.timeout.ms``); the runtime's own settings win over it.

    ``dedup=True`` (at-least-once only) makes the agent an idempotent consumer: ids of handled
    messages are kept in a changelog topic and a redelivered message is skipped (see
    :mod:`streams.worker.dedup` for the one gap that remains).
    """

    app: str
    name: str
    topic: Topic[V]
    handler: Handler[V]
    concurrency: int = 1
    ordering: Ordering = "key"
    guarantee: Guarantee = "at_least_once"
    retry: Retry = NO_RETRY
    dead_letter: bool = True
    start: StartFrom = "earliest"
    max_in_flight: int = 10_000
    max_bytes: int = 64 * 1024 * 1024
    drain_timeout: float = 30.0
    dedup: bool = False
    consumer_config: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ConfigError(f"agent {self.name}: concurrency must be >= 1")
        if self.ordering not in ("key", "partition", "unordered"):
            raise ConfigError(f"agent {self.name}: ordering must be 'key', 'partition' or 'unordered'")
        if self.guarantee not in ("at_least_once", "exactly_once"):
            raise ConfigError(f"agent {self.name}: guarantee must be 'at_least_once' or 'exactly_once'")
        if not (isinstance(self.start, datetime) or self.start in ("latest", "earliest")):
            raise ConfigError(f"agent {self.name}: start must be 'latest', 'earliest' or a datetime")
        if self.dedup and self.guarantee == "exactly_once":
            raise ConfigError(
                f"agent {self.name}: dedup is for at_least_once agents; exactly_once needs no dedup store"
            )
        if self.max_in_flight < 1 or self.max_bytes < 1:
            raise ConfigError(f"agent {self.name}: max_in_flight and max_bytes must be >= 1")

    @property
    def group_id(self) -> str:
        return f"{self.app}.{self.name}"

    @property
    def dead_letter_topic(self) -> str:
        return f"{self.group_id}.dlq"

    @property
    def dedup_changelog_topic(self) -> str:
        return f"{self.group_id}.dedup-changelog"


def agent_options(**options: Any) -> dict[str, Any]:
    """Reject misspelt options with the list of valid ones (a TypeError from a dataclass is cryptic)."""
    valid = set(Agent.__dataclass_fields__) - {"app", "name", "topic", "handler"}
    unknown = sorted(set(options) - valid)
    if unknown:
        raise ConfigError(f"unknown agent option(s) {', '.join(unknown)}; valid: {', '.join(sorted(valid))}")
    return options


__all__ = ["NO_RETRY", "Agent", "Guarantee", "Handler", "Retry", "StartFrom"]
