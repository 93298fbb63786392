"""Middleware: cross-cutting concerns (tracing, metrics) as an onion around handling and sending.

A middleware sees every message an agent handles (``handle``: call ``call_next()`` exactly once to run
the rest of the chain and the handler) and every message a handler sends (``on_send``: return the
headers to send, usually with something added). Handlers never need to know middleware exists.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from streams.context import Context
from streams.headers import Headers

CallNext = Callable[[], Awaitable[None]]


class Middleware:
    """Base class; override either hook. The defaults pass everything through."""

    async def handle(self, ctx: Context, call_next: CallNext) -> None:
        await call_next()

    def on_send(self, ctx: Context, topic: str, headers: Headers) -> Headers:
        return headers


def _overrides(middleware: Middleware, hook: str) -> bool:
    """Whether ``middleware`` has a ``hook`` of its own, rather than the pass-through default."""
    own = getattr(type(middleware), hook, None)
    return own is not None and own is not getattr(Middleware, hook)


class Chain:
    """A fixed list of middleware, outermost first, applied around one handler call or one send."""

    def __init__(self, middleware: Sequence[Middleware]) -> None:
        # Only the middleware that overrides a hook takes part in it: one that only watches sends costs
        # nothing around handler calls, and the other way round.
        self._middleware = tuple(m for m in middleware if _overrides(m, "handle"))
        self._senders = tuple(m for m in middleware if _overrides(m, "on_send"))

    def __bool__(self) -> bool:
        return bool(self._middleware or self._senders)

    @property
    def wraps_handlers(self) -> bool:
        """Whether any middleware runs around handler calls."""
        return bool(self._middleware)

    @property
    def rewrites_sends(self) -> bool:
        """Whether any middleware sees the headers of sends."""
        return bool(self._senders)

    def handle(self, ctx: Context, handler: CallNext) -> Awaitable[None]:
        """The chain around ``handler``, to await (a plain function: one coroutine less per message)."""
        if not self._middleware:
            return handler()
        return self._call(0, ctx, handler)

    async def _call(self, index: int, ctx: Context, handler: CallNext) -> None:
        middleware = self._middleware
        if index == len(middleware) - 1:
            # The innermost one calls the handler itself: one wrapper less on every message.
            await middleware[index].handle(ctx, handler)
            return
        await middleware[index].handle(ctx, lambda: self._call(index + 1, ctx, handler))

    def on_send(self, ctx: Context, topic: str, headers: Headers) -> Headers:
        for middleware in self._senders:
            headers = middleware.on_send(ctx, topic, headers)
        return headers


NO_MIDDLEWARE = Chain(())
