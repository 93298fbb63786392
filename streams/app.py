"""The application object: a name, the topics it declares and the agents that consume them."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any, TypeVar

from streams.agent import Agent, Handler, StartFrom
from streams.config import Settings
from streams.errors import ConfigError
from streams.events import WorkflowEvent
from streams.handoffs import Handoffs
from streams.middleware import Middleware
from streams.options import AtLeastOnce, ExactlyOnce, Guarantee, Limits
from streams.priorities import PRIORITIES, Priorities
from streams.retry import NO_RETRY, Retry
from streams.routing import Routing
from streams.runtime.lanes import Ordering
from streams.serde.record import Record
from streams.specialists import (
    Pool,
    Specialist,
    SpecialistFunction,
    SpecialistHandler,
    lane_topic_name,
    with_pool,
)
from streams.tables import StoreKind, Table
from streams.topics import CleanupPolicy, Topic
from streams.windows.aggregation import Emit, EventTime, Late, WindowedAggregation
from streams.windows.kinds import Merger, Reducer
from streams.windows.spec import WindowSpec
from streams.workflows.breaker import BREAKERS, Breaker
from streams.workflows.cache import CACHE
from streams.workflows.engine import JOURNAL, WorkflowDefinition, WorkflowEngine
from streams.workflows.replay import WorkflowFunction
from streams.workflows.timers import TimerTicker

V = TypeVar("V", bound=Record)
A = TypeVar("A", bound=Record)
Out = TypeVar("Out", bound=Record)


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
        self.specialists: dict[str, Specialist[Any, Any]] = {}
        self.workflows: dict[str, WorkflowDefinition] = {}
        self.breakers: dict[str, Breaker] = {}
        self.routing = Routing()  # which pool each call goes to; its load source is set at run time
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

    def windowed(
        self,
        topic: Topic[V],
        window: WindowSpec,
        *,
        into: Topic[A],
        emit: Emit = "final",
        merge: Merger[A] | None = None,
        timestamp: EventTime | None = None,
        late: Late = "count",
        store: StoreKind = "memory",
        name: str | None = None,
        concurrency: int = 1,
        guarantee: Guarantee = AtLeastOnce(),
        dead_letter: bool = True,
        start: StartFrom = "earliest",
        limits: Limits = Limits(),
        consumer_config: Mapping[str, Any] | None = None,
    ) -> Callable[[Reducer[A]], Reducer[A]]:
        """Register ``reduce(window, current, event) -> aggregate`` as an agent that aggregates
        ``topic`` per key in event-time ``window``s (:class:`~streams.windows.Tumbling`,
        :class:`~streams.windows.Hopping`, :class:`~streams.windows.Sliding` or
        :class:`~streams.windows.Session`, which also needs ``merge(window, earlier, later)``) and sends
        the aggregates, ``into``'s record type, to ``into`` under the input's key.

        ``emit="final"`` sends each window once, when stream time (the partition's highest event time)
        passes its end plus grace; ``"update"`` sends it after every record. Event time is
        ``timestamp(event)`` (a datetime or epoch ms), else the Kafka record's timestamp. A record whose
        windows have all closed is late: counted (``streams_late_records``) and, with
        ``late="dead-letter"``, dead-lettered. Window state lives in the agent's tables ``windows`` and
        ``stream-time``, so the agent's ``guarantee`` covers it: with :class:`ExactlyOnce` each window's
        final result is sent exactly once; ``store="rocksdb"`` keeps the windows on disk. Records of
        one partition are handled in order.
        """
        if into.name not in self.topics:
            raise ConfigError(f"topic {into.name} is not declared by app {self.name}; use app.topic() first")

        def register(reduce: Reducer[A]) -> Reducer[A]:
            handler = WindowedAggregation(
                source=topic,
                spec=window,
                into=into,
                emit=emit,
                merge=merge,
                timestamp=timestamp,
                late=late,
                reduce=reduce,
                store=store,
            )
            self.agent(
                topic,
                name=name or reduce.__name__,
                concurrency=concurrency,
                ordering="partition",  # closing a window may emit another key's result
                guarantee=guarantee,
                dead_letter=dead_letter,
                start=start,
                limits=limits,
                consumer_config=consumer_config,
                tables=handler.tables,
            )(handler)
            return reduce

        return register

    def specialist(
        self,
        capability: str,
        *,
        input: type[V],
        output: type[Out],
        partitions: int = 6,
        name: str | None = None,
        concurrency: int = 1,
        ordering: Ordering = "key",
        guarantee: Guarantee = AtLeastOnce(),
        retry: Retry = NO_RETRY,
        limits: Limits = Limits(),
        priorities: Priorities = Priorities(),
        pool: str | None = None,
    ) -> Callable[[SpecialistFunction[V, Out]], SpecialistFunction[V, Out]]:
        """Register ``async def f(request: input, ctx) -> output`` as the specialist for ``capability``.

        It consumes ``<app>.<capability>.requests`` (``input`` records, of priority ``normal``) and
        ``<app>.<capability>.requests.{critical,high,low}`` as consumer group ``<app>.<name>``
        (``name`` defaults to the capability), starting higher priorities first as ``priorities``
        says, and answers each request that names a reply topic with a
        :class:`~streams.events.WorkflowEvent`: the output, or the error left after ``retry``; or it
        returns a :class:`~streams.handoffs.Handoff` to pass the request on to another capability,
        whose answer goes to the caller. Call it with :class:`streams.Client` (or ``TestApp.call``).
        The other options are an agent's.

        ``pool`` adds one more pool of workers for the capability (same ``input`` and ``output``),
        with topics ``<app>.<capability>.<pool>.requests[.<priority>]`` and group
        ``<app>.<capability>.<pool>`` by default; each call goes to the pool with the least load
        (:mod:`streams.routing`).
        """
        if not capability or not capability.replace("-", "").replace("_", "").isalnum():
            raise ConfigError(f"illegal capability {capability!r}: use letters, digits, '_' and '-'")
        if pool is not None and (not pool or not pool.replace("-", "").replace("_", "").isalnum()):
            raise ConfigError(f"illegal pool {pool!r}: use letters, digits, '_' and '-'")
        existing = self.specialists.get(capability)
        if existing is not None and pool in existing.pools:
            where = "" if pool is None else f" in pool {pool}"
            raise ConfigError(f"app {self.name} already has a specialist for {capability}{where}")
        if not isinstance(priorities, Priorities):
            raise ConfigError(f"specialist {capability}: priorities must be a Priorities(...)")
        requests_name = f"{self.name}.{capability}" + ("" if pool is None else f".{pool}") + ".requests"
        lanes = {
            priority: self.topic(lane_topic_name(requests_name, priority), value=input, partitions=partitions)
            for priority in PRIORITIES
        }
        requests = lanes["normal"]
        agent_name = name or (capability if pool is None else f"{capability}.{pool}")
        served = Pool(pool, f"{self.name}.{agent_name}", lanes)
        specialist = with_pool(existing, capability, served, output, self.replies_topic())

        def register(function: SpecialistFunction[V, Out]) -> SpecialistFunction[V, Out]:
            self.agent(
                requests,
                name=agent_name,
                concurrency=concurrency,
                ordering=ordering,
                guarantee=guarantee,
                retry=retry,
                limits=limits,
            )(
                SpecialistHandler(
                    specialist,
                    function,
                    retry,
                    Handoffs(self.specialists, self.settings.streams_max_hops, self.routing),
                )
            )
            self.agents[agent_name] = dataclasses.replace(
                self.agents[agent_name],
                priority_topics=tuple(lane.name for lane in lanes.values()),
                min_share=priorities.min_share,
                # A caller awaits every answer, so a batch waiting to fill only delays each call: at
                # least once, a one-at-a-time three-step workflow took 44 ms with the 5 ms linger
                # and 27 without (exactly-once producers never linger).
                linger_ms=0,
            )
            self.specialists[capability] = with_pool(
                self.specialists.get(capability), capability, served, output, self.replies_topic()
            )
            return function

        return register

    def replies_topic(self) -> Topic[WorkflowEvent]:
        """``<app>.replies``: where this app's callers receive their answers."""
        return self.topic(f"{self.name}.replies", value=WorkflowEvent, partitions=6)

    def workflow(
        self,
        *,
        input: type[V],
        output: type[Out],
        name: str | None = None,
        partitions: int = 6,
        concurrency: int = 64,
        limits: Limits = Limits(),
        deadline: float | timedelta | None = None,
    ) -> Callable[[WorkflowFunction], WorkflowFunction]:
        """Register ``async def f(value: input, wf: Workflow) -> output`` as a durable workflow.

        Its events (started, each step's answer, its end) go to ``<app>.<name>.events`` keyed by
        workflow id; an exactly-once engine agent named ``name`` (the function's name by default) keeps
        each workflow's journal in its table ``journal`` and runs the code against it on every event.
        Start one with :meth:`streams.Client.start` (or ``TestApp.start``). ``concurrency`` workflows
        advance at once, each one event at a time.

        ``deadline`` (seconds or a timedelta from the start) bounds every step: a call, child or
        signal not answered by then raises :class:`~streams.errors.CallTimeout` in the code, which may
        handle it; the deadline travels with each request, so no specialist starts one past it.
        """

        def register(function: WorkflowFunction) -> WorkflowFunction:
            workflow_name = name or function.__name__
            if workflow_name in self.workflows:
                raise ConfigError(f"app {self.name} already has a workflow named {workflow_name}")
            events = self.topic(
                f"{self.name}.{workflow_name}.events", value=WorkflowEvent, partitions=partitions
            )
            definition = WorkflowDefinition(
                workflow_name,
                input,
                output,
                function,
                events,
                deadline
                if deadline is None or isinstance(deadline, timedelta)
                else timedelta(seconds=deadline),
            )
            self.agent(
                events,
                name=workflow_name,
                concurrency=concurrency,
                ordering="key",
                guarantee=ExactlyOnce(),
                limits=limits,
                tables=[JOURNAL, CACHE, BREAKERS],
            )(WorkflowEngine(definition, self.specialists, self.workflows, self.breakers, self.routing))
            engine = self.agents[workflow_name]
            ticker = TimerTicker(JOURNAL, events, sender=engine.group_id)
            self.agents[workflow_name] = dataclasses.replace(engine, ticker=ticker)
            self.workflows[workflow_name] = definition
            return function

        return register

    def breaker(self, capability: str, policy: Breaker) -> None:
        """Guard every call this app's workflows make to ``capability`` with a circuit breaker: after
        ``policy.failures`` failures or timeouts within ``policy.within`` it opens, and calls go to
        ``policy.fallback`` (a capability taking and returning the same records) or fail at once with
        :class:`~streams.errors.CircuitOpen`, until a trial call after ``policy.cool_down`` succeeds.

        Every partition of every workflow engine keeps a copy of the breaker in its table
        ``breakers``, told of the others' changes by events (see :mod:`streams.workflows.breaker`).
        Declare it before or after the specialists and workflows; compensations are never kept from
        their capability."""
        if not isinstance(policy, Breaker):
            raise ConfigError(f"breaker of {capability}: policy must be a Breaker, not {policy!r}")
        if policy.fallback == capability:
            raise ConfigError(f"breaker of {capability}: a capability cannot be its own fallback")
        existing = self.breakers.get(capability)
        if existing is not None and existing != policy:
            raise ConfigError(f"app {self.name} already has a different breaker for {capability}")
        self.breakers[capability] = policy
