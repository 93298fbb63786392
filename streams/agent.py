"""Agent declarations: a handler bound to a topic with its ordering, concurrency and delivery options."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar, get_args

from streams.context import Context, Ticker
from streams.errors import ConfigError
from streams.options import AtLeastOnce, ExactlyOnce, Guarantee, Limits
from streams.retry import NO_RETRY, Retry
from streams.runtime.lanes import Ordering
from streams.serde.record import Record
from streams.tables import Table
from streams.topics import Topic

V = TypeVar("V", bound=Record)
Handler = Callable[[V, Context], Awaitable[None]]
StartFrom = Literal["latest", "earliest"] | datetime


@dataclass(frozen=True)
class Agent(Generic[V]):
    """One agent: a consumer group named ``<app>.<name>`` running ``handler`` on every message of ``topic``.

    ``start`` applies only when the group has no committed position yet (a new agent attached to a
    running pipeline): the oldest message (``"earliest"``, the default, so nothing published before
    the agent's first start is skipped), the newest, or the first at or after a timestamp.
    ``consumer_config`` adds librdkafka consumer settings (e.g. ``session.timeout.ms``); the runtime's
    own settings win over it.

    ``priority_topics`` (a specialist's request topics, highest priority first, ``topic`` among them)
    makes the agent consume them all, starting messages of higher ones first while lower ones still
    get ``min_share`` of the starts (see :mod:`streams.runtime.lanes`). They carry ``topic``'s records.

    ``linger_ms`` is how long the agent's outputs may wait to fill a batch before they leave; None
    means the producers' default, 5 ms (none under exactly-once, whose commit sends them anyway).
    A specialist sets 0: somebody awaits each of its answers.
    """

    app: str
    name: str
    topic: Topic[V]
    handler: Handler[V]
    concurrency: int = 1
    ordering: Ordering = "key"
    guarantee: Guarantee = AtLeastOnce()
    retry: Retry = NO_RETRY
    dead_letter: bool = True
    start: StartFrom = "earliest"
    limits: Limits = Limits()
    consumer_config: Mapping[str, Any] = field(default_factory=dict)
    tables: tuple[Table[Any], ...] = ()
    ticker: Ticker | None = None  # time-driven work (workflow timers); set by App.workflow
    priority_topics: tuple[str, ...] = ()
    min_share: float = 0.0
    linger_ms: int | None = None

    def __post_init__(self) -> None:
        if (
            isinstance(self.concurrency, bool)
            or not isinstance(self.concurrency, int)
            or self.concurrency < 1
        ):
            raise ConfigError(f"agent {self.name}: concurrency must be an integer >= 1")
        if self.ordering not in get_args(Ordering):
            raise ConfigError(f"agent {self.name}: ordering must be 'key', 'partition' or 'unordered'")
        if not isinstance(self.guarantee, AtLeastOnce | ExactlyOnce):
            raise ConfigError(
                f"agent {self.name}: guarantee must be AtLeastOnce(...) or ExactlyOnce(), "
                f"not {self.guarantee!r}"
            )
        if not (isinstance(self.start, datetime) or self.start in ("latest", "earliest")):
            raise ConfigError(f"agent {self.name}: start must be 'latest', 'earliest' or a datetime")
        if self.linger_ms is not None and (
            isinstance(self.linger_ms, bool) or not isinstance(self.linger_ms, int) or self.linger_ms < 0
        ):
            raise ConfigError(f"agent {self.name}: linger_ms must be an integer >= 0 or None")
        if not isinstance(self.retry, Retry):
            raise ConfigError(f"agent {self.name}: retry must be a Retry(...), not {self.retry!r}")
        if not isinstance(self.limits, Limits):
            raise ConfigError(f"agent {self.name}: limits must be a Limits(...), not {self.limits!r}")
        names = [table.name for table in self.tables]
        if len(names) != len(set(names)):
            raise ConfigError(f"agent {self.name}: two tables named alike in {names}")
        if self.priority_topics:
            if self.topic.name not in self.priority_topics:
                raise ConfigError(f"agent {self.name}: its topic must be one of its priority topics")
            if self.tables:
                # A table's partition p lives beside input partition p; with several input topics,
                # partition p of each may belong to a different worker.
                raise ConfigError(f"agent {self.name}: an agent with priority topics cannot keep tables")

    @property
    def topics(self) -> tuple[str, ...]:
        """Every topic the agent consumes, highest priority first."""
        return self.priority_topics or (self.topic.name,)

    @property
    def group_id(self) -> str:
        return f"{self.app}.{self.name}"

    @property
    def dead_letter_topic(self) -> str:
        return f"{self.group_id}.dlq"

    @property
    def exactly_once(self) -> bool:
        return isinstance(self.guarantee, ExactlyOnce)

    @property
    def dedup(self) -> bool:
        """Whether this is an idempotent consumer (``AtLeastOnce(dedup=True)``)."""
        return isinstance(self.guarantee, AtLeastOnce) and self.guarantee.dedup

    @property
    def dedup_changelog_topic(self) -> str:
        return f"{self.group_id}.dedup-changelog"

    def changelog(self, table: Table[Any]) -> Topic[Any]:
        """The compacted topic that keeps ``table``: partitioned like the input, so partition p of the
        table lives in partition p of its changelog, next to the input it was built from."""
        return Topic(
            name=f"{self.group_id}.{table.name}-changelog",
            value=table.value,
            key=table.key,
            partitions=self.topic.partitions,
            replication=self.topic.replication,
            cleanup_policy="compact",
        )


def parse_start(text: str) -> StartFrom:
    """``earliest``, ``latest`` or an ISO 8601 time (UTC unless it names its offset) as a
    :data:`StartFrom`."""
    if text == "earliest":
        return "earliest"
    if text == "latest":
        return "latest"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"start must be 'earliest', 'latest' or an ISO 8601 time such as 2026-12-07T10:00:00Z, "
            f"not {text!r}"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


__all__ = ["Agent", "Handler", "StartFrom", "parse_start"]
