"""Where handler sends go. At-least-once sends at once and confirms delivery before the input is
committed; exactly-once holds outputs until the transaction that also commits the input's offset."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Message

from streams.headers import Headers
from streams.serde.codec import AvroEncoder, encode_key
from streams.serde.record import Record
from streams.serde.registry import SchemaRegistry, subject_for
from streams.topics import Topic
from streams.transport.async_producer import AsyncProducer
from streams.transport.records import produce_kwargs


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
    value: bytes
    key: bytes | None
    headers: Headers

    def produce_kwargs(self) -> dict[str, Any]:
        return produce_kwargs(self.value, self.key, self.headers)


class DirectOutbox:
    """Produces each send immediately; ``pending`` holds their deliveries, which the worker awaits
    before it counts the input as finished."""

    __slots__ = ("_encoders", "_producer", "pending")

    def __init__(self, producer: AsyncProducer, encoders: Encoders) -> None:
        self._producer = producer
        self._encoders = encoders
        self.pending: list[asyncio.Future[Message]] = []

    async def put(self, topic: Topic[Any], value: Record, key: str | bytes | None, headers: Headers) -> None:
        payload = self._encoders.encode(topic, value)
        self.pending.append(await self._producer.send(topic.name, payload, encode_key(key), headers))


@dataclass(slots=True)
class HeldOutbox:
    """Keeps encoded outputs in memory; the transaction loop produces them with the input's offset."""

    encoders: Encoders
    outputs: list[Output] = field(default_factory=list)

    async def put(self, topic: Topic[Any], value: Record, key: str | bytes | None, headers: Headers) -> None:
        self.outputs.append(Output(topic.name, self.encoders.encode(topic, value), encode_key(key), headers))
