"""Delivery modes: what happens to a handler's outputs and dead letters until the input is committed.

- :class:`AtLeastOnceDelivery` sends at once; the input is finished when the broker acknowledged every
  output, and its offset is committed after that.
- :class:`ExactlyOnceDelivery` holds outputs per input offset; the committer produces the held outputs
  of every message below the commit position in the transaction that commits those offsets.

Both hold the changelog records of table writes per input offset (:class:`HeldOutputs`): a commit
carries the last record of each key written below its positions, encoded only then, and sent before
(at-least-once) or with (exactly-once) the offsets. A table written many times between two commits
costs one record per key, as a compacted changelog keeps anyway.

Both are plain asyncio objects (no Kafka client, no threads): the in-memory twin uses them unchanged.
The worker asks the mode instead of branching on the guarantee.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

from streams.worker.acks import Acks
from streams.worker.outbox import DirectOutbox, Encoders, HeldOutbox, Output, Sender

TP = tuple[str, int]


class HeldOutputs:
    """Outputs kept per input offset until the commit that passes that offset carries them."""

    def __init__(self, encoders: Encoders) -> None:
        self._encoders = encoders
        self._held: dict[TP, dict[int, list[Output]]] = defaultdict(dict)

    def hold(self, tp: TP, offset: int, outputs: list[Output]) -> None:
        if outputs:
            self._held[tp].setdefault(offset, []).extend(outputs)

    def below(self, positions: Mapping[TP, int]) -> list[Output]:
        """The held outputs of every message below each position, in offset order, encoded; of the
        changelog records for one key, only the last (a table written 20 times logs once)."""
        outputs = [
            output
            for tp, position in positions.items()
            for offset in sorted(o for o in self._held.get(tp, {}) if o < position)
            for output in self._held[tp][offset]
        ]
        return [output.encoded(self._encoders) for output in _latest_per_key(outputs)]

    def any_below(self, positions: Mapping[TP, int], *, results_only: bool = False) -> bool:
        """Whether any message below ``positions`` left outputs to carry (with ``results_only``, other
        than changelog records)."""
        return any(
            offset < position
            for tp, position in positions.items()
            for offset, outputs in self._held.get(tp, {}).items()
            if outputs and (not results_only or not all(output.latest_only for output in outputs))
        )

    def committed(self, positions: Mapping[TP, int]) -> None:
        """Drop the outputs a commit up to ``positions`` carried."""
        for tp, position in positions.items():
            held = self._held.get(tp)
            if held:
                # Rebuilt, not deleted from: a commit usually carries every held offset.
                self._held[tp] = {offset: kept for offset, kept in held.items() if offset >= position}

    def forget(self, tp: TP) -> None:
        """A revoked partition's uncommitted outputs go with it: the new owner handles the inputs again."""
        self._held.pop(tp, None)


class AtLeastOnceDelivery:
    transactional = False
    commit_interval = 0.5  # seconds between periodic commits; a crash repeats at most this much work

    def __init__(self, sender: Sender, encoders: Encoders) -> None:
        self._sender = sender
        self._encoders = encoders
        self._changelogs = HeldOutputs(encoders)

    def outbox(self, acks: Acks) -> DirectOutbox:
        """For one attempt at an input; ``acks`` spans its attempts: what a failed attempt sent before
        failing goes out regardless, and the input waits for it too."""
        return DirectOutbox(self._sender, self._encoders, acks)

    def keep(self, outbox: DirectOutbox | HeldOutbox, tp: TP, offset: int) -> None:
        """After a successful attempt: its outputs are sent and counted; its changelog records wait for
        the commit that passes ``offset``."""
        assert isinstance(outbox, DirectOutbox)
        self._changelogs.hold(tp, offset, outbox.held)

    def discard(self, outbox: DirectOutbox | HeldOutbox) -> None:
        """After a failed attempt: nothing to undo, what it sent is counted like the rest (a failed
        attempt writes no table)."""

    async def dead_letter(self, output: Output, tp: TP, offset: int, acks: Acks) -> None:
        await DirectOutbox(self._sender, self._encoders, acks).put_encoded(output)

    def outputs_below(self, positions: Mapping[TP, int]) -> list[Output]:
        """The changelog records to send, and have acknowledged, before committing ``positions``."""
        return self._changelogs.below(positions)

    def pays_to_commit_early(self, positions: Mapping[TP, int]) -> bool:
        """Whether committing ``positions`` before the interval is worth its cost: yes for offsets
        alone (cheap, and a crash then repeats less); no once changelog records are held below them,
        so that the updates of one key between two interval commits cost one record, not one each (a
        windowed count commits on every idle moment otherwise, and wrote a record per event)."""
        return not self._changelogs.any_below(positions)

    def committed(self, positions: Mapping[TP, int]) -> None:
        self._changelogs.committed(positions)

    def forget(self, tp: TP) -> None:
        self._changelogs.forget(tp)


class ExactlyOnceDelivery:
    transactional = True
    commit_interval = 0.1  # outputs wait for the transaction: commit often to keep latency low

    def __init__(self, encoders: Encoders) -> None:
        self._encoders = encoders
        self._held = HeldOutputs(encoders)

    def outbox(self, acks: Acks) -> HeldOutbox:
        """Nothing is sent before the transaction, so ``acks`` stays settled."""
        return HeldOutbox(self._encoders)

    def keep(self, outbox: DirectOutbox | HeldOutbox, tp: TP, offset: int) -> None:
        assert isinstance(outbox, HeldOutbox)
        self._held.hold(tp, offset, outbox.outputs)

    def discard(self, outbox: DirectOutbox | HeldOutbox) -> None:
        """A failed attempt's outputs were never sent: dropped with it."""

    async def dead_letter(self, output: Output, tp: TP, offset: int, acks: Acks) -> None:
        self._held.hold(tp, offset, [output])

    def outputs_below(self, positions: Mapping[TP, int]) -> list[Output]:
        """The held outputs of every message below each position, for the transaction."""
        return self._held.below(positions)

    def pays_to_commit_early(self, positions: Mapping[TP, int]) -> bool:
        """Whether committing ``positions`` before the interval makes something visible that someone
        may be waiting for: outputs held below them, other than changelog records (nobody reads those
        but a restore; they wait for the interval, one record per key)."""
        return self._held.any_below(positions, results_only=True)

    def committed(self, positions: Mapping[TP, int]) -> None:
        """Drop the outputs the transaction up to ``positions`` produced."""
        self._held.committed(positions)

    def forget(self, tp: TP) -> None:
        """A revoked partition's uncommitted outputs go with it: the new owner handles the inputs again."""
        self._held.forget(tp)


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
