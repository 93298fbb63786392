"""Records the tests build again and again: samples, and a counter step for tables."""

from __future__ import annotations

from datetime import UTC, datetime

from streams.events import MetricSample

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def sample(name: str, value: float) -> MetricSample:
    return MetricSample(name=name, value=value, observed_at=EPOCH)


def count_up(old: MetricSample | None) -> MetricSample:
    """A table update: one more than ``old`` (1 for a key not seen yet)."""
    return sample("count", (old.value if old else 0) + 1)
