"""Records to and from what fastavro reads and writes: the shortcuts must give what pydantic gives."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, field_validator

from streams.events import MetricSample, TaskCompleted, TaskRequested, TaskStatus, WorkflowJournal
from streams.serde.codec import AvroEncoder, RecordDecoder
from streams.serde.record import Record, _takes_decoded_as_is
from streams.serde.registry import InMemoryRegistry

pytestmark = pytest.mark.unit


def _round_trip(record: Record) -> Record:
    registry = InMemoryRegistry()
    encode = AvroEncoder(registry, "t-value", type(record).avro_schema())
    return RecordDecoder(registry, type(record))(encode(record))


@pytest.mark.parametrize(
    "record",
    [
        TaskRequested(task_id="t1", capability="c", payload="{}", context={"a": "b"}, requested_by="me"),
        MetricSample(name="cpu", value=0.5, observed_at=datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=UTC)),
        TaskCompleted(task_id="t1", agent="a", status=TaskStatus.FAILED, error="boom"),
    ],
)
def test_decoded_records_equal_validated_ones(record: Record) -> None:
    decoded = _round_trip(record)
    validated = type(record).model_validate(record.model_dump())
    assert decoded == validated == record
    assert decoded.model_fields_set == validated.model_fields_set
    assert decoded.model_dump() == validated.model_dump()
    assert type(decoded).model_validate(decoded.model_dump()) == decoded
    assert decoded.model_copy(update={"task_id": "t2"} if hasattr(record, "task_id") else {}) is not decoded


def test_enums_are_still_converted_to_their_members() -> None:
    decoded = _round_trip(TaskCompleted(task_id="t1", agent="a", status=TaskStatus.SUCCEEDED))
    assert isinstance(decoded, TaskCompleted)
    assert type(decoded.status) is TaskStatus


def test_nested_records_are_still_models() -> None:
    assert not WorkflowJournal._flat()
    assert WorkflowJournal.model_fields  # nested records go through model_validate / model_dump


class Shouting(Record):
    """A user's record with a validator: decoding must still run it."""

    __avro_schema__: ClassVar[dict[str, Any]] = {
        "type": "record",
        "name": "Shouting",
        "fields": [{"name": "text", "type": "string"}],
    }

    text: str

    @field_validator("text")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()


def test_a_records_own_validators_still_run_on_decode() -> None:
    registry = InMemoryRegistry()
    written = AvroEncoder(registry, "s-value", Shouting.avro_schema())({"text": "quiet"})  # another writer
    assert RecordDecoder(registry, Shouting)(written).text == "QUIET"
    assert not _takes_decoded_as_is(Shouting)


def test_generated_records_without_enums_or_nesting_take_the_shortcut() -> None:
    assert _takes_decoded_as_is(TaskRequested) and _takes_decoded_as_is(MetricSample)
    assert not _takes_decoded_as_is(TaskCompleted)  # its status is an enum


def test_flat_records_encode_their_fields_without_a_copy() -> None:
    task = TaskRequested(task_id="t1", capability="c", payload="{}")
    assert task.to_avro() == task.model_dump()
    sample = MetricSample(name="cpu", value=1.0, observed_at=datetime(2026, 1, 1, tzinfo=UTC))
    assert sample.to_avro() == sample.model_dump()


def test_model_copy_gives_what_pydantics_gives() -> None:
    task = TaskRequested(task_id="t1", capability="c", payload="{}", context={"a": "b"})
    for update in (None, {}, {"capability": "d", "context": {"x": "y"}}):
        ours = task.model_copy(update=update)
        theirs = BaseModel.model_copy(task, update=update)
        assert ours == theirs and ours is not task
        assert ours.model_fields_set == theirs.model_fields_set
        assert ours.__dict__ is not task.__dict__
    deep = task.model_copy(deep=True)
    assert deep == task and deep.context is not task.context
