import random
import time

import pytest

from streams.runtime.offsets import OffsetTracker, PartitionOffsets

pytestmark = pytest.mark.unit

T = "orders"


def test_commit_stops_at_the_lowest_unfinished_offset() -> None:
    tracker = OffsetTracker()
    for offset in range(5):
        tracker.track(T, 0, offset)
    for offset in (1, 2, 3):
        tracker.done(T, 0, offset)
    # 0 is still running: committing 4 (or anything past 0) would lose it on a crash.
    assert tracker.committable() == {}
    tracker.done(T, 0, 0)
    assert tracker.committable() == {(T, 0): 4}
    tracker.done(T, 0, 4)
    assert tracker.committable() == {(T, 0): 5}


def test_redeliverable_counts_everything_from_the_lowest_unfinished_offset_on() -> None:
    tracker = OffsetTracker()
    for offset in range(10):
        tracker.track(T, 0, offset)
    tracker.track(T, 1, 0)
    for offset in (0, 1, 5, 6, 7):
        tracker.done(T, 0, offset)
    # Partition 0 restarts at 2: 2..9 come again, though 5, 6 and 7 were finished; partition 1 at 0.
    assert tracker.redeliverable() == 8 + 1
    for offset in (2, 3, 4, 8, 9):
        tracker.done(T, 0, offset)
    tracker.done(T, 1, 0)
    assert tracker.redeliverable() == 0


def test_gaps_in_offsets_never_block_a_commit() -> None:
    tracker = OffsetTracker()
    for offset in (10, 13, 20):  # 11, 12, 14..19: compacted away or transaction markers
        tracker.track(T, 0, offset)
    tracker.done(T, 0, 10)
    assert tracker.committable() == {(T, 0): 13}
    tracker.done(T, 0, 20)
    assert tracker.committable() == {(T, 0): 13}
    tracker.done(T, 0, 13)
    assert tracker.committable() == {(T, 0): 21}
    tracker.track(T, 0, 30)
    assert tracker.committable() == {(T, 0): 30}  # the unfinished 30, not the gap after 20


def test_nothing_is_committable_before_anything_finishes() -> None:
    tracker = OffsetTracker()
    tracker.track(T, 0, 100)
    assert tracker.committable() == {}


def test_committable_repeats_until_marked_and_late_marks_do_not_go_back() -> None:
    tracker = OffsetTracker()
    for offset in range(3):
        tracker.track(T, 0, offset)
    tracker.done(T, 0, 0)
    assert tracker.committable() == {(T, 0): 1}
    assert tracker.committable() == {(T, 0): 1}  # a failed commit is retried by asking again
    tracker.done(T, 0, 1)
    tracker.done(T, 0, 2)
    tracker.mark_committed({(T, 0): 3})
    assert tracker.committable() == {}
    tracker.mark_committed({(T, 0): 1})  # an older async commit confirmed late
    assert tracker.committable() == {}
    tracker.mark_committed({(T, 9): 5})  # partition revoked meanwhile: ignored
    assert tracker.partitions() == [(T, 0)]


def test_partitions_are_independent() -> None:
    tracker = OffsetTracker()
    tracker.track(T, 0, 0)
    tracker.track(T, 1, 0)
    tracker.track("other", 0, 7)
    tracker.done(T, 1, 0)
    tracker.done("other", 0, 7)
    assert tracker.committable() == {(T, 1): 1, ("other", 0): 8}
    assert tracker.pending(T, 0) == 1
    assert tracker.total_pending == 1


def test_stale_completions_are_counted_not_raised() -> None:
    tracker = OffsetTracker()
    tracker.track(T, 0, 0)
    tracker.track(T, 0, 2)
    assert tracker.done(T, 5, 0) is False  # unknown partition
    assert tracker.done(T, 0, 1) is False  # a gap, never tracked
    assert tracker.done(T, 0, 0) is True
    assert tracker.done(T, 0, 0) is False  # twice
    assert tracker.stale_completions == 3
    assert tracker.total_pending == 1
    assert tracker.committable() == {(T, 0): 2}


def test_revoke_returns_the_final_position_and_forgets_the_partition() -> None:
    tracker = OffsetTracker()
    for offset in range(4):
        tracker.track(T, 0, offset)
    tracker.track(T, 1, 0)
    tracker.done(T, 0, 0)
    tracker.done(T, 0, 2)
    assert tracker.revoke(T, 0) == 1
    assert tracker.total_pending == 1  # only (T, 1) is left
    assert tracker.pending(T, 0) == 0
    assert tracker.done(T, 0, 1) is False  # the handler finishing after the rebalance
    assert tracker.stale_completions == 1
    assert tracker.committable() == {}
    assert tracker.revoke(T, 0) is None  # already gone
    assert tracker.revoke(T, 1) is None  # nothing finished: nothing to commit
    # Reassigned later, possibly from an earlier committed offset: starts afresh.
    tracker.track(T, 0, 1)
    tracker.done(T, 0, 1)
    assert tracker.committable() == {(T, 0): 2}


