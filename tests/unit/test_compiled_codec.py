"""The generated Avro encoders and decoders against fastavro: the same bytes and the same values."""

from __future__ import annotations

import io
import struct
from datetime import UTC, date, datetime, time
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any
from uuid import UUID

import fastavro
import pytest
from fastavro.utils import generate_many

from streams import events
from streams.errors import DeserializationError
from streams.serde import schema as avro_schema
from streams.serde.codec import AvroDecoder, AvroEncoder
from streams.serde.compiled import Decoder, Encoder, compile_decoder, compile_encoder
from streams.serde.registry import InMemoryRegistry

SCHEMAS = sorted((Path(__file__).parents[2] / "avro").rglob("*.avsc"))

EVERYTHING: dict[str, Any] = {
    "type": "record",
    "name": "Everything",
    "namespace": "test",
    "fields": [
        {"name": "flag", "type": "boolean"},
        {"name": "small", "type": "int"},
        {"name": "big", "type": "long"},
        {"name": "ratio", "type": "float"},
        {"name": "exact", "type": "double"},
        {"name": "blob", "type": "bytes"},
        {"name": "text", "type": "string"},
        {"name": "colour", "type": {"type": "enum", "name": "Colour", "symbols": ["RED", "GREEN"]}},
        {"name": "again", "type": "test.Colour"},
        {"name": "maybe", "type": ["string", "null"]},
        {
            "name": "when",
            "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}],
            "default": None,
        },
        {
            "name": "parts",
            "type": {
                "type": "array",
                "items": {
                    "type": "record",
                    "name": "Part",
                    "fields": [
                        {"name": "id", "type": "long"},
                        {
                            "name": "tags",
                            "type": {"type": "map", "values": {"type": "array", "items": "int"}},
                        },
                    ],
                },
            },
        },
        {"name": "spare", "type": ["null", "test.Part"]},
        {"name": "nothing", "type": "null"},
        {"name": "count", "type": "int", "default": 7},
    ],
}


def _compiled(schema: dict[str, Any]) -> tuple[Any, Encoder, Decoder]:
    """The parsed schema and both functions generated for it, which must exist."""
    parsed = avro_schema.parse(schema)
    encode, decode = compile_encoder(parsed), compile_decoder(parsed)
    assert encode is not None and decode is not None
    return parsed, encode, decode


def _fastavro_bytes(parsed: Any, datum: Any) -> bytes:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, parsed, datum)
    return buffer.getvalue()


def _fastavro_value(parsed: Any, body: bytes) -> Any:
    return fastavro.schemaless_reader(io.BytesIO(body), parsed, None)


@pytest.mark.parametrize("path", SCHEMAS, ids=lambda path: path.stem)
def test_every_schema_of_the_project_is_compiled_and_agrees_with_fastavro(path: Path) -> None:
    parsed, encode, decode = _compiled(avro_schema.load_file(path))
    for datum in generate_many(parsed, 200):
        expected = _fastavro_bytes(parsed, datum)
        assert encode(datum) == expected
        assert decode(b"\0\0\0\0\1" + expected, 5) == _fastavro_value(parsed, expected)


def test_edge_values_agree_with_fastavro() -> None:
    parsed, encode, decode = _compiled(EVERYTHING)
    part = {"id": -(1 << 63), "tags": {"": [], "ü": [0, -1, 1 << 31 - 1, -(1 << 31)]}}
    data = [
        {
            "flag": True,
            "small": -1,
            "big": (1 << 63) - 1,
            "ratio": 0.5,
            "exact": float("inf"),
            "blob": b"\x00\xff" * 300,
            "text": "naïve ☃ " * 40,
            "colour": "GREEN",
            "again": "RED",
            "maybe": None,
            "when": datetime(2026, 12, 7, 18, 0, 1, 250000, tzinfo=UTC),
            "parts": [part, {"id": 1024, "tags": {}}],
            "spare": part,
            "nothing": None,
            "count": 1023,
        },
        # Missing fields with a default or a null branch are written as fastavro writes them.
        {
            "flag": False,
            "small": 0,
            "big": 1024,
            "ratio": -0.0,
            "exact": -1e300,
            "blob": b"",
            "text": "",
            "colour": "RED",
            "again": "GREEN",
            "maybe": "x",
            "parts": [],
            "nothing": None,
        },
    ]
    for datum in data:
        expected = _fastavro_bytes(parsed, datum)
        assert encode(datum) == expected
        assert decode(expected, 0) == _fastavro_value(parsed, expected)


def test_longs_at_every_width_agree_with_fastavro() -> None:
    # Longs are written 14 bits at a time from tables: every power of two and its neighbours, both
    # signs, crosses each boundary between one, two, three and more groups.
    parsed, encode, decode = _compiled(
        {"type": "record", "name": "L", "fields": [{"name": "n", "type": "long"}]}
    )
    values = {-(1 << 63), (1 << 63) - 1, 1_733_000_000_000, -1_733_000_000_000}
    for bit in range(63):
        for sign in (1, -1):
            values.update(sign * (1 << bit) + step for step in (-1, 0, 1))
    for n in sorted(values):
        expected = _fastavro_bytes(parsed, {"n": n})
        assert encode({"n": n}) == expected, n
        assert decode(expected, 0) == {"n": n}


