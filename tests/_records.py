"""Records the tests build again and again: samples, a counter step for tables, window reducers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from streams.events import MetricSample, WindowSummary
from streams.windows import Window

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def sample(name: str, value: float) -> MetricSample:
    return MetricSample(name=name, value=value, observed_at=EPOCH)


def count_up(old: MetricSample | None) -> MetricSample:
    """A table update: one more than ``old`` (1 for a key not seen yet)."""
    return sample("count", (old.value if old else 0) + 1)


def observed(name: str, value: float, second: float) -> MetricSample:
    """A sample observed ``second`` seconds after :data:`EPOCH` (event time for window tests)."""
    return MetricSample(name=name, value=value, observed_at=EPOCH + timedelta(seconds=second))


def summarize(window: Window, current: WindowSummary | None, event: MetricSample) -> WindowSummary:
    """A window reducer: count, sum, min and max of the samples' values."""
    start, end = window.start_at, window.end_at
    if current is None:
        return WindowSummary(
            key=event.name, start=start, end=end, count=1, sum=event.value, min=event.value, max=event.value
        )
    return WindowSummary(
        key=event.name,
        start=start,
        end=end,
        count=current.count + 1,
        sum=current.sum + event.value,
        min=min(current.min if current.min is not None else event.value, event.value),
        max=max(current.max if current.max is not None else event.value, event.value),
    )


def merge_summaries(window: Window, a: WindowSummary, b: WindowSummary) -> WindowSummary:
    """A session merge: two summaries of one key as one over ``window``."""
    start, end = window.start_at, window.end_at
    lows = [x for x in (a.min, b.min) if x is not None]
    highs = [x for x in (a.max, b.max) if x is not None]
    return WindowSummary(
        key=a.key,
        start=start,
        end=end,
        count=a.count + b.count,
        sum=a.sum + b.sum,
        min=min(lows) if lows else None,
        max=max(highs) if highs else None,
    )
