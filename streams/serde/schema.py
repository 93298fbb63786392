"""Avro schemas as text, as JSON and as fastavro's parsed form, with parsing done once per schema.

Owns: loading .avsc files, naming (full names, subjects) and the parse cache. Must never talk to the
registry or to Kafka.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import SchemaParseException, UnknownType

from streams.errors import SchemaError

SchemaJSON = dict[str, Any]


def canonical_text(schema: SchemaJSON) -> str:
    """A stable text form: the same schema always gives the same string (and cache key)."""
    return json.dumps(schema, sort_keys=True, separators=(",", ":"))


@lru_cache(maxsize=1024)
def parse_text(text: str) -> Any:
    """Parse an Avro schema once; later calls with the same text return the cached parsed schema."""
    try:
        return fastavro.parse_schema(json.loads(text))
    except (json.JSONDecodeError, SchemaParseException, UnknownType, ValueError, TypeError) as exc:
        raise SchemaError(f"invalid Avro schema: {exc}") from exc


def parse(schema: SchemaJSON) -> Any:
    return parse_text(canonical_text(schema))


def full_name(schema: SchemaJSON) -> str:
    name = str(schema.get("name", ""))
    namespace = schema.get("namespace")
    if "." in name or not namespace:
        return name
    return f"{namespace}.{name}"


def load_file(path: Path) -> SchemaJSON:
    """Read and validate one .avsc file; errors name the file."""
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise SchemaError(f"{path}: cannot read Avro schema: {exc}") from exc
    if not isinstance(schema, dict) or schema.get("type") != "record":
        raise SchemaError(f"{path}: a top-level schema must be an Avro record")
    try:
        parse(schema)
    except SchemaError as exc:
        raise SchemaError(f"{path}: {exc}") from exc
    return schema


def load_dir(directory: Path) -> list[SchemaJSON]:
    """Every .avsc under ``directory``, sorted by path so generated code is stable."""
    files = sorted(directory.rglob("*.avsc"))
    if not files:
        raise SchemaError(f"no .avsc files under {directory}")
    return [load_file(f) for f in files]
