"""Least-load routing: which pool of a capability's specialists a request goes to.

A capability may be served by several pools (``app.specialist(capability, ..., pool="gpu")``), each
a consumer group with request topics of its own. A :class:`Routing` sends each request to the pool
in rotation with the least work: messages in flight plus lag, as its workers' latest heartbeats say
(a :class:`LoadSource`, fed from the heartbeat topic by the runner and the client), plus the requests
this process sent it since those beats (so a burst between two beats spreads instead of herding onto
the pool that looked idle). A pool none of whose workers beat lately is out of rotation; with no pool
in rotation (or no heartbeats at all), requests are spread evenly over every pool. Requests already
on an out-of-rotation pool's topics stay there until one of its workers is back.

It decides; it never sends. A workflow journals the pool it chose with the step, so a replay never
asks again.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

_FORGET_SENDS_MS = 60_000  # sends older than this no longer weigh on a pool without heartbeats


@dataclass(frozen=True)
class PoolLoad:
    """A pool as its workers' latest heartbeats show it: ``live`` if one of them beat lately (in
    rotation), ``load`` the messages its live workers hold in flight plus their lag, ``as_of_ms`` the
    newest of those beats (None: exact now, as on the in-memory twin)."""

    live: bool
    load: int
    as_of_ms: int | None = None


class LoadSource(Protocol):
    """Where a :class:`Routing` learns how loaded a pool (a consumer group) is."""

    def load(self, group_id: str) -> PoolLoad | None:
        """The pool's load, or None if none of its workers was ever heard of."""
        ...


class Grouped(Protocol):
    """A pool, as far as routing needs it (:class:`streams.specialists.Pool`)."""

    @property
    def group_id(self) -> str: ...


class Routing:
    """Chooses pools for one app's calls. ``source`` is set by whoever follows the heartbeats (the
    runner, the client, the twin); without one, requests are spread evenly."""

    def __init__(self) -> None:
        self.source: LoadSource | None = None
        self._sent: dict[str, deque[int]] = defaultdict(deque)  # send times (ms) by consumer group

    def choose(self, pools: Mapping[str | None, Grouped]) -> str | None:
        """Which of a capability's ``pools`` its next request goes to (None: the unnamed pool)."""
        if len(pools) <= 1:
            return next(iter(pools), None)
        now = int(time.time() * 1000)
        loads = {name: self._load(pool.group_id) for name, pool in pools.items()}
        in_rotation = [name for name, load in loads.items() if load is not None and load.live]
        order = list(pools)
        if in_rotation:
            chosen = min(
                in_rotation,
                key=lambda name: (self._estimate(pools[name].group_id, loads[name]), order.index(name)),
            )
        else:
            chosen = min(order, key=lambda name: (self._recent(pools[name].group_id, now), order.index(name)))
        self._sent[pools[chosen].group_id].append(now)
        return chosen

    def _load(self, group_id: str) -> PoolLoad | None:
        return None if self.source is None else self.source.load(group_id)

    def _estimate(self, group_id: str, load: PoolLoad | None) -> int:
        """The pool's load from its beats plus what this process sent it since."""
        assert load is not None
        if load.as_of_ms is None:
            return load.load
        sent = self._sent[group_id]
        while sent and sent[0] <= load.as_of_ms:
            sent.popleft()  # the beat counts it already
        return load.load + len(sent)

    def _recent(self, group_id: str, now: int) -> int:
        sent = self._sent[group_id]
        while sent and sent[0] < now - _FORGET_SENDS_MS:
            sent.popleft()
        return len(sent)


__all__ = ["Grouped", "LoadSource", "PoolLoad", "Routing"]
