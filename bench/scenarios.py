"""What each scenario feeds its contenders and what it expects back on the final topic.

A scenario names its topics' value types, generates the preloaded input (key, record) and says how
many outputs end a run. A scenario whose outputs have one right answer also checks them after the
run: a contender that produced the wrong results fails, however fast it was.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from streams.events import TaskCompleted, TaskRequested
from streams.serde.record import Record

KEYS = 1000


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

    def inputs(self, count: int) -> Iterator[tuple[str, Record]]:
        for i in range(count):
            payload = json.dumps({"question": f"summarise document {i}", "tokens": 512, "temperature": 0.2,
                                  "source": "s3://bench/docs/" + f"{i:08d}.txt"})
            yield _key(i), TaskRequested(task_id=f"task-{i:07d}", capability="stage1", payload=payload,
                                         requested_by="bench", context={"origin": "bench"})

    def expected(self, count: int) -> int:
        """Outputs that end a run of ``count`` inputs."""
        return count

    def config(self) -> dict[str, Any]:
        """What the contenders' config carries for this scenario beyond topics and schemas."""
        return {}

    def check(self, count: int, outputs: list[tuple[bytes | None, bytes | None]]) -> str | None:
        """What is wrong with ``outputs`` (key, value) for ``count`` inputs, or None."""
        return None


def all_scenarios() -> dict[str, Scenario]:
    """Every scenario by name."""
    return {
        "pipeline": Scenario("pipeline", topics=4),
        "io": Scenario("io", topics=2),
    }
