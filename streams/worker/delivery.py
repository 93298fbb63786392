"""Delivery modes: what happens to a handler's outputs and dead letters until the input is committed.

- :class:`AtLeastOnceDelivery` sends at once; the input is finished when the broker acknowledged every
  output, and its offset is committed after that.
- :class:`ExactlyOnceDelivery` holds outputs per input offset; the committer produces the held outputs
  of every message below the commit position in the transaction that commits those offsets.

Both are plain asyncio objects (no Kafka client, no threads): the in-memory twin uses them unchanged.
The worker asks the mode instead of branching on the guarantee.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from streams.worker.outbox import DirectOutbox, Encoders, HeldOutbox, Output, Sender

TP = tuple[str, int]


class AtLeastOnceDelivery:
    transactional = False
    commit_interval = 0.5  # seconds between periodic commits; a crash repeats at most this much work

    def __init__(self, sender: Sender, encoders: Encoders) -> None:
        self._sender = sender
        self._encoders = encoders

    def outbox(self) -> DirectOutbox:
        return DirectOutbox(self._sender, self._encoders)

    def keep(self, outbox: DirectOutbox | HeldOutbox, tp: TP, offset: int) -> list[asyncio.Future[Any]]:
        """After a successful attempt: the deliveries the input waits for."""
        assert isinstance(outbox, DirectOutbox)
        return outbox.pending

    def discard(self, outbox: DirectOutbox | HeldOutbox) -> list[asyncio.Future[Any]]:
        """After a failed attempt: what it sent before failing goes out regardless; wait for it too."""
        assert isinstance(outbox, DirectOutbox)
        return outbox.pending

    async def dead_letter(self, output: Output, tp: TP, offset: int) -> list[asyncio.Future[Any]]:
        return [await self._sender.send(output.topic, output.value, output.key, output.headers)]

    def outputs_below(self, positions: Mapping[TP, int]) -> list[Output]:
        return []

    def holds_outputs_below(self, positions: Mapping[TP, int]) -> bool:
        return False

    def committed(self, positions: Mapping[TP, int]) -> None:
        """Nothing is held."""

    def forget(self, tp: TP) -> None:
        """Nothing is held."""


class ExactlyOnceDelivery:
    transactional = True
    commit_interval = 0.1  # outputs wait for the transaction: commit often to keep latency low

    def __init__(self, encoders: Encoders) -> None:
        self._encoders = encoders
        self._held: dict[TP, dict[int, list[Output]]] = defaultdict(dict)

    def outbox(self) -> HeldOutbox:
        return HeldOutbox(self._encoders)

    def keep(self, outbox: DirectOutbox | HeldOutbox, tp: TP, offset: int) -> list[asyncio.Future[Any]]:
        assert isinstance(outbox, HeldOutbox)
        if outbox.outputs:
            self._held[tp][offset] = outbox.outputs
        return []

    def discard(self, outbox: DirectOutbox | HeldOutbox) -> list[asyncio.Future[Any]]:
        return []  # a failed attempt's outputs were never sent: dropped with it

    async def dead_letter(self, output: Output, tp: TP, offset: int) -> list[asyncio.Future[Any]]:
        self._held[tp].setdefault(offset, []).append(output)
        return []

    def outputs_below(self, positions: Mapping[TP, int]) -> list[Output]:
        """The held outputs of every message below each position, in offset order; of the changelog
        records for one key, only the last (a table written 20 times in one transaction logs once)."""
        outputs = [
            output
            for tp, position in positions.items()
            for offset in sorted(o for o in self._held.get(tp, {}) if o < position)
            for output in self._held[tp][offset]
        ]
        return _latest_per_key(outputs)

    def holds_outputs_below(self, positions: Mapping[TP, int]) -> bool:
        """Whether any message below ``positions`` left outputs to produce."""
        return any(
            offset < position
            for tp, position in positions.items()
            for offset, outputs in self._held.get(tp, {}).items()
            if outputs
        )

    def committed(self, positions: Mapping[TP, int]) -> None:
        """Drop the outputs the transaction up to ``positions`` produced."""
        for tp, position in positions.items():
            held = self._held.get(tp)
            if held:
                for offset in [o for o in held if o < position]:
                    del held[offset]

    def forget(self, tp: TP) -> None:
        """A revoked partition's uncommitted outputs go with it: the new owner handles the inputs again."""
        self._held.pop(tp, None)


Delivery = AtLeastOnceDelivery | ExactlyOnceDelivery


def _latest_per_key(outputs: list[Output]) -> list[Output]:
    """``outputs`` without the ``latest_only`` records that a later one for the same key replaces."""
    seen: set[tuple[str, int | None, bytes | None]] = set()
    kept: list[Output] = []
    for output in reversed(outputs):
        if output.latest_only:
            slot = (output.topic, output.partition, output.key)
            if slot in seen:
                continue
            seen.add(slot)
        kept.append(output)
    kept.reverse()
    return kept
