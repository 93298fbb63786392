"""Where handler sends go: encoded, then sent at once (at-least-once) or held for the transaction that
also commits the input's offset (exactly-once)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from streams.errors import TransportError
from streams.headers import Headers
from streams.serde.codec import AvroEncoder, encode_key
from streams.serde.record import Record
from streams.serde.registry import SchemaRegistry, subject_for
from streams.topics import Topic
from streams.transport.records import produce_kwargs
from streams.worker.acks import Acks


class Sender(Protocol):
    """Two-phase send (see :class:`streams.transport.async_producer.AsyncProducer`): ``await send()``
    queues the message and returns a future that resolves when the broker acknowledges it;
    ``send_reported()`` queues it and calls ``report`` (on the loop) when the broker has it, returning
    an awaitable instead when it must wait for room first."""

    async def send(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
        partition: int | None = None,
    ) -> asyncio.Future[Any]: ...

    def send_reported(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        headers: Sequence[tuple[str, bytes]] | None,
        partition: int | None,
        report: Callable[[TransportError | None], None],
    ) -> Awaitable[None] | None: ...


class Encoders:
    """One encoder per output topic, shared by every handler of a worker (schemas register once)."""

    def __init__(self, registry: SchemaRegistry) -> None:
        self._registry = registry
        self._by_topic: dict[str, AvroEncoder] = {}

    def encode(self, topic: Topic[Any], value: Record) -> bytes:
        encoder = self._by_topic.get(topic.name)
        if encoder is None:
            encoder = AvroEncoder(self._registry, subject_for(topic.name), topic.value.avro_schema())
            self._by_topic[topic.name] = encoder
        return encoder(value)


@dataclass(slots=True)
class Output:
    topic: str
    value: bytes | None
    key: bytes | None
    headers: Headers
    partition: int | None = None  # changelogs: the input's partition; None lets the partitioner choose
    # A changelog record: of several for one key before a commit, only the last matters (compaction
    # and restore keep the last), so the commit carries only that one.
    latest_only: bool = False
    # A changelog record not encoded yet: ``record`` for topic ``encode_as``, encoded only if it is the
    # one the commit carries (a window updated 20 times before a commit is encoded once).
    record: Record | None = None
    encode_as: Topic[Any] | None = None

    def encoded(self, encoders: Encoders) -> Output:
        """This output with its value encoded (itself if it is already)."""
        if self.encode_as is None or self.record is None:
            return self
        value = encoders.encode(self.encode_as, self.record)
        return Output(self.topic, value, self.key, self.headers, self.partition, self.latest_only)

    def destination(self) -> tuple[str, bytes | None, bytes | None, Headers, int | None]:
        """Topic, value, key, headers and partition, as :func:`send_counted` takes them."""
        return self.topic, self.value, self.key, self.headers, self.partition

    def produce_kwargs(self) -> dict[str, Any]:
        return produce_kwargs(self.value, self.key, self.headers, self.partition)


def send_counted(
    sender: Sender,
    acks: Acks,
    topic: str,
    value: bytes | None,
    key: bytes | None,
    headers: Headers,
    partition: int | None,
) -> Awaitable[None] | None:
    """Queue one message whose acknowledgement ``acks`` counts. None once queued (almost always at
    once: no coroutine on the hot path); else an awaitable that queues it when librdkafka's queue has
    room. A message that is never queued (the send raised) is not counted."""
    acks.expect()
    try:
        waiting = sender.send_reported(topic, value, key, headers, partition, acks.report)
    except BaseException:
        acks.withdraw()
        raise
    return None if waiting is None else _counted_when_queued(waiting, acks)


async def _counted_when_queued(waiting: Awaitable[None], acks: Acks) -> None:
    try:
        await waiting
    except BaseException:
        acks.withdraw()  # never queued: nothing to wait for
        raise


class DirectOutbox:
    """Sends each output immediately; ``acks`` counts the broker's acknowledgements, which the worker
    waits for before it counts the input as finished. Changelog records (:meth:`emit`) are held
    instead: the commit that passes the input sends the last one of each key first."""

    __slots__ = ("_encoders", "_sender", "acks", "held")

    def __init__(self, sender: Sender, encoders: Encoders, acks: Acks) -> None:
        self._sender = sender
        self._encoders = encoders
        self.acks = acks
        self.held: list[Output] = []

    async def put(
        self,
        topic: Topic[Any],
        value: Record,
        key: str | bytes | None,
        headers: Headers,
        partition: int | None = None,
    ) -> None:
        payload = self._encoders.encode(topic, value)
        waiting = send_counted(
            self._sender, self.acks, topic.name, payload, encode_key(key), headers, partition
        )
        if waiting is not None:
            await waiting

    async def put_encoded(self, output: Output) -> None:
        """Send an output encoded already (a dead letter)."""
        waiting = send_counted(self._sender, self.acks, *output.destination())
        if waiting is not None:
            await waiting

    def emit(self, output: Output) -> None:
        """Hold a changelog record for the commit (see the class)."""
        self.held.append(output)


@dataclass(slots=True)
class HeldOutbox:
    """Keeps encoded outputs in memory; the transaction produces them with the input's offset."""

    encoders: Encoders
    outputs: list[Output] = field(default_factory=list)

    async def put(
        self,
        topic: Topic[Any],
        value: Record,
        key: str | bytes | None,
        headers: Headers,
        partition: int | None = None,
    ) -> None:
        encoded = self.encoders.encode(topic, value)
        self.outputs.append(Output(topic.name, encoded, encode_key(key), headers, partition))

    def emit(self, output: Output) -> None:
        """Hold a changelog record (encoded, or to encode at the commit)."""
        self.outputs.append(output)
