"""Auto-scaling signals: how many workers an agent needs, from its lag and its throughput.

The rule (documented in docs/telemetry.md, "Scaling signals")::

    needed   = incoming + lag / drain_within               messages/s to keep up and clear the backlog
    workers  = ceil(needed / per_worker - 0.1)             bounded to [1, partitions]

``incoming`` is the rate at which messages arrive at the agent's partitions, ``per_worker`` the rate
one worker handled them over the same span, ``lag`` what waits now, ``drain_within`` how soon the
backlog should be gone. A worker beyond the partition count would own nothing. The 0.1 is tolerance:
a worker that just keeps up measures a hair behind or ahead, and is not to be told to double.

What it can and cannot say: a worker with work waiting runs at its capacity, so a backlog is sized
right. A worker that keeps up handles what arrives, not what it could, so the rule then holds at the
current count: it tells when and how far to scale out, not how far in.

Nothing here reads Kafka or a clock: the worker's metrics (:mod:`streams.telemetry.metrics`, from each
worker's own partitions) and ``streams lag --recommend`` (from a group's committed offsets) feed it.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass

from streams.errors import ConfigError

TOLERANCE = 0.1
DEFAULT_DRAIN_WITHIN = 60.0


def recommended_workers(
    *,
    incoming: float,
    per_worker: float,
    lag: int,
    partitions: int,
    drain_within: float = DEFAULT_DRAIN_WITHIN,
) -> int | None:
    """Workers needed to keep up with ``incoming`` msg/s and clear ``lag`` within ``drain_within``
    seconds at ``per_worker`` msg/s each, bounded to [1, ``partitions``]. None when no pace was
    measured (nothing handled) while work waits: a stuck or starting worker says nothing of its pace."""
    if drain_within <= 0:
        raise ConfigError(f"drain_within must be positive, not {drain_within}")
    needed = max(0.0, incoming) + max(0, lag) / drain_within
    if per_worker <= 0:
        return 1 if needed == 0 else None
    workers = math.ceil(needed / per_worker - TOLERANCE)
    return max(1, min(max(1, partitions), workers))


@dataclass(frozen=True)
class Rates:
    """What a worker (or a group) did between two observations, per second."""

    incoming: float  # messages that arrived at its partitions
    handled: float  # messages it finished


@dataclass(frozen=True)
class _Observation:
    at: float
    handled: int
    end: int


class RateMeter:
    """Rates per key (an agent's worker) from running totals: each call compares with the oldest
    observation kept, at most ``window`` seconds old, once it is ``min_span`` seconds old.

    ``end`` is the sum of the ends of the partitions in ``basis``; what it grew by arrived. A change
    of ``basis`` (a rebalance, a partition's end newly reported) starts the key afresh, or a newly
    counted partition would pass for a burst of arrivals."""

    def __init__(self, window: float = 30.0, min_span: float = 1.0) -> None:
        self._window, self._min_span = window, min_span
        self._seen: dict[Hashable, tuple[Hashable, deque[_Observation]]] = {}

    def observe(
        self, key: Hashable, at: float, handled: int, end: int, basis: Hashable = None
    ) -> Rates | None:
        """Record ``handled`` and ``end`` (running totals) at time ``at`` (seconds); the rates since
        the oldest kept observation, or None until one is ``min_span`` old."""
        kept = self._seen.get(key)
        if kept is None or kept[0] != basis:
            kept = self._seen[key] = (basis, deque())
        seen = kept[1]
        seen.append(_Observation(at, handled, end))
        while len(seen) > 2 and at - seen[1].at >= self._window:
            seen.popleft()  # keep the oldest observation that still spans the window
        first = seen[0]
        span = at - first.at
        if span < self._min_span:
            return None
        # A restarted worker's totals start again, a recreated topic's ends too: never a negative rate.
        return Rates(incoming=max(0, end - first.end) / span, handled=max(0, handled - first.handled) / span)
