"""The application object: a name, the topics it declares and the agents that consume them."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from streams.agent import Agent, Handler, StartFrom
from streams.config import Settings
from streams.errors import ConfigError
from streams.middleware import Middleware
from streams.options import AtLeastOnce, Guarantee, Limits
from streams.retry import NO_RETRY, Retry
from streams.runtime.lanes import Ordering
from streams.serde.record import Record
from streams.tables import StoreKind, Table
from streams.topics import CleanupPolicy, Topic

V = TypeVar("V", bound=Record)


class App:
    """A named set of topic declarations sharing one :class:`Settings`."""

    def __init__(
        self, name: str, settings: Settings | None = None, middleware: Sequence[Middleware] = ()
    ) -> None:
        if not name or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise ConfigError(f"illegal app name {name!r}: use letters, digits, '.', '_', '-'")
        self.name = name
        self.settings = settings or Settings()
        self.topics: dict[str, Topic[Any]] = {}
        self.agents: dict[str, Agent[Any]] = {}
        self.tables: dict[str, Table[Any]] = {}
        self.middleware: list[Middleware] = list(middleware)

    def topic(
        self,
        name: str,
        *,
        value: type[V],
        key: type[str] | type[bytes] | None = str,
        partitions: int = 6,
        replication: int | None = None,
        cleanup_policy: CleanupPolicy = "delete",
        retention_ms: int | None = None,
        config: Mapping[str, str] | None = None,
    ) -> Topic[V]:
        """Declare a typed topic (see :class:`Topic`); declaring the same name twice must declare the
        same topic."""
        declared = Topic(
            name=name,
            value=value,
            key=key,
            partitions=partitions,
            replication=replication,
            cleanup_policy=cleanup_policy,
            retention_ms=retention_ms,
            config=dict(config or {}),
        )
        existing = self.topics.get(name)
        if existing is not None and existing != declared:
            raise ConfigError(f"topic {name} is declared twice with different settings")
        self.topics[name] = declared
        return declared

    def table(
        self,
        name: str,
        *,
        value: type[V],
        key: type[str] | type[bytes] = str,
        store: StoreKind = "memory",
    ) -> Table[V]:
        """Declare a table of ``value`` records by ``key``; give it to an agent with ``tables=[...]``.
        ``store="rocksdb"`` keeps it on disk (``STREAMS_STATE_DIR``) instead of in memory."""
        declared = Table(name=name, value=value, key=key, store=store)
        existing = self.tables.get(name)
        if existing is not None and existing != declared:
            raise ConfigError(f"table {name} is declared twice with different settings")
        self.tables[name] = declared
        return declared

    def agent(
        self,
        topic: Topic[V],
        *,
        name: str | None = None,
        concurrency: int = 1,
        ordering: Ordering = "key",
        guarantee: Guarantee = AtLeastOnce(),
        retry: Retry = NO_RETRY,
        dead_letter: bool = True,
        start: StartFrom = "earliest",
        limits: Limits = Limits(),
        consumer_config: Mapping[str, Any] | None = None,
        tables: Sequence[Table[Any]] = (),
    ) -> Callable[[Handler[V]], Handler[V]]:
        """Register an async handler as an agent of ``topic``, in consumer group ``<app>.<name>``.

        ``concurrency`` handlers run at once, one at a time per key (``ordering="key"``), per partition
        or unordered; ``guarantee`` is :class:`AtLeastOnce` (optionally ``dedup=True``) or
        :class:`ExactlyOnce`; failures are retried per ``retry`` and then dead-lettered to
        ``<app>.<name>.dlq`` (or stop the worker with ``dead_letter=False``). See :class:`Agent` for
        ``start``, :class:`Limits` for ``limits``; ``tables`` are the keyed state its handler keeps
        (``ctx.table(t)``). The decorated function is returned unchanged, so
        it stays directly callable in unit tests.
        """
        if topic.name not in self.topics:
            raise ConfigError(f"topic {topic.name} is not declared by app {self.name}; use app.topic() first")

        def register(handler: Handler[V]) -> Handler[V]:
            agent_name = name or handler.__name__
            if agent_name in self.agents:
                raise ConfigError(f"app {self.name} already has an agent named {agent_name}")
            self.agents[agent_name] = Agent(
                app=self.name,
                name=agent_name,
                topic=topic,
                handler=handler,
                concurrency=concurrency,
                ordering=ordering,
                guarantee=guarantee,
                retry=retry,
                dead_letter=dead_letter,
                start=start,
                limits=limits,
                consumer_config=dict(consumer_config or {}),
                tables=tuple(tables),
            )
            return handler

        return register
