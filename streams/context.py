"""The handler's view of one message, and its way to send what it produces."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from streams import headers as hdr
from streams.errors import ConfigError
from streams.serde.payloads import Payloads
from streams.serde.record import Record
from streams.state.view import TableView
from streams.tables import Table

if TYPE_CHECKING:
    from streams.topics import Topic

V = TypeVar("V", bound=Record)

_SAME_KEY: Any = object()


class Outbox(Protocol):
    """Where a handler's sends go: straight to Kafka, or held for a transaction (exactly-once)."""

    async def put(
        self,
        topic: Topic[Any],
        value: Record,
        key: str | bytes | None,
        headers: hdr.Headers,
        partition: int | None = None,
    ) -> None: ...


Clock = Callable[[], int]
"""The time now in epoch milliseconds."""

TableOpener = Callable[[Table[Any], int], TableView[Any]]
"""Opens one partition of a table for one handler call (bound by the worker to the agent's stores)."""

SendHook = Callable[["Context", str, hdr.Headers], hdr.Headers]
"""Called on every send with the headers about to go out; returns the headers to send (middleware's
``on_send``, bound by the worker, so this module needs nothing of middleware)."""


TickSend = Callable[["Topic[Any]", Record, str | bytes | None], Awaitable[None]]
"""Sends one record outside any transaction and returns once the broker has it (for timer events,
which their consumer must treat as repeatable)."""


@dataclass(frozen=True, slots=True)
class Tick:
    """What one call of a ticker sees: the worker's clock, the input partitions it owns and, of
    those, the ones ``caught_up`` (every record in them handled as of now; one that is not holds
    records still to handle, a backlog after a restart or rebalance, or load, so its tables may not
    show its latest records yet), the tables, and a send outside any transaction."""

    now_ms: int
    partitions: list[int]
    caught_up: AbstractSet[int]
    open_table: TableOpener
    send: TickSend


class Ticker(Protocol):
    """Time-driven work beside an agent's handler (timers coming due): the worker calls :meth:`tick`
    every ``interval`` seconds, on the loop its handlers run on."""

    interval: float

    async def tick(self, tick: Tick) -> None: ...


class Context:
    """Metadata of the message being handled, and :meth:`send` for results.

    Everything sent inherits the message's correlation id, records it as the cause, and keeps its key
    unless another is given, so a multi-stage run stays traceable and per-key order carries over.
    """

    __slots__ = (
        "_clock",
        "_on_send",
        "_open_table",
        "_outbox",
        "_payloads",
        "_propagate_trace",
        "_sent",
        "_views",
        "agent",
        "attempt",
        "correlation_id",
        "deadline_ms",
        "headers",
        "key",
        "message_id",
        "offset",
        "partition",
        "timestamp_ms",
        "topic",
    )

    def __init__(
        self,
        *,
        agent: str,
        topic: str,
        partition: int,
        offset: int,
        key: str | bytes | None,
        headers: dict[str, str],
        timestamp_ms: int,
        attempt: int,
        outbox: Outbox,
        on_send: SendHook | None = None,
        open_table: TableOpener | None = None,
        payloads: Payloads | None = None,
        propagate_trace: bool = True,
        clock: Clock | None = None,
        message_id: str | None = None,
    ) -> None:
        self.agent = agent
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.key = key
        self.headers = headers
        self.timestamp_ms = timestamp_ms
        self.attempt = attempt
        # Messages from other clients carry no message-id header; their position names them instead,
        # so dedup, derived output ids and causation all hang off one stable id.
        # (``message_id``: the same, worked out already by the caller.)
        self.message_id = message_id or hdr.message_identity(headers, topic, partition, offset)
        self.correlation_id = headers.get(hdr.CORRELATION_ID) or self.message_id
        # The deadline of the work this message is part of: every send carries it on (a handler that
        # sends on behalf of several pieces of work, as the workflow engine does, clears it).
        self.deadline_ms = hdr.deadline_of(headers)
        self._outbox = outbox
        self._on_send = on_send
        self._open_table = open_table
        self._payloads = payloads
        self._views: dict[str, TableView[Any]] | None = None  # made on first use: most calls open none
        self._propagate_trace = propagate_trace
        self._clock = clock
        self._sent = 0

    def now_ms(self) -> int:
        """The time now, in epoch milliseconds: the wall clock, or the in-memory twin's fake clock, so
        time-based decisions (a deadline that has passed) are testable without waiting."""
        return self._clock() if self._clock is not None else int(time.time() * 1000)

    def table(self, table: Table[V]) -> TableView[V]:
        """This message's partition of ``table``, one of the agent's ``tables``. Writes are kept only if
        the handler succeeds; then they reach the table and its changelog with the message's outputs."""
        if self._views is None:
            self._views = {}
        view = self._views.get(table.name)
        if view is None:
            if self._open_table is None:
                raise ConfigError(
                    f"agent {self.agent} has no table {table.name}; list it in @app.agent(tables=[...])"
                )
            view = self._views[table.name] = self._open_table(table, self.partition)
        return view

    @property
    def payloads(self) -> Payloads:
        """Encodes and decodes records carried inside other records (wire format, schema id first)."""
        if self._payloads is None:
            raise ConfigError("this context has no schema registry to encode nested records with")
        return self._payloads

    def opened_tables(self) -> list[TableView[Any]]:
        """The tables this call opened (the worker applies and logs their writes on success)."""
        return list(self._views.values()) if self._views else []

    async def send(
        self,
        topic: Topic[V],
        value: V,
        *,
        key: str | bytes | None = _SAME_KEY,
        message_id: str | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
        partition: int | None = None,
    ) -> None:
        """Send ``value`` to ``topic``. Returns once queued; the runtime confirms delivery before it
        commits the input message, so an acknowledged input never loses its outputs.

        ``message_id`` names the output when its id must be known beforehand (a request whose answer
        will cite it); it must be the same each time this message is handled, as the derived default
        is. ``headers`` are added to the identity and trace headers. ``partition`` sends it to that
        partition rather than the key's (to reach every partition of a topic, one send each)."""
        if not isinstance(value, topic.value):
            raise TypeError(f"{topic.name} takes {topic.value.__name__}, not {type(value).__name__}")
        out_key = self.key if key is _SAME_KEY else key
        child_id = message_id or hdr.derived_id(self.message_id, self.agent, self._sent)
        self._sent += 1
        out_headers = hdr.child_headers(self.message_id, self.correlation_id, child_id)
        out_headers.append((hdr.SENT_BY, self.agent.encode()))
        out_headers += headers
        if self.deadline_ms is not None and not any(name == hdr.DEADLINE for name, _ in headers):
            out_headers.append(hdr.deadline_header(self.deadline_ms))
        if self._propagate_trace:
            # W3C trace context flows from input to output; a tracing middleware replaces it with
            # its producer span's context when spans are being recorded.
            for name in (hdr.TRACEPARENT, hdr.TRACESTATE):
                trace_value = self.headers.get(name)
                if trace_value:
                    out_headers.append((name, trace_value.encode()))
        if self._on_send is not None:
            out_headers = self._on_send(self, topic.name, out_headers)
        await self._outbox.put(topic, value, out_key, out_headers, partition)
