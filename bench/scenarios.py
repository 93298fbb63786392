"""What each scenario feeds its contenders and what it expects back on the final topic.

A scenario names its topics' value types, generates the preloaded input (key, record) and says how
many outputs end a run. A scenario whose outputs have one right answer (windows) also checks them
after the run: a contender that produced the wrong results fails, however fast it was.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import fastavro

from streams.events import MetricSample, TaskCompleted, TaskRequested, WindowSummary
from streams.serde.record import Record

KEYS = 1000
_UNIX = datetime(1970, 1, 1, tzinfo=UTC)
_MILLI = timedelta(milliseconds=1)
_FIRST = (datetime(2026, 1, 1, tzinfo=UTC) - _UNIX) // _MILLI  # event time of the first windows input


def _key(i: int) -> str:
    return f"key-{i % KEYS:04d}"


@dataclass(frozen=True)
class Scenario:
    """Relay scenarios (pipeline, io): N tasks in, one output per task on the final topic."""

    name: str
    topics: int  # input, intermediate topics, final topic
    source: type[Record] = TaskRequested  # the value of every topic but the final one
    sink: type[Record] = TaskCompleted  # the value of the final topic
    checked: bool = False  # outputs are read back and checked by check()
    partitioned: bool = True  # runs at each --partitions count (else on 1 partition)
    shape: str = ""  # what the contenders run, when not the scenario's name (backlog, latency: pipeline)

    @property
    def kind(self) -> str:
        return self.shape or self.name

    def inputs(self, count: int) -> Iterator[tuple[str, Record]]:
        for i in range(count):
            payload = json.dumps(
                {
                    "question": f"summarise document {i}",
                    "tokens": 512,
                    "temperature": 0.2,
                    "source": "s3://bench/docs/" + f"{i:08d}.txt",
                }
            )
            yield (
                _key(i),
                TaskRequested(
                    task_id=f"task-{i:07d}",
                    capability="stage1",
                    payload=payload,
                    requested_by="bench",
                    context={"origin": "bench"},
                ),
            )

    def expected(self, count: int) -> int:
        """Outputs that end a run of ``count`` inputs."""
        return count

    def config(self) -> dict[str, Any]:
        """What the contenders' config carries for this scenario beyond topics and schemas."""
        return {}

    def check(self, count: int, outputs: list[tuple[bytes | None, bytes | None]]) -> str | None:
        """What is wrong with ``outputs`` (key, value) for ``count`` inputs, or None."""
        return None


@dataclass(frozen=True)
class Windows(Scenario):
    """A tumbling-window count per key over event time.

    ``count`` MetricSamples over 1,000 keys, ``per_key`` per key and window; event time rises through
    the input, so stream time passes window ends (plus grace) and windows close during the run. Then
    one closing sample per key, at the last window's end plus grace, closes every window whether a
    contender closes windows per partition or per key (the closing samples' own windows stay open and
    produce nothing). One result per key and window is expected, with the exact count.
    """

    topics: int = 2
    source: type[Record] = MetricSample
    sink: type[Record] = WindowSummary
    checked: bool = True
    partitioned: bool = False
    window_ms: int = 10_000
    grace_ms: int = 2_000
    per_key: int = 5  # samples of one key in one window

    def _time(self, i: int) -> int:
        """Event time of input ``i``, epoch milliseconds: KEYS * per_key samples per window length."""
        return _FIRST + i * self.window_ms // (KEYS * self.per_key)

    def inputs(self, count: int) -> Iterator[tuple[str, Record]]:
        for i in range(count):
            yield _key(i), self._sample(_key(i), float(i % 100), self._time(i))
        last = self._time(max(count - 1, 0))
        closing = last - last % self.window_ms + self.window_ms + self.grace_ms
        for k in range(KEYS):
            yield _key(k), self._sample(_key(k), 0.0, closing)

    @staticmethod
    def _sample(key: str, value: float, millis: int) -> MetricSample:
        return MetricSample(name=key, value=value, observed_at=_UNIX + millis * _MILLI)

    def windows(self, count: int) -> Counter[tuple[str, int]]:
        """The right answer: (key, window start in epoch ms) -> samples counted."""
        windows: Counter[tuple[str, int]] = Counter()
        for i in range(count):
            t = self._time(i)
            windows[_key(i), t - t % self.window_ms] += 1
        return windows

    def expected(self, count: int) -> int:
        return len(self.windows(count))

    def config(self) -> dict[str, Any]:
        return {"window_ms": self.window_ms, "grace_ms": self.grace_ms}

    def check(self, count: int, outputs: list[tuple[bytes | None, bytes | None]]) -> str | None:
        parsed = fastavro.parse_schema(WindowSummary.avro_schema())
        got: Counter[tuple[str, int]] = Counter()
        seen: Counter[tuple[str, int]] = Counter()
        for key, value in outputs:
            if value is None or len(value) < 5 or value[0] != 0:
                return "a window result is not Avro in the Confluent wire format"
            result = fastavro.schemaless_reader(io.BytesIO(value[5:]), parsed, None)
            assert isinstance(result, dict)
            where = ((key or b"").decode(), (result["start"] - _UNIX) // _MILLI)
            if result["key"] != where[0]:
                return f"result under key {where[0]} says key {result['key']}"
            got[where] += result["count"]
            seen[where] += 1
        want = self.windows(count)
        problems = []
        if len(outputs) != len(want):
            problems.append(f"{len(outputs):,} window results, expected {len(want):,}")
        repeated = sum(1 for n in seen.values() if n > 1)
        if repeated:
            problems.append(f"{repeated:,} windows sent more than once")
        wrong = sorted(w for w in want.keys() | got.keys() if want[w] != got[w])
        if wrong:
            first = wrong[0]
            problems.append(
                f"{len(wrong):,} windows with a wrong count (e.g. {first[0]} at {first[1]}: "
                f"{got[first]}, expected {want[first]})"
            )
        return "; ".join(problems) or None


def all_scenarios(window_events: int = 5) -> dict[str, Scenario]:
    """Every scenario by name; ``window_events`` samples per key and window in ``windows``."""
    return {
        "pipeline": Scenario("pipeline", topics=4),
        "io": Scenario("io", topics=2),
        "windows": Windows("windows", per_key=window_events),
        # The pipeline again, with a large preloaded input: peak RSS while a contender works through it.
        "backlog": Scenario("backlog", topics=4, shape="pipeline"),
        # The pipeline under a steady offered load: end-to-end latency (bench/latency.py).
        "latency": Scenario("latency", topics=4, shape="pipeline"),
    }
