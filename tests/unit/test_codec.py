import pytest

from streams.errors import DeserializationError, SerializationError
from streams.events import TaskRequested
from streams.serde.codec import AvroDecoder, AvroEncoder, RecordDecoder, decode_key, encode_key
from streams.serde.registry import InMemoryRegistry
from streams.serde.wire import HEADER_SIZE, header, schema_id_of

pytestmark = pytest.mark.unit

TASK = {"task_id": "t1", "capability": "research", "payload": "{}"}


class CountingRegistry(InMemoryRegistry):
    def __init__(self) -> None:
        super().__init__()
        self.registrations = 0
        self.lookups = 0

    def register(self, subject, schema):  # type: ignore[no-untyped-def]
        self.registrations += 1
        return super().register(subject, schema)

    def schema_by_id(self, schema_id):  # type: ignore[no-untyped-def]
        self.lookups += 1
        return super().schema_by_id(schema_id)


def test_wire_format_is_magic_byte_then_big_endian_id() -> None:
    data = header(258) + b"body"
    assert data == b"\x00\x00\x00\x01\x02body"
    assert (schema_id_of(data), data[HEADER_SIZE:]) == (258, b"body")


@pytest.mark.parametrize(
    ("data", "reason"),
    [(None, "tombstone"), (b"\x00\x01", "too short"), (b"\x07\x00\x00\x00\x01x", "magic byte")],
)
def test_poison_bytes_are_deserialization_errors(data: bytes | None, reason: str) -> None:
    with pytest.raises(DeserializationError, match=reason):
        schema_id_of(data)


def test_a_high_first_byte_is_named_unsigned() -> None:
    with pytest.raises(DeserializationError, match="unknown magic byte 147:"):
        schema_id_of(b"\x93\x00\x00\x00\x01x")


def test_schema_is_registered_once_and_writer_schema_fetched_once() -> None:
    registry = CountingRegistry()
    encoder = AvroEncoder(registry, "tasks-value", TaskRequested.avro_schema())
    decoder = RecordDecoder(registry, TaskRequested)
    for i in range(50):
        task = TaskRequested(task_id=str(i), capability="c", payload="{}")
        assert decoder(encoder(task)) == task
    assert registry.registrations == 1
    assert registry.lookups == 1


def test_plain_dicts_are_validated_with_the_field_named() -> None:
    encoder = AvroEncoder(InMemoryRegistry(), "tasks-value", TaskRequested.avro_schema())
    with pytest.raises(SerializationError, match=r"TaskRequested\.priority .* expected int"):
        encoder({**TASK, "priority": "high"})
    with pytest.raises(SerializationError, match="missing required field payload"):
        encoder({"task_id": "t1", "capability": "c"})
    with pytest.raises(SerializationError, match="has no field colour"):
        encoder({**TASK, "colour": "red"})
    with pytest.raises(SerializationError, match="expected a JSON object"):
        encoder([1, 2])  # type: ignore[arg-type]


def test_unknown_schema_id_is_a_poison_pill() -> None:
    with pytest.raises(DeserializationError, match="unknown"):
        AvroDecoder(InMemoryRegistry()).decode(header(99) + b"\x02")


def test_truncated_body_is_a_poison_pill() -> None:
    registry = InMemoryRegistry()
    data = AvroEncoder(registry, "s", TaskRequested.avro_schema())(TASK)
    with pytest.raises(DeserializationError, match="cannot decode"):
        AvroDecoder(registry).decode(data[:8])


def test_reader_schema_resolves_an_older_writer() -> None:
    """A consumer built against v2 (new field with a default) reads data written with v1."""
    registry = InMemoryRegistry()
    v1 = {"type": "record", "name": "E", "fields": [{"name": "a", "type": "string"}]}
    v2 = {
        "type": "record",
        "name": "E",
        "fields": [{"name": "a", "type": "string"}, {"name": "b", "type": "int", "default": 7}],
    }
    data = AvroEncoder(registry, "e-value", v1)({"a": "x"})
    assert AvroDecoder(registry, v2).decode(data)[1] == {"a": "x", "b": 7}
    newer = AvroEncoder(registry, "e-value", v2)({"a": "y", "b": 1})
    assert AvroDecoder(registry, v1).decode(newer)[1] == {"a": "y"}


def test_keys() -> None:
    assert encode_key("k") == b"k"
    assert encode_key(b"\xff") == b"\xff"
    assert encode_key(None) is None
    assert decode_key(b"k", str) == "k"
    assert decode_key(b"\xff", bytes) == b"\xff"
    with pytest.raises(DeserializationError):
        decode_key(b"\xff", str)
    with pytest.raises(SerializationError):
        encode_key(3)  # type: ignore[arg-type]
