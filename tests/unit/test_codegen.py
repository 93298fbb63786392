import io
from datetime import UTC, datetime
from pathlib import Path

import fastavro
import pytest

from streams import events
from streams.errors import SchemaError
from streams.serde.codegen import render_module
from streams.serde.schema import load_dir, parse

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def test_generated_events_match_the_avsc_files() -> None:
    """The built-in models are generated from avro/; editing either side alone fails here."""
    rendered = render_module(load_dir(ROOT / "avro" / "orchestration"), "avro/orchestration")
    assert (ROOT / "streams" / "events.py").read_text(encoding="utf-8") == rendered


def test_every_model_embeds_exactly_its_schema_file() -> None:
    import json

    for path in sorted((ROOT / "avro" / "orchestration").glob("*.avsc")):
        model = getattr(events, path.stem)
        assert model.avro_schema() == json.loads(path.read_text(encoding="utf-8"))


def _roundtrip(model: events.Record) -> events.Record:
    schema = parse(type(model).avro_schema())
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, schema, model.to_avro())
    buffer.seek(0)
    return type(model).from_avro(fastavro.schemaless_reader(buffer, schema))


def test_generated_models_roundtrip_through_avro() -> None:
    now = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    samples: list[events.Record] = [
        events.TaskRequested(
            task_id="t1", capability="research", payload="{}", deadline=now, context={"user": "u1"}
        ),
        events.TaskCompleted(task_id="t1", agent="a", status=events.TaskStatus.FAILED, error="boom"),
        events.AgentHeartbeat(
            agent="a",
            worker_id="w",
            host="h",
            pid=1,
            state="RUNNING",
            sent_at=now,
            assigned_partitions=[0, 3],
        ),
        events.MetricSample(name="latency", value=1.5, labels={"agent": "a"}, observed_at=now),
        events.Alert(alert_id="x", rule="r", severity=events.Severity.CRITICAL, message="m", fired_at=now),
    ]
    for sample in samples:
        assert _roundtrip(sample) == sample


def test_optional_nested_enum_array_and_map_types(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    schema = {
        "type": "record",
        "name": "Outer",
        "namespace": "t",
        "fields": [
            {
                "name": "inner",
                "type": {"type": "record", "name": "Inner", "fields": [{"name": "x", "type": "int"}]},
            },
            {"name": "again", "type": ["null", "Inner"], "default": None},
            {
                "name": "color",
                "type": {"type": "enum", "name": "Color", "symbols": ["RED", "BLUE"]},
                "default": "BLUE",
            },
            {"name": "tags", "type": {"type": "array", "items": "string"}, "default": []},
            {"name": "scores", "type": {"type": "map", "values": "double"}},
        ],
    }
    source = render_module([schema], "test")
    assert "inner: Inner" in source
    assert "again: Inner | None = Field(default=None)" in source
    assert "color: Color = Field(default=Color.BLUE)" in source
    assert "tags: list[str] = Field(default_factory=list)" in source
    assert "scores: dict[str, float]" in source
    (tmp_path / "generated_outer.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    import generated_outer  # type: ignore[import-not-found]

    value = generated_outer.Outer(inner={"x": 1}, scores={"a": 1.0})
    assert value.color is generated_outer.Color.BLUE
    assert _roundtrip(value) == value


def test_unsupported_types_fail_clearly() -> None:
    schema = {
        "type": "record",
        "name": "F",
        "fields": [{"name": "f", "type": {"type": "fixed", "name": "H", "size": 4}}],
    }
    with pytest.raises(SchemaError, match="not supported"):
        render_module([schema], "test")


def test_bad_avsc_file_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "Bad.avsc").write_text(
        '{"type": "record", "name": "Bad", "fields": [{"name": "x", "type": "nope"}]}'
    )
    with pytest.raises(SchemaError, match=r"Bad\.avsc"):
        load_dir(tmp_path)
