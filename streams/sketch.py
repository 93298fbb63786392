"""A mergeable quantile sketch with a relative-error guarantee (DDSketch, Masson et al., VLDB 2019).

Values are counted in logarithmic buckets: with ``gamma = (1 + a) / (1 - a)``, bucket ``i`` holds the
values ``v`` with ``gamma**(i-1) < |v| <= gamma**i`` and answers for them with one value within
relative error ``a`` of each. A quantile read from the sketch is therefore within ``a`` (relative) of
the exact quantile of everything added, however many values that is, and two sketches of the same
accuracy merge exactly by adding their buckets' counts: the sketch of a union is the union of the
sketches, which is what lets window aggregates, partitions and restarts combine them.

The bucket count grows with the log of the values' range (about 1,150 buckets span nine decades at
1 %). Past ``max_bins`` buckets per sign, the lowest buckets (the values nearest 0) are collapsed
into one, so quantiles there lose the guarantee but memory stays bounded. Values nearer 0 than
:data:`MIN_MAGNITUDE` are counted as 0.

:class:`Sketch` is the mutable working form; :class:`~streams.events.QuantileSketch` the Avro record
it is kept and sent as (inside a :class:`~streams.events.WindowSummary`). It lives below telemetry,
which sketches handler latency for heartbeats, and monitoring, which sketches window values.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

from streams.errors import ConfigError
from streams.events import QuantileSketch, SketchBins

MIN_MAGNITUDE = 1e-9
"""Values with ``|v|`` below this count as 0 (and are read back as 0)."""

DEFAULT_ACCURACY = 0.01
DEFAULT_MAX_BINS = 2048


class Sketch:
    """Counts of values in logarithmic buckets; see the module docstring for the guarantee."""

    __slots__ = (
        "_gamma",
        "_log_gamma",
        "_negative",
        "_positive",
        "max_bins",
        "relative_accuracy",
        "zero_count",
    )

    def __init__(self, relative_accuracy: float = DEFAULT_ACCURACY, max_bins: int = DEFAULT_MAX_BINS) -> None:
        if not 0.0 < relative_accuracy < 1.0:
            raise ConfigError(f"relative_accuracy must lie between 0 and 1, not {relative_accuracy!r}")
        if max_bins < 2:
            raise ConfigError(f"max_bins must be at least 2, not {max_bins!r}")
        self.relative_accuracy = relative_accuracy
        self.max_bins = max_bins
        self._gamma = (1.0 + relative_accuracy) / (1.0 - relative_accuracy)
        self._log_gamma = math.log(self._gamma)
        self._positive: dict[int, int] = {}
        self._negative: dict[int, int] = {}
        self.zero_count = 0

    @property
    def count(self) -> int:
        return self.zero_count + sum(self._positive.values()) + sum(self._negative.values())

    def add(self, value: float, count: int = 1) -> Sketch:
        """Count ``value`` ``count`` times; returns the sketch, for chaining."""
        if not math.isfinite(value):
            raise ValueError(f"a sketch counts finite values, not {value!r}")
        if count < 1:
            raise ValueError(f"count must be positive, not {count!r}")
        magnitude = abs(value)
        if magnitude < MIN_MAGNITUDE:
            self.zero_count += count
            return self
        bins = self._positive if value > 0 else self._negative
        index = math.ceil(math.log(magnitude) / self._log_gamma)
        bins[index] = bins.get(index, 0) + count
        if len(bins) > self.max_bins:
            _collapse_lowest(bins, self.max_bins)
        return self

    def extend(self, values: Iterable[float]) -> Sketch:
        for value in values:
            self.add(value)
        return self

    def merge(self, other: Sketch) -> Sketch:
        """Add ``other``'s counts to this sketch (same accuracy required); returns this sketch."""
        if other.relative_accuracy != self.relative_accuracy:
            raise ValueError(
                f"cannot merge sketches of accuracy {self.relative_accuracy} and {other.relative_accuracy}"
            )
        for mine, theirs in ((self._positive, other._positive), (self._negative, other._negative)):
            for index, count in theirs.items():
                mine[index] = mine.get(index, 0) + count
            if len(mine) > self.max_bins:
                _collapse_lowest(mine, self.max_bins)
        self.zero_count += other.zero_count
        return self

    def quantile(self, q: float) -> float | None:
        """The ``q``-quantile (0 <= q <= 1): within relative accuracy of the value of rank
        ``floor(q * (count - 1))`` (from 0) among everything added; None for an empty sketch."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"q must lie between 0 and 1, not {q!r}")
        total = self.count
        if total == 0:
            return None
        rank = math.floor(q * (total - 1))
        seen = 0
        for value, count in self._ascending():
            seen += count
            if seen > rank:
                return value
        raise AssertionError("the ranks of a sketch add up to its count")  # pragma: no cover

    def _value(self, index: int) -> float:
        # The point of bucket index that is within relative accuracy of both of its bounds.
        return 2.0 * self._gamma**index / (self._gamma + 1.0)

    def _ascending(self) -> Iterator[tuple[float, int]]:
        for index in sorted(self._negative, reverse=True):  # largest magnitude first: most negative
            yield -self._value(index), self._negative[index]
        if self.zero_count:
            yield 0.0, self.zero_count
        for index in sorted(self._positive):
            yield self._value(index), self._positive[index]

    def to_record(self) -> QuantileSketch:
        return QuantileSketch(
            relative_accuracy=self.relative_accuracy,
            zero_count=self.zero_count,
            positive=_bins_record(self._positive),
            negative=_bins_record(self._negative),
        )

    @classmethod
    def from_record(cls, record: QuantileSketch, max_bins: int = DEFAULT_MAX_BINS) -> Sketch:
        sketch = cls(record.relative_accuracy, max_bins)
        sketch.zero_count = record.zero_count
        for bins, stored in ((sketch._positive, record.positive), (sketch._negative, record.negative)):
            if len(stored.indices) != len(stored.counts):
                raise ValueError("a sketch record's bucket indices and counts differ in length")
            bins.update(zip(stored.indices, stored.counts, strict=True))
        return sketch

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sketch):
            return NotImplemented
        return (
            self.relative_accuracy == other.relative_accuracy
            and self.zero_count == other.zero_count
            and self._positive == other._positive
            and self._negative == other._negative
        )

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"Sketch(relative_accuracy={self.relative_accuracy}, count={self.count})"


def _bins_record(bins: dict[int, int]) -> SketchBins:
    indices = sorted(bins)
    return SketchBins(indices=indices, counts=[bins[i] for i in indices])


def _collapse_lowest(bins: dict[int, int], max_bins: int) -> None:
    """Fold the lowest buckets into the lowest one kept, leaving ``max_bins``."""
    indices = sorted(bins)
    cut = len(indices) - max_bins
    keep = indices[cut]
    bins[keep] += sum(bins.pop(index) for index in indices[:cut])


def merged(records: Iterable[QuantileSketch]) -> QuantileSketch | None:
    """One sketch of everything ``records`` counted (e.g. per-window sketches into an hour's)."""
    total: Sketch | None = None
    for record in records:
        sketch = Sketch.from_record(record)
        total = sketch if total is None else total.merge(sketch)
    return None if total is None else total.to_record()


__all__ = ["MIN_MAGNITUDE", "Sketch", "merged"]
