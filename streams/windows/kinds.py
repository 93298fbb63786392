"""How each window shape keeps its state in the window table of one partition.

Tumbling and hopping windows, and sessions, keep one aggregate per (key, window) under the table key
``"<start>:<end>:<key>"``; a sliding window keeps each key's recent records (a :class:`Buffer`) and
folds them when a result is asked for. A closed window is deleted in the same handler call that emits
it, so with exactly-once the final result and the deletion commit together.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from streams.serde.record import Record
from streams.state.view import TableView
from streams.windows.index import OpenWindows, Purpose
from streams.windows.records import Buffer
from streams.windows.spec import Hopping, Session, Sliding, Tumbling, Window

A = TypeVar("A", bound=Record)
Key = str | bytes  # the input topic's key type

Reducer = Callable[[Window, A | None, Any], A]
"""``reduce(window, current, event)``: the window's new aggregate (``current`` is None at first)."""
Merger = Callable[[Window, A, A], A]
"""``merge(window, earlier, later)``: one session's aggregate from two that a record joined."""

Updated = tuple[Key, Window, Any]


def window_key(key: Any, window: Window) -> Any:
    if isinstance(key, bytes):
        return b"%d:%d:%b" % (window.start, window.end, key)
    return f"{window.start}:{window.end}:{key}"


def parse_window_key(stored: Any) -> tuple[Any, Window]:
    start, end, key = stored.split(b":" if isinstance(stored, bytes) else ":", 2)
    return key, Window(int(start), int(end))


class Kind(Protocol):
    def build(self, view: TableView[Any], index: OpenWindows[Any], stream_time: int) -> None:
        """Fill an empty index from the table (after assignment)."""

    def add(
        self, view: TableView[Any], index: OpenWindows[Any], key: Key, t: int, event: Any, stream_time: int
    ) -> list[Updated]:
        """Fold ``event`` into its open windows; none (a late record) gives an empty list."""

    def due(
        self, view: TableView[Any], index: OpenWindows[Any], purpose: Purpose, key: Key, window: Window
    ) -> Any:
        """Act on what came due; a closed window's final aggregate is returned (else None)."""


class AggregateWindows(Generic[A]):
    """Tumbling, hopping and session windows: one stored aggregate per window."""

    def __init__(
        self, spec: Tumbling | Hopping | Session, reduce: Reducer[A], merge: Merger[A] | None
    ) -> None:
        self._spec = spec
        self._reduce = reduce
        self._merge = merge

    def build(self, view: TableView[Any], index: OpenWindows[Any], stream_time: int) -> None:
        for stored, _ in view.scan():
            key, window = parse_window_key(stored)
            index.add(key, window, self._spec.close_at(window))

    def add(
        self, view: TableView[Any], index: OpenWindows[Any], key: Key, t: int, event: Any, stream_time: int
    ) -> list[Updated]:
        spec = self._spec
        if isinstance(spec, Session):
            return self._add_to_session(spec, view, index, key, t, event, stream_time)
        updated: list[Updated] = []
        for window in spec.windows(t):
            close_at = spec.close_at(window)
            if close_at <= stream_time:
                continue  # this one closed; a hopping record may still reach the later ones
            stored = window_key(key, window)
            aggregate = self._reduce(window, view.get(stored), event)
            view.set(stored, aggregate)
            index.add(key, window, close_at)
            updated.append((key, window, aggregate))
        return updated

    def _add_to_session(
        self,
        spec: Session,
        view: TableView[Any],
        index: OpenWindows[Any],
        key: Key,
        t: int,
        event: Any,
        stream_time: int,
    ) -> list[Updated]:
        if spec.close_at(Window(t, t)) <= stream_time:
            return []
        # Sessions of one key lie more than a gap apart, so the ones this record reaches are all it joins.
        joined = sorted(window for window in index.of(key) if spec.joins(window, t))
        session = Window(min([t, *(w.start for w in joined)]), max([t, *(w.end for w in joined)]))
        aggregate: A | None = None
        for window in joined:
            stored = window_key(key, window)
            part = view.get(stored)
            view.delete(stored)
            index.remove(key, window)
            if part is None:
                continue
            if aggregate is None:
                aggregate = part
            else:
                assert self._merge is not None, "a session window declares its merge"
                aggregate = self._merge(session, aggregate, part)
        aggregate = self._reduce(session, aggregate, event)
        view.set(window_key(key, session), aggregate)
        index.add(key, session, spec.close_at(session))
        return [(key, session, aggregate)]

    def due(
        self, view: TableView[Any], index: OpenWindows[Any], purpose: Purpose, key: Key, window: Window
    ) -> Any:
        stored = window_key(key, window)
        aggregate = view.get(stored)
        view.delete(stored)
        return aggregate


class SlidingWindows(Generic[A]):
    """Sliding windows: each key's records of the last ``size + grace``, folded per result."""

    def __init__(self, spec: Sliding, reduce: Reducer[A], buffer: type[Buffer]) -> None:
        self._spec = spec
        self._reduce = reduce
        self._buffer = buffer

    def build(self, view: TableView[Any], index: OpenWindows[Any], stream_time: int) -> None:
        spec = self._spec
        for key, buffer in view.scan():
            for t in set(buffer.times):
                window = spec.window(t)
                if spec.close_at(window) > stream_time:  # a closed one was emitted already
                    index.add(key, window, spec.close_at(window))
            if buffer.times:
                index.expire(key, spec.keep_until(max(buffer.times)))

    def add(
        self, view: TableView[Any], index: OpenWindows[Any], key: Key, t: int, event: Any, stream_time: int
    ) -> list[Updated]:
        spec = self._spec
        if spec.keep_until(t) <= stream_time:
            return []  # every window that could hold it has closed
        current = view.get(key)
        times = list(current.times) if current else []
        events = list(current.events) if current else []
        at = bisect.bisect_right(times, t)  # after records of the same time: arrival order
        times.insert(at, t)
        events.insert(at, event)
        view.set(key, self._buffer(times=times, events=events))
        index.expire(key, spec.keep_until(t))
        window = spec.window(t)
        if spec.close_at(window) <= stream_time:
            # Its own window has closed, but later records' windows still take it: no result of its own.
            return [(key, window, None)]
        index.add(key, window, spec.close_at(window))
        return [(key, window, self._fold(times, events, window))]

    def due(
        self, view: TableView[Any], index: OpenWindows[Any], purpose: Purpose, key: Key, window: Window
    ) -> Any:
        current = view.get(key)
        if current is None:
            return None
        if purpose == "close":
            return self._fold(current.times, current.events, window)
        # Expire records that no open window can hold any more: stream time is window.start here.
        keep = [i for i, t in enumerate(current.times) if self._spec.keep_until(t) > window.start]
        if not keep:
            view.delete(key)
        elif len(keep) < len(current.times):
            view.set(
                key,
                self._buffer(
                    times=[current.times[i] for i in keep], events=[current.events[i] for i in keep]
                ),
            )
        return None

    def _fold(self, times: list[int], events: list[Any], window: Window) -> A | None:
        aggregate: A | None = None
        low = bisect.bisect_left(times, window.start)
        high = bisect.bisect_right(times, window.end)
        for event in events[low:high]:
            aggregate = self._reduce(window, aggregate, event)
        return aggregate
