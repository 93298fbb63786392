"""Windowed aggregation of metric records: count, sum, min, max and a quantile sketch per window.

:class:`Summarize` is a reducer for :meth:`streams.App.windowed` that folds records into a
:class:`~streams.events.WindowSummary`; the functions below read what users alert on from one:
:func:`mean`, :func:`quantile` (from the sketch), :func:`rate` and :func:`sum_rate`. Everything in a
summary merges exactly (sums, extremes, sketch buckets), so :meth:`Summarize.merge` serves session
windows and :func:`combine` rolls windows up (minutes into an hour).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from operator import attrgetter
from typing import Any

from streams.events import WindowSummary
from streams.sketch import DEFAULT_ACCURACY, DEFAULT_MAX_BINS, Sketch
from streams.windows import Window

ValueOf = Callable[[Any], float]
KeyOf = Callable[[Any], str]


class Summarize:
    """``reduce(window, current, event)`` for :meth:`streams.App.windowed` into ``WindowSummary``.

    ``value(event)`` is the number observed (default: ``event.value``, as in ``MetricSample``);
    ``key(event)`` names the series in the summary (default: ``event.name``). Quantiles come from a
    sketch of ``relative_accuracy`` (see :class:`~streams.monitoring.Sketch`)::

        summarize = Summarize(key=lambda s: s.labels["sensor"])
        app.windowed(samples, Tumbling(60), into=minutes, name="minutes",
                     timestamp=lambda s: s.observed_at)(summarize)
    """

    def __init__(
        self,
        *,
        value: ValueOf = attrgetter("value"),
        key: KeyOf = attrgetter("name"),
        relative_accuracy: float = DEFAULT_ACCURACY,
        max_bins: int = DEFAULT_MAX_BINS,
    ) -> None:
        Sketch(relative_accuracy, max_bins)  # refuses a bad accuracy now, not at the first record
        self._value = value
        self._key = key
        self._accuracy = relative_accuracy
        self._max_bins = max_bins
        self.__name__ = "summarize"  # App.windowed names the agent after its reducer by default

    def __call__(self, window: Window, current: WindowSummary | None, event: Any) -> WindowSummary:
        value = float(self._value(event))
        if current is None:
            sketch = Sketch(self._accuracy, self._max_bins).add(value)
            return WindowSummary(
                key=self._key(event),
                start=window.start_at,
                end=window.end_at,
                count=1,
                sum=value,
                min=value,
                max=value,
                sketch=sketch.to_record(),
            )
        sketch = self._sketch_of(current).add(value)
        return WindowSummary(
            key=current.key,
            start=window.start_at,
            end=window.end_at,
            count=current.count + 1,
            sum=current.sum + value,
            min=value if current.min is None else min(current.min, value),
            max=value if current.max is None else max(current.max, value),
            sketch=sketch.to_record(),
        )

    def merge(self, window: Window, earlier: WindowSummary, later: WindowSummary) -> WindowSummary:
        """``merge(window, earlier, later)`` for session windows: one summary of both."""
        return _combined(earlier.key, window, [earlier, later], self._max_bins)

    def _sketch_of(self, summary: WindowSummary) -> Sketch:
        if summary.sketch is None:
            return Sketch(self._accuracy, self._max_bins)
        return Sketch.from_record(summary.sketch, self._max_bins)


def combine(summaries: Iterable[WindowSummary], window: Window) -> WindowSummary | None:
    """One summary over ``window`` of ``summaries`` of one key (e.g. an hour's minutes); None for none."""
    parts = list(summaries)
    if not parts:
        return None
    return _combined(parts[0].key, window, parts, DEFAULT_MAX_BINS)


def _combined(key: str, window: Window, parts: list[WindowSummary], max_bins: int) -> WindowSummary:
    lows = [p.min for p in parts if p.min is not None]
    highs = [p.max for p in parts if p.max is not None]
    sketch: Sketch | None = None
    for part in parts:
        if part.sketch is not None:
            piece = Sketch.from_record(part.sketch, max_bins)
            sketch = piece if sketch is None else sketch.merge(piece)
    return WindowSummary(
        key=key,
        start=window.start_at,
        end=window.end_at,
        count=sum(p.count for p in parts),
        sum=sum(p.sum for p in parts),
        min=min(lows) if lows else None,
        max=max(highs) if highs else None,
        sketch=None if sketch is None else sketch.to_record(),
    )


def mean(summary: WindowSummary) -> float | None:
    return summary.sum / summary.count if summary.count else None


def quantile(summary: WindowSummary, q: float) -> float | None:
    """The ``q``-quantile of the window's values from its sketch (within its relative accuracy, and
    never outside the exact min and max); None without a sketch or values."""
    if summary.sketch is None:
        return None
    found = Sketch.from_record(summary.sketch).quantile(q)
    if found is None:
        return None
    if summary.min is not None:
        found = max(found, summary.min)
    if summary.max is not None:
        found = min(found, summary.max)
    return found


def _seconds(summary: WindowSummary) -> float:
    return (summary.end - summary.start).total_seconds()


def rate(summary: WindowSummary) -> float | None:
    """Records per second over the window's length (None for a window of no length, e.g. a session
    of one record)."""
    seconds = _seconds(summary)
    return summary.count / seconds if seconds > 0 else None


def sum_rate(summary: WindowSummary) -> float | None:
    """The values' sum per second over the window (bytes/s from byte counts, say)."""
    seconds = _seconds(summary)
    return summary.sum / seconds if seconds > 0 else None


__all__ = ["Summarize", "combine", "mean", "quantile", "rate", "sum_rate"]
