"""Typed records carried inside other records (a reply's output, a workflow step's input): each in
the Confluent wire format, so the bytes name their own schema and any reader can decode them.

The subject is the record's full name (Confluent's RecordNameStrategy): a payload belongs to no topic,
and one record type keeps one compatibility history wherever it travels.
"""

from __future__ import annotations

from typing import Any, TypeVar

from streams.serde import schema as avro_schema
from streams.serde.codec import AvroEncoder, RecordDecoder
from streams.serde.record import Record
from streams.serde.registry import SchemaRegistry

R = TypeVar("R", bound=Record)


class Payloads:
    """Encodes and decodes nested records; one encoder and decoder per type, shared by every call."""

    def __init__(self, registry: SchemaRegistry) -> None:
        self._registry = registry
        self._encoders: dict[type[Record], AvroEncoder] = {}
        self._decoders: dict[type[Record], RecordDecoder[Any]] = {}

    def encode(self, value: Record) -> bytes:
        kind = type(value)
        encoder = self._encoders.get(kind)
        if encoder is None:
            schema = kind.avro_schema()
            subject = avro_schema.full_name(schema)
            encoder = self._encoders[kind] = AvroEncoder(self._registry, subject, schema)
        return encoder(value)

    def decode(self, data: bytes, model: type[R]) -> R:
        decoder = self._decoders.get(model)
        if decoder is None:
            decoder = self._decoders[model] = RecordDecoder(self._registry, model)
        value: R = decoder(data)
        return value
