"""Handler latency for heartbeats: each agent's handler durations since its previous beat, sketched.

A :class:`LatencyMiddleware` per agent sits innermost (its durations are the handler's own, as the
Prometheus histogram's are) and counts every finished attempt, failed or not, in a
:class:`~streams.sketch.Sketch`. Each heartbeat :meth:`takes <LatencyMiddleware.take>` the sketch
and starts a new one, so a beat carries the durations of its own interval; sketches of one accuracy
merge exactly, so a reader combines the workers of an agent (or several beats) into true quantiles.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from streams.events import HandlerLatency, QuantileSketch, SketchBins
from streams.middleware import CallNext, Middleware
from streams.sketch import Sketch

if TYPE_CHECKING:
    from streams.context import Context

LATENCY_ACCURACY = 0.01
"""Relative accuracy of the latency sketches in heartbeats: p99 within 1 % of the true p99."""


class LatencyMiddleware(Middleware):
    """Sketches the durations of one agent's handler calls until :meth:`take` hands them over."""

    def __init__(self) -> None:
        self._sketch = Sketch(LATENCY_ACCURACY)

    async def handle(self, ctx: Context, call_next: CallNext) -> None:
        started = time.perf_counter()
        try:
            await call_next()
        except Exception:
            self._sketch.add(time.perf_counter() - started)
            raise
        # A cancelled handler (shutdown gave up on it) is not a latency sample.
        self._sketch.add(time.perf_counter() - started)

    def take(self) -> HandlerLatency | None:
        """The durations since the last call (None: no handler call finished), and start afresh."""
        taken, self._sketch = self._sketch, Sketch(LATENCY_ACCURACY)
        return latency_record(taken)


def latency_record(sketch: Sketch) -> HandlerLatency | None:
    """The heartbeat's form of a sketch of durations (None for an empty one)."""
    if sketch.count == 0:
        return None
    record = sketch.to_record()
    return HandlerLatency(
        relative_accuracy=record.relative_accuracy,
        zero_count=record.zero_count,
        indices=record.positive.indices,
        counts=record.positive.counts,
    )


def latency_sketch(record: HandlerLatency) -> Sketch:
    """The sketch a heartbeat's latency describes, to merge and read quantiles from."""
    return Sketch.from_record(
        QuantileSketch(
            relative_accuracy=record.relative_accuracy,
            zero_count=record.zero_count,
            positive=SketchBins(indices=record.indices, counts=record.counts),
            negative=SketchBins(),
        )
    )


__all__ = ["LATENCY_ACCURACY", "LatencyMiddleware", "latency_record", "latency_sketch"]
