"""What both sides of the workflows scenario share: the steps, the right answer, and the driver loop.

Standard library only: the Restate side runs from its own venv, without ``streams`` or fastavro.

A workflow's input is a tally ``{"id": <workflow id>, "count": i, "trail": ""}``; step n adds 1 to
``count`` and appends ``n`` to ``trail``, so the right output of workflow i is
``{"id": <its id>, "count": i + 3, "trail": "123"}``: a step skipped, repeated or run out of order
shows. The driver starts ``count`` workflows with at most ``concurrency`` outstanding, each awaited from
its start to its result, after ``warmup`` untimed ones. It writes ``START <epoch>`` and ``END <epoch>``
around the timed part (the harness reads the servers' CPU there), then one ``RESULT <json>`` line.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

STEPS = 3
RunOne = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]  # (workflow id, input) -> output


@dataclass(frozen=True)
class DriverConfig:
    """What the harness asks of one driver (and its servers): written as JSON, path in argv."""

    run: str  # unique per run: a prefix of every workflow id (and of our app's name)
    workflows: int
    concurrency: int
    warmup: int
    timeout: float  # seconds one workflow may take before it counts as failed
    options: dict[str, Any]  # side-specific: ports, bootstrap, registry, mode...

    @classmethod
    def load(cls, path: str) -> DriverConfig:
        with open(path, encoding="utf-8") as f:  # noqa: PTH123 - one tiny file
            return cls(**json.load(f))


def step(tally: dict[str, Any], n: int) -> dict[str, Any]:
    """Step ``n`` of 3: count one more, note the step."""
    return {"id": tally["id"], "count": tally["count"] + 1, "trail": tally["trail"] + str(n)}


def start_value(workflow_id: str, i: int) -> dict[str, Any]:
    return {"id": workflow_id, "count": i, "trail": ""}


def expected(workflow_id: str, i: int) -> dict[str, Any]:
    return {"id": workflow_id, "count": i + STEPS, "trail": "".join(str(n) for n in range(1, STEPS + 1))}


def _marker(word: str) -> None:
    os.write(1, f"{word} {time.time():.6f}\n".encode())


def _percentile(ordered: list[float], share: float) -> float:
    """Nearest-rank percentile of a sorted list."""
    index = max(0, min(len(ordered) - 1, round(share * len(ordered) + 0.5) - 1))
    return ordered[index]


async def _batch(run_one: RunOne, config: DriverConfig, prefix: str, count: int) -> dict[str, Any]:
    """``count`` workflows, ``concurrency`` at a time; latencies and what went wrong."""
    latencies: list[float] = []
    wrong: list[str] = []
    errors: list[str] = []
    position = iter(range(count))

    async def lane() -> None:
        for i in position:
            workflow_id = f"{config.run}-{prefix}{i}"
            began = time.perf_counter()
            try:
                value = start_value(workflow_id, i)
                output = await asyncio.wait_for(run_one(workflow_id, value), config.timeout)
            except Exception as exc:  # noqa: BLE001 - a failed workflow is counted, not fatal
                errors.append(f"{workflow_id}: {exc!r}"[:300])
                continue
            latencies.append(time.perf_counter() - began)
            want = expected(workflow_id, i)
            if output != want:
                wrong.append(f"{workflow_id}: {output!r}, expected {want!r}"[:300])

    began = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(min(config.concurrency, count))))
    seconds = time.perf_counter() - began
    latencies.sort()
    return {
        "seconds": seconds,
        "completed": len(latencies),
        "p50_ms": 1000 * _percentile(latencies, 0.50) if latencies else None,
        "p99_ms": 1000 * _percentile(latencies, 0.99) if latencies else None,
        "max_ms": 1000 * latencies[-1] if latencies else None,
        "wrong": len(wrong),
        "errors": len(errors),
        "examples": (wrong + errors)[:3],
    }


async def drive(run_one: RunOne, config: DriverConfig) -> None:
    """Warm up, then the timed workflows; prints the markers and the ``RESULT`` line."""
    if config.warmup:
        warm = await _batch(run_one, config, "warm", config.warmup)
        if warm["errors"] or warm["wrong"]:
            print("RESULT " + json.dumps({"failed": "warm-up", **warm}), flush=True)
            return
    _marker("START")
    result = await _batch(run_one, config, "", config.workflows)
    _marker("END")
    print("RESULT " + json.dumps(result), flush=True)


def config_from_argv() -> tuple[str, DriverConfig]:
    """``python -m MODULE ROLE CONFIG``: the role (worker, service, driver...) and the config."""
    if len(sys.argv) != 3:
        raise SystemExit(f"usage: python -m {__package__}.<module> ROLE CONFIG")
    return sys.argv[1], DriverConfig.load(sys.argv[2])
