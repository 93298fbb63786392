"""Counting the broker's acknowledgements of one input's outputs.

An input is finished (its offset may be committed) once every output it sent is acknowledged. One
:class:`Acks` per input counts them as the producer reports them: no future per output and no callback
scheduled through the event loop per acknowledgement, which on a relay stage cost more than the send.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from streams.errors import TransportError


class Acks:
    """Outputs sent for one input and the broker's reports on them (called on the event loop)."""

    __slots__ = ("_acked", "_on_settled", "_sent", "error")

    def __init__(self) -> None:
        self._sent = 0
        self._acked = 0
        self._on_settled: Callable[[], None] | None = None
        self.error: TransportError | None = None  # the first output the broker gave up on

    def expect(self) -> None:
        """One more output is on its way (called before it is queued)."""
        self._sent += 1

    def withdraw(self) -> None:
        """The output announced by :meth:`expect` was never queued (the send raised)."""
        self._sent -= 1

    def report(self, error: TransportError | None) -> None:
        """The producer's report on one output."""
        self._acked += 1
        if error is not None and self.error is None:
            self.error = error
        if self._on_settled is not None and self.settled:
            on_settled, self._on_settled = self._on_settled, None
            on_settled()

    @property
    def settled(self) -> bool:
        """Every output acknowledged, or one failed (the input can never finish then)."""
        return self._acked >= self._sent or self.error is not None

    def when_settled(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once settled: now if so already, else on the report that settles it."""
        if self.settled:
            callback()
        else:
            self._on_settled = callback

    async def wait(self) -> None:
        """Return once settled (woken by the report that settles it, no polling)."""
        if self.settled:
            return
        settled: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.when_settled(lambda: _resolve(settled))
        await settled


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
