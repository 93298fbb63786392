"""Which windows of one partition are open, by key and by the stream time at which each is due.

Derived from the partition's window table and kept in the table's per-partition cache, so it is
rebuilt from the table after every (re)assignment and never describes state another worker changed.
Removals are lazy: a heap entry whose window is gone is skipped when it comes up.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable, Iterator
from typing import Generic, Literal, TypeVar

from streams.windows.spec import Window

K = TypeVar("K", bound=Hashable)

Purpose = Literal["close", "expire"]
"""``close``: the window's result becomes final. ``expire``: a sliding window buffer may drop records."""


class OpenWindows(Generic[K]):
    def __init__(self) -> None:
        self._due: list[tuple[int, Purpose, K, Window]] = []
        self._by_key: dict[K, set[Window]] = {}

    def add(self, key: K, window: Window, close_at: int) -> None:
        windows = self._by_key.setdefault(key, set())
        if window not in windows:
            windows.add(window)
            heapq.heappush(self._due, (close_at, "close", key, window))

    def expire(self, key: K, at: int) -> None:
        """Ask for ``(at, "expire", key)`` to come due at stream time ``at``."""
        heapq.heappush(self._due, (at, "expire", key, Window(at, at)))

    def remove(self, key: K, window: Window) -> None:
        windows = self._by_key.get(key)
        if windows is not None:
            windows.discard(window)
            if not windows:
                del self._by_key[key]

    def of(self, key: K) -> set[Window]:
        return self._by_key.get(key, set())

    def due(self, stream_time: int) -> Iterator[tuple[Purpose, K, Window]]:
        """Pop what is due at ``stream_time``, earliest first; a closed window leaves the index."""
        while self._due and self._due[0][0] <= stream_time:
            _, purpose, key, window = heapq.heappop(self._due)
            if purpose == "expire":
                yield purpose, key, window
            elif window in self.of(key):
                self.remove(key, window)
                yield purpose, key, window

    def __len__(self) -> int:
        return sum(len(windows) for windows in self._by_key.values())
