"""What every contender shares: its config, the per-stage work on plain dicts, the Avro wire codec for
peers, and the start marker. Imports only the standard library and fastavro (peers run without
``streams`` installed).

The work per message is the same for everyone: decode an Avro value (Confluent wire format), build the
next record, encode it with the registered schema id, produce it with the same key. In the windows
scenario: decode a ``MetricSample``, count it in its key's tumbling window of event time
(``observed_at``), and produce one ``WindowSummary`` per key and window when the window closes.
"""

from __future__ import annotations

import io
import json
import os
import struct
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import fastavro

_HEADER = struct.Struct(">bI")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLI = timedelta(milliseconds=1)


@dataclass(frozen=True)
class Config:
    """What the harness asks of one contender run (written as JSON, path in argv[1])."""

    scenario: str  # "pipeline" (3 stages), "io" (one stage awaiting io_delay per message) or "windows"
    bootstrap: str
    registry: str
    group: str  # prefix for consumer groups / app ids; unique per run and contender
    topics: list[str]  # pipeline: [in, s1->, s2->, out]; io and windows: [in, out]
    schemas: dict[str, Any]  # record name -> Avro schema JSON
    schema_ids: dict[str, int]  # topic -> registered id of the schema its values are written with
    messages: int
    io_delay: float
    options: dict[str, Any]  # contender-specific knobs (concurrency, guarantee...)
    state_dir: str  # where a contender may keep local state (Quix's RocksDB); fresh per run
    partitions: int = 1  # of every topic of the run (the harness creates them)
    window_ms: int = 0  # windows: size of the tumbling windows, in event-time milliseconds
    grace_ms: int = 0  # windows: how long after its end a window still takes records

    @classmethod
    def load(cls, argv: list[str] | None = None) -> Config:
        path = (argv or sys.argv)[1]
        with open(path, encoding="utf-8") as f:  # noqa: PTH123 - one tiny file
            return cls(**json.load(f))


class WireCodec:
    """fastavro schemaless + the 5-byte Confluent header, schema parsed once: what a careful
    hand-written consumer does, and what ``streams.serde`` does underneath."""

    def __init__(self, schema: dict[str, Any], schema_id: int) -> None:
        self._parsed = fastavro.parse_schema(schema)
        self._schema_id = schema_id
        self._header = _HEADER.pack(0, schema_id)

    def decode(self, data: bytes | None) -> dict[str, Any]:
        if data is None:
            raise ValueError("tombstone where an Avro record was expected")
        magic, schema_id = _HEADER.unpack_from(data)
        if magic != 0 or schema_id != self._schema_id:
            raise ValueError(f"unexpected wire header: magic {magic}, schema id {schema_id}")
        value = fastavro.schemaless_reader(io.BytesIO(memoryview(data)[5:]), self._parsed, None)
        assert isinstance(value, dict)
        return value

    def encode(self, value: dict[str, Any]) -> bytes:
        buffer = io.BytesIO()
        buffer.write(self._header)
        fastavro.schemaless_writer(buffer, self._parsed, value)
        return buffer.getvalue()


def relay(task: dict[str, Any], stage: int) -> dict[str, Any]:
    """Stages 1 and 2: hand the task on, recording the stage in its context."""
    return {
        **task,
        "capability": f"stage{stage + 1}",
        "context": {**task["context"], f"stage{stage}": "done"},
    }


def complete(task: dict[str, Any], agent: str = "stage3") -> dict[str, Any]:
    """The last stage: the task's outcome."""
    return {
        "task_id": task["task_id"],
        "agent": agent,
        "status": "SUCCEEDED",
        "result": task["payload"],
        "error": None,
        "duration_ms": 0,
    }


def epoch_millis(moment: datetime) -> int:
    """A decoded ``timestamp-millis`` (fastavro gives an aware datetime) as epoch milliseconds."""
    return (moment - _EPOCH) // _MILLI


def window_summary(key: str, start: int, size: int, count: int) -> dict[str, Any]:
    """A closed window's result as a ``WindowSummary`` value (times in epoch milliseconds)."""
    return {
        "key": key,
        "start": start,
        "end": start + size,
        "count": count,
        "sum": 0.0,
        "min": None,
        "max": None,
    }


class StartMarker:
    """Writes ``FIRST <epoch seconds>`` once, when the first message reaches the first stage."""

    __slots__ = ("seen",)

    def __init__(self) -> None:
        self.seen = False

    def __call__(self) -> None:
        if not self.seen:
            self.seen = True
            # Straight to fd 1: some frameworks (faust) swap sys.stdout for a logger.
            os.write(1, f"FIRST {time.time():.6f}\n".encode())