def test_revoke_after_commit_has_nothing_more_to_commit() -> None:
    tracker = OffsetTracker()
    tracker.track(T, 0, 0)
    tracker.done(T, 0, 0)
    tracker.mark_committed(tracker.committable())
    assert tracker.revoke(T, 0) is None


@pytest.mark.parametrize("offset", [4, 5, -1])
def test_offsets_must_increase(offset: int) -> None:
    state = PartitionOffsets()
    state.track(3)
    state.track(5)
    with pytest.raises(ValueError, match="offset"):
        state.track(offset)


@pytest.mark.parametrize("seed", range(20))
def test_matches_a_brute_force_model_under_random_interleavings(seed: int) -> None:
    rng = random.Random(seed)
    tracker = OffsetTracker()
    partitions = [(T, p) for p in range(3)]
    next_offset = dict.fromkeys(partitions, rng.randrange(0, 50))
    unfinished: dict[tuple[str, int], set[int]] = {tp: set() for tp in partitions}
    highest: dict[tuple[str, int], int] = {}
    committed: dict[tuple[str, int], int] = {}
    received: dict[tuple[str, int], list[int]] = {tp: [] for tp in partitions}

    def model_position(tp: tuple[str, int]) -> int | None:
        if tp not in highest:
            return None
        return min(unfinished[tp]) if unfinished[tp] else highest[tp] + 1

    for _ in range(2000):
        tp = rng.choice(partitions)
        action = rng.random()
        if action < 0.45:
            offset = next_offset[tp]
            next_offset[tp] += rng.choice([1, 1, 1, 2, 5])  # gaps
            tracker.track(*tp, offset)
            committed.setdefault(tp, offset)
            highest[tp] = offset
            unfinished[tp].add(offset)
            received[tp].append(offset)
        elif action < 0.9 and unfinished[tp]:
            offset = rng.choice(sorted(unfinished[tp]))
            unfinished[tp].remove(offset)
            assert tracker.done(*tp, offset)
        elif action < 0.95:
            tracker.mark_committed(tracker.committable())
            for key, position in ((k, model_position(k)) for k in partitions):
                if position is not None:
                    committed[key] = max(committed[key], position)
        expected = {}
        for key in partitions:
            position = model_position(key)
            if position is not None and position > committed[key]:
                expected[key] = position
        assert tracker.committable() == expected
        for key, position in expected.items():
            assert all(position <= offset for offset in unfinished[key])  # never past unfinished work
        assert tracker.total_pending == sum(len(offsets) for offsets in unfinished.values())
        received_from_position = 0
        for key in partitions:
            position = model_position(key)
            if position is not None:
                received_from_position += sum(1 for o in received[key] if o >= position)
        assert tracker.redeliverable() == received_from_position


def test_100k_completions_in_random_order_are_not_quadratic() -> None:
    # A sanity bound on the asymptotics (an O(n) scan per done() takes minutes), not a benchmark.
    n = 100_000
    offsets = list(range(0, 2 * n, 2))
    order = offsets[:]
    random.Random(7).shuffle(order)
    tracker = OffsetTracker()
    started = time.perf_counter()
    for offset in offsets:
        tracker.track(T, 0, offset)
    for offset in order:
        tracker.done(T, 0, offset)
    elapsed = time.perf_counter() - started
    assert tracker.committable() == {(T, 0): offsets[-1] + 1}
    assert tracker.total_pending == 0
    assert elapsed < 3.0, f"{n} track+done took {elapsed:.2f}s"


def test_received_tells_a_refetched_offset_from_a_new_one() -> None:
    tracker = OffsetTracker()
    assert not tracker.received(T, 0, 0)
    for offset in (3, 5):
        tracker.track(T, 0, offset)
    assert tracker.received(T, 0, 4), "below the highest tracked: delivered before (or a gap)"
    assert tracker.received(T, 0, 5)
    assert not tracker.received(T, 0, 6)
    assert not tracker.received(T, 1, 0)


def test_a_partition_is_settled_once_everything_received_is_finished_and_committed() -> None:
    tracker = OffsetTracker()
    for offset in (10, 11):
        tracker.track("t", 0, offset)
    tracker.track("t", 1, 5)
    assert tracker.settled() == set()
    tracker.done("t", 0, 10)
    tracker.done("t", 0, 11)
    assert tracker.settled() == set(), "finished, not committed"
    tracker.mark_committed(tracker.committable())
    assert tracker.settled() == {("t", 0)}, "partition 1 still has offset 5 unfinished"
    tracker.track("t", 0, 12)
    assert tracker.settled() == set()
