"""Encode and decode message keys and values for one topic.

Values are Avro records in the Confluent wire format. Keys are ``str`` (UTF-8), ``bytes`` (as is) or
absent; Avro keys are not supported yet. Schemas are registered once per encoder and writer schemas
are fetched once per id, so the per-message cost is the Avro codec alone.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Generic, TypeVar

import fastavro
from fastavro.validation import ValidationError, validate

from streams.errors import DeserializationError, SchemaError, SerializationError
from streams.serde import schema as avro_schema
from streams.serde.compiled import Decoder, Encoder, compile_decoder, compile_encoder
from streams.serde.record import Record
from streams.serde.registry import SchemaRegistry
from streams.serde.wire import HEADER_SIZE, header, schema_id_of

KeyType = type[str] | type[bytes] | None
R = TypeVar("R", bound=Record)


def encode_key(key: str | bytes | None) -> bytes | None:
    if key is None or isinstance(key, bytes):
        return key
    if isinstance(key, str):
        return key.encode("utf-8")
    raise SerializationError(f"keys must be str, bytes or None, not {type(key).__name__}")


def decode_key(data: bytes | None, key_type: KeyType) -> str | bytes | None:
    if data is None or key_type is bytes:
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DeserializationError(f"key is not UTF-8 text: {exc}") from exc


# Generating the code for a schema takes milliseconds: once per schema and process, however many
# encoders and decoders (one per topic, test app or CLI call) use it.
@lru_cache(maxsize=1024)
def _encoder_for(schema_text: str) -> Encoder | None:
    return compile_encoder(avro_schema.parse_text(schema_text))


@lru_cache(maxsize=1024)
def _decoder_for(schema_text: str) -> Decoder | None:
    return compile_decoder(avro_schema.parse_text(schema_text))


class AvroEncoder:
    """Encodes values of one schema for one subject; registers the schema on first use."""

    def __init__(self, registry: SchemaRegistry, subject: str, schema: avro_schema.SchemaJSON) -> None:
        self._registry = registry
        self.subject = subject
        self.schema = schema
        self._parsed = avro_schema.parse(schema)
        self._compiled = _encoder_for(avro_schema.canonical_text(schema))  # None: fastavro encodes it
        self.name = avro_schema.full_name(schema)
        self._schema_id: int | None = None
        self._header = b""  # the wire format's prefix, once the schema id is known

    @property
    def schema_id(self) -> int:
        if self._schema_id is None:
            self._schema_id = self._registry.register(self.subject, self.schema)
        return self._schema_id

    def validate(self, value: Mapping[str, Any]) -> None:
        """Raise SerializationError naming the offending field when ``value`` does not fit the schema."""
        if not isinstance(value, Mapping):
            raise SerializationError(f"expected a JSON object for {self.name}, got {type(value).__name__}")
        fields = {f["name"]: f for f in self.schema["fields"]}
        unknown = sorted(set(value) - set(fields))
        if unknown:
            raise SerializationError(
                f"{self.name} has no field {', '.join(unknown)}; fields are: {', '.join(fields)}"
            )
        missing = [name for name, f in fields.items() if name not in value and "default" not in f]
        if missing:
            raise SerializationError(f"{self.name} is missing required field {', '.join(missing)}")
        try:
            validate(value, self._parsed, raise_errors=True, strict=True)
        except ValidationError as exc:
            raise SerializationError(_one_line(exc)) from exc

    def __call__(self, value: Record | Mapping[str, Any]) -> bytes:
        if isinstance(value, Record):
            datum: Mapping[str, Any] = value.to_avro()
        else:
            # Plain mappings come from users (CLI, JSON files): check them field by field first.
            self.validate(value)
            datum = value
        try:
            if self._compiled is not None:
                body = self._compiled(datum)
            else:
                buffer = io.BytesIO()
                fastavro.schemaless_writer(buffer, self._parsed, datum)
                body = buffer.getvalue()
        # OverflowError: an int beyond Avro's int/long range, which Python's ints allow; struct.error:
        # a float field given something else.
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError, struct.error) as exc:
            raise SerializationError(f"value does not match schema {self.name}: {exc}") from exc
        if not self._header:
            self._header = header(self.schema_id)
        return self._header + body


class AvroDecoder:
    """Decodes wire-format values; with a reader schema, old and new writer versions both resolve to it."""

    def __init__(self, registry: SchemaRegistry, reader: avro_schema.SchemaJSON | None = None) -> None:
        self._registry = registry
        self._reader_text = avro_schema.canonical_text(reader) if reader is not None else None
        self._reader = avro_schema.parse(reader) if reader is not None else None
        self._writers: dict[int, Any] = {}
        # Per writer schema id: a generated decoder when that writer is the reader (or there is no
        # reader), so no resolution is needed; None where fastavro decodes.
        self._compiled: dict[int, Decoder | None] = {}

    def writer_schema(self, schema_id: int) -> Any:
        parsed = self._writers.get(schema_id)
        if parsed is None:
            parsed = self._load(schema_id)
        return parsed

    def _load(self, schema_id: int) -> Any:
        """Fetch and parse a writer schema once, with its generated decoder where one applies."""
        try:
            writer = self._registry.schema_by_id(schema_id)
            parsed = avro_schema.parse(writer)
        except SchemaError as exc:
            if exc.retriable:
                raise
            raise DeserializationError(str(exc)) from exc
        text = avro_schema.canonical_text(writer)
        same = self._reader_text is None or text == self._reader_text
        self._compiled[schema_id] = _decoder_for(text) if same else None
        self._writers[schema_id] = parsed
        return parsed

    def decode(self, data: bytes | None) -> tuple[int, dict[str, Any]]:
        """The schema id and the decoded record of one message value."""
        schema_id = schema_id_of(data)
        assert data is not None  # schema_id_of refuses a missing value
        if schema_id not in self._writers:
            self._load(schema_id)
        compiled = self._compiled[schema_id]
        value: Any
        try:
            if compiled is not None and isinstance(data, bytes):
                value = compiled(data, HEADER_SIZE)
            else:
                body = io.BytesIO(memoryview(data)[HEADER_SIZE:])
                value = fastavro.schemaless_reader(body, self.writer_schema(schema_id), self._reader)
        except (
            ValueError,
            TypeError,
            KeyError,
            EOFError,
            IndexError,
            UnicodeDecodeError,
            struct.error,
            fastavro.read.SchemaResolutionError,
        ) as exc:
            raise DeserializationError(f"cannot decode Avro body with schema id {schema_id}: {exc}") from exc
        if not isinstance(value, dict):
            raise DeserializationError(f"schema id {schema_id} does not describe a record")
        return schema_id, value


class RecordDecoder(Generic[R]):
    """Decodes wire-format values into one :class:`Record` type (its schema is the reader schema)."""

    def __init__(self, registry: SchemaRegistry, model: type[R]) -> None:
        self.model = model
        self._decoder = AvroDecoder(registry, model.avro_schema())

    def __call__(self, data: bytes | None) -> R:
        _, value = self._decoder.decode(data)
        try:
            return self.model.from_avro(value)
        except ValueError as exc:  # pydantic.ValidationError is a ValueError
            raise DeserializationError(f"decoded value is not a valid {self.model.__name__}: {exc}") from exc


def _one_line(exc: ValidationError) -> str:
    """fastavro reports a JSON list of paths; users want one readable line."""
    details = exc.args[0] if exc.args else str(exc)
    try:
        items = json.loads(details) if isinstance(details, str) else details
    except json.JSONDecodeError:
        items = [details]
    if not isinstance(items, list):
        items = [items]
    # fastavro prints the whole expected schema for nested records; the field path is what matters.
    return "; ".join(str(i) if len(str(i)) < 300 else str(i)[:300] + "..." for i in items)