def test_blocks_written_by_other_writers_decode_as_fastavro_decodes_them() -> None:
    schema = {
        "type": "record",
        "name": "Blocks",
        "fields": [
            {"name": "xs", "type": {"type": "array", "items": "int"}},
            {"name": "m", "type": {"type": "map", "values": "string"}},
        ],
    }
    parsed, _, decode = _compiled(schema)
    # xs: a block of 2, then a block of -1 items with its size in bytes, then the end; m: one entry.
    body = bytes([4, 2, 4, 1, 2, 6, 0, 2, 2, ord("k"), 2, ord("v"), 0])
    assert decode(body, 0) == _fastavro_value(parsed, body) == {"xs": [1, 2, 3], "m": {"k": "v"}}


def test_a_truncated_or_corrupt_body_raises_what_the_decoder_turns_into_a_poison_pill() -> None:
    parsed, _, decode = _compiled(EVERYTHING)
    whole = _fastavro_bytes(parsed, next(iter(generate_many(parsed, 1))))
    for cut in range(len(whole)):
        with pytest.raises((EOFError, IndexError, ValueError, struct.error, UnicodeDecodeError)):
            decode(whole[:cut], 0)
    _, _, decode_text = _compiled(
        {"type": "record", "name": "T", "fields": [{"name": "s", "type": "string"}]}
    )
    with pytest.raises(ValueError, match="negative length"):
        decode_text(bytes([1]), 0)


def test_longs_beyond_avro_range_are_refused() -> None:
    _, encode, _ = _compiled({"type": "record", "name": "L", "fields": [{"name": "n", "type": "long"}]})
    with pytest.raises(OverflowError):
        encode({"n": 1 << 63})


@pytest.mark.parametrize(
    "field_type",
    [
        ["null", "int", "string"],  # a union of three: fastavro picks the branch by the value
        {"type": "fixed", "name": "F", "size": 4},
    ],
)
def test_what_is_not_covered_is_left_to_fastavro(field_type: Any) -> None:
    schema = {"type": "record", "name": "U", "fields": [{"name": "x", "type": field_type}]}
    parsed = avro_schema.parse(schema)
    assert compile_encoder(parsed) is None
    assert compile_decoder(parsed) is None


def test_a_recursive_type_is_left_to_fastavro() -> None:
    schema = {
        "type": "record",
        "name": "Node",
        "fields": [{"name": "value", "type": "int"}, {"name": "next", "type": ["null", "Node"]}],
    }
    parsed = avro_schema.parse(schema)
    assert compile_encoder(parsed) is None
    assert compile_decoder(parsed) is None
    # And the codec still handles it, through fastavro.
    registry = InMemoryRegistry()
    value = {"value": 1, "next": {"value": 2, "next": None}}
    assert AvroDecoder(registry, schema).decode(AvroEncoder(registry, "n-value", schema)(value))[1] == value


def test_another_writer_version_is_resolved_by_fastavro() -> None:
    """A reader schema that differs from the writer's needs resolution: not the generated decoder."""
    registry = InMemoryRegistry()
    old = {"type": "record", "name": "V", "fields": [{"name": "a", "type": "int"}]}
    new = {**old, "fields": [*old["fields"], {"name": "b", "type": "string", "default": "none"}]}
    message = AvroEncoder(registry, "v-value", old)({"a": 5})
    assert AvroDecoder(registry, new).decode(message)[1] == {"a": 5, "b": "none"}
    assert AvroDecoder(registry, old).decode(message)[1] == {"a": 5}


def test_a_cut_message_is_a_poison_pill_through_the_codec() -> None:
    registry = InMemoryRegistry()
    encoder = AvroEncoder(registry, "tasks-value", events.TaskRequested.avro_schema())
    message = encoder(events.TaskRequested(task_id="t", capability="c", payload="{}"))
    with pytest.raises(DeserializationError, match="cannot decode"):
        AvroDecoder(registry, events.TaskRequested.avro_schema()).decode(message[:-3])


def test_enum_members_encode_as_their_symbol_also_when_named_otherwise() -> None:
    """A str enum member hashes by its name: the first lookup misses, and the symbol is still found."""

    class Shade(StrEnum):
        DARK = "Dark"
        LIGHT = "Light"

    schema = {
        "type": "record",
        "name": "Paint",
        "fields": [
            {"name": "shade", "type": {"type": "enum", "name": "Shade", "symbols": ["Light", "Dark"]}}
        ],
    }
    parsed, encode, _ = _compiled(schema)
    for _ in range(2):  # the second time from what the first remembered
        assert encode({"shade": Shade.DARK}) == _fastavro_bytes(parsed, {"shade": Shade.DARK}) == b"\x02"
    with pytest.raises(ValueError, match="'LOST' is not one of the symbols Light, Dark"):
        encode({"shade": "LOST"})


def test_other_logical_types_convert_as_fastavro_converts_them() -> None:
    schema = {
        "type": "record",
        "name": "Logical",
        "fields": [
            {"name": "day", "type": {"type": "int", "logicalType": "date"}},
            {"name": "clock", "type": {"type": "int", "logicalType": "time-millis"}},
            {"name": "fine", "type": {"type": "long", "logicalType": "timestamp-micros"}},
            {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
            {
                "name": "money",
                "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2},
            },
        ],
    }
    parsed, encode, decode = _compiled(schema)
    datum = {
        "day": date(2026, 12, 7),
        "clock": time(18, 30, 5, 250000),
        "fine": datetime(2026, 12, 7, 18, 30, 5, 123456, tzinfo=UTC),
        "id": UUID("12345678-1234-5678-1234-567812345678"),
        "money": Decimal("-1234567.89"),
    }
    expected = _fastavro_bytes(parsed, datum)
    assert encode(datum) == expected
    assert decode(expected, 0) == _fastavro_value(parsed, expected) == datum
