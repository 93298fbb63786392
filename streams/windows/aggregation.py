"""A windowed aggregation as an agent's handler: event time, stream time, late records, emission.

Each input partition has a *stream time*: the highest event time it has seen, kept in a table beside
the windows so it survives crashes and moves with the partition. A record advances it, is folded into
its open windows (or is late), and then every window whose close time stream time has reached is
closed: emitted (``emit="final"``) and deleted. With ``emit="update"`` each changed window is emitted
at once instead. Everything one record changes (windows, stream time, emitted results) belongs to one
handler call, so with exactly-once it commits or vanishes as a whole.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from streams.context import Context
from streams.errors import ConfigError, LateRecord
from streams.serde.record import Record
from streams.tables import StoreKind, Table
from streams.timestamps import epoch_millis, iso
from streams.topics import Topic
from streams.windows.index import OpenWindows
from streams.windows.kinds import AggregateWindows, Kind, Merger, Reducer, SlidingWindows
from streams.windows.records import StreamTime, buffer_of
from streams.windows.spec import Session, Sliding, Window, WindowSpec

A = TypeVar("A", bound=Record)
E = TypeVar("E", bound=Record)

Emit = Literal["final", "update"]
Late = Literal["count", "dead-letter"]
EventTime = Any  # Callable[[E], datetime | int]: a datetime, or epoch milliseconds

_STREAM_TIME = "stream-time"
_INDEX = "open-windows"


def _millis(moment: datetime | int) -> int:
    if isinstance(moment, datetime):
        return epoch_millis(moment)
    if isinstance(moment, int) and not isinstance(moment, bool):
        return moment
    raise TypeError(f"an event time must be a datetime or epoch milliseconds (int), not {moment!r}")


class WindowedAggregation(Generic[E, A]):
    """The handler of a windowed agent (see :meth:`streams.App.windowed`) and the tables it needs."""

    def __init__(
        self,
        *,
        source: Topic[E],
        spec: WindowSpec,
        reduce: Reducer[A],
        into: Topic[A],
        emit: Emit = "final",
        merge: Merger[A] | None = None,
        timestamp: EventTime | None = None,
        late: Late = "count",
        store: StoreKind = "memory",
    ) -> None:
        where = f"windowed aggregation into {into.name}"
        if source.key is None:
            raise ConfigError(f"{where}: topic {source.name} has no key; windows are kept per key")
        if into.key != source.key:
            raise ConfigError(f"{where}: its key type must be {source.name}'s ({source.key.__name__})")
        if emit not in ("final", "update"):
            raise ConfigError(f"{where}: emit must be 'final' or 'update', not {emit!r}")
        if late not in ("count", "dead-letter"):
            raise ConfigError(f"{where}: late must be 'count' or 'dead-letter', not {late!r}")
        if isinstance(spec, Session) != (merge is not None):
            raise ConfigError(f"{where}: session windows need merge=..., other windows take none")
        if timestamp is not None and not callable(timestamp):
            raise ConfigError(f"{where}: timestamp must be a function of the event")
        self.into = into
        self._emit = emit
        self._late = late
        self._timestamp = timestamp
        self._kind: Kind
        if isinstance(spec, Sliding):
            buffer = buffer_of(source.value)
            self._kind = SlidingWindows(spec, self._checked(reduce), buffer)
            state: type[Record] = buffer
        else:
            self._kind = AggregateWindows(spec, self._checked(reduce), merge and self._checked(merge))
            state = into.value
        self.windows: Table[Any] = Table(name="windows", value=state, key=source.key, store=store)
        self.stream_time: Table[StreamTime] = Table(name="stream-time", value=StreamTime, key=str)

    @property
    def tables(self) -> tuple[Table[Any], ...]:
        return (self.windows, self.stream_time)

    async def __call__(self, event: E, ctx: Context) -> None:
        windows = ctx.table(self.windows)
        try:
            await self._handle(event, ctx, windows.cache())
        except BaseException:
            # The index may already describe writes this failed call will not keep: rebuild it.
            windows.cache().pop(_INDEX, None)
            raise

    async def _handle(self, event: E, ctx: Context, cache: dict[str, Any]) -> None:
        if ctx.key is None:
            raise ValueError(f"a record without a key cannot be aggregated into {self.into.name}")
        t = ctx.timestamp_ms if self._timestamp is None else _millis(self._timestamp(event))
        windows = ctx.table(self.windows)
        clock = ctx.table(self.stream_time)
        before = clock.get(_STREAM_TIME)
        stream_time = t if before is None else max(before.ms, t)
        index: OpenWindows[Any] | None = cache.get(_INDEX)
        if index is None:
            index = cache[_INDEX] = OpenWindows()
            self._kind.build(windows, index, stream_time if before is None else before.ms)
        updated = self._kind.add(windows, index, ctx.key, t, event, stream_time)
        if not updated:
            raise LateRecord(
                f"record at {iso(t)} is late: its windows closed before stream time {iso(stream_time)}",
                dead_letter=self._late == "dead-letter",
            )
        if before is None or stream_time > before.ms:
            clock.set(_STREAM_TIME, StreamTime(ms=stream_time))
        if self._emit == "update":
            for key, _, aggregate in updated:
                if aggregate is not None:
                    await self._send(ctx, key, aggregate)
        for purpose, key, window in list(index.due(stream_time)):
            aggregate = self._kind.due(windows, index, purpose, key, window)
            if purpose == "close" and self._emit == "final" and aggregate is not None:
                await self._send(ctx, key, aggregate)

    async def _send(self, ctx: Context, key: Any, aggregate: Any) -> None:
        await ctx.send(self.into, aggregate, key=key)

    def _checked(self, function: Callable[..., A]) -> Callable[..., A]:
        """``function``, refusing a result of the wrong type before it reaches the table."""
        wanted = self.into.value

        def checked(*args: Any) -> A:
            result = function(*args)
            if not isinstance(result, wanted):
                raise TypeError(
                    f"{getattr(function, '__name__', 'the reducer')} returned "
                    f"{type(result).__name__}; {self.into.name} takes {wanted.__name__}"
                )
            return result

        return checked


__all__ = ["Emit", "Late", "Window", "WindowedAggregation"]
