"""The polling consumer's pause bookkeeping, on a fake librdkafka consumer that records every call."""

import asyncio
from typing import Any

import pytest
from confluent_kafka import TopicPartition

from streams.transport.poller import PollingConsumer
from tests.unit._fetched import FetchedConsumer

pytestmark = pytest.mark.unit


class FakeConsumer:
    def __init__(self) -> None:
        self.assigned: list[TopicPartition] = []
        self.calls: list[tuple[str, list[tuple[str, int]]]] = []

    def assignment(self) -> list[TopicPartition]:
        return list(self.assigned)

    def incremental_assign(self, partitions: list[TopicPartition]) -> None:
        self.assigned += partitions

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.calls.append(("pause", [(tp.topic, tp.partition) for tp in partitions]))

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.calls.append(("resume", [(tp.topic, tp.partition) for tp in partitions]))


class Listener:
    def assigned(self, partitions: set[tuple[str, int]]) -> None: ...

    def revoked(self, partitions: set[tuple[str, int]]) -> None: ...

    def lost(self, partitions: set[tuple[str, int]]) -> None: ...


def _poller(
    consumer: FakeConsumer, loop: asyncio.AbstractEventLoop | None = None, **options: Any
) -> PollingConsumer:
    """A poller on ``consumer``; without ``loop``, one on a loop closed already (nothing runs on it)."""
    own_loop = loop or asyncio.new_event_loop()
    poller = PollingConsumer(
        consumer,  # type: ignore[arg-type]
        own_loop,
        batch_size=10,
        on_batch=lambda m: None,
        on_error=lambda e: None,
        **options,
    )
    poller._listener = Listener()
    if loop is None:
        own_loop.close()
    return poller


def _assign(poller: PollingConsumer, consumer: FakeConsumer, *partitions: int) -> None:
    poller._on_assign(consumer, [TopicPartition("t", p) for p in partitions])  # type: ignore[arg-type]


def test_partitions_are_never_resumed_unless_paused_nor_paused_twice() -> None:
    """librdkafka can refetch from an earlier offset when a partition that is not paused is resumed."""
    consumer = FakeConsumer()
    poller = _poller(consumer)
    _assign(poller, consumer, 0, 1)
    assert consumer.calls == [], "new partitions while running: no pause, no resume"
    poller.want_paused(True)
    poller._apply_pause()
    poller._apply_pause()
    assert consumer.calls == [("pause", [("t", 0), ("t", 1)])]
    _assign(poller, consumer, 2)
    assert consumer.calls[-1] == ("pause", [("t", 2)]), "a partition assigned while paused pauses too"
    poller.want_paused(False)
    poller._apply_pause()
    assert consumer.calls[-1] == ("resume", [("t", 0), ("t", 1), ("t", 2)])
    assert len(consumer.calls) == 3


def test_a_partition_paused_before_revocation_resumes_when_assigned_back() -> None:
    consumer = FakeConsumer()
    poller = _poller(consumer)
    _assign(poller, consumer, 0)
    poller.want_paused(True)
    poller._apply_pause()
    consumer.assigned = []  # revoked while paused: librdkafka keeps its pause flag
    poller.want_paused(False)
    poller._apply_pause()
    assert consumer.calls == [("pause", [("t", 0)])], "nothing assigned to resume"
    _assign(poller, consumer, 0)
    assert consumer.calls[-1] == ("resume", [("t", 0)])


class ClosingConsumer(FakeConsumer):
    """librdkafka while the consumer closes: no group metadata to give."""

    def __init__(self) -> None:
        super().__init__()
        self.closing = False

    def consumer_group_metadata(self) -> object:
        if self.closing:
            raise RuntimeError("Consumer group metadata not available")
        return "generation 7"


def test_a_revocation_while_closing_commits_with_the_last_group_metadata() -> None:
    """close() revokes what is left; librdkafka may have no metadata then, and the exactly-once
    commit of that revocation still needs this member's."""
    consumer = ClosingConsumer()
    revoked: list[set[tuple[str, int]]] = []
    poller = _poller(consumer, track_group_metadata=True)
    listener = Listener()
    listener.revoked = revoked.append  # type: ignore[method-assign]
    poller._listener = listener
    poller._refresh_group_metadata()
    consumer.closing = True
    poller._on_revoke(consumer, [TopicPartition("t", 0)])  # type: ignore[arg-type]
    assert revoked == [{("t", 0)}]
    assert poller.group_metadata == "generation 7"


def test_no_group_metadata_ever_is_an_error() -> None:
    consumer = ClosingConsumer()
    consumer.closing = True
    with pytest.raises(RuntimeError):
        _poller(consumer, track_group_metadata=True)._refresh_group_metadata()


class FetchingConsumer(FakeConsumer, FetchedConsumer):
    def __init__(self) -> None:
        FakeConsumer.__init__(self)
        FetchedConsumer.__init__(self)


def test_a_partition_is_delivered_to_its_end_when_the_position_reaches_the_last_fetched_end() -> None:
    consumer = FetchingConsumer()
    loop = asyncio.new_event_loop()
    poller = _poller(consumer, loop)
    _assign(poller, consumer, 0, 1, 2, 3)
    # (low, high, position); 2 is empty (retention removed everything), 3 has no fetch response yet
    consumer.known = {0: (0, 100, 40), 1: (0, 7, 7), 2: (9, 9, -1001)}

    async def ask() -> set[tuple[str, int]]:
        question = asyncio.ensure_future(poller.delivered_to_end())
        await asyncio.sleep(0)
        poller._answer_end_queries()  # as the poll thread does between fetches
        return await question

    assert loop.run_until_complete(ask()) == {("t", 1), ("t", 2)}
    consumer.known[0] = (0, 100, 101)  # past a transaction marker at 100
    assert loop.run_until_complete(ask()) == {("t", 0), ("t", 1), ("t", 2)}
    poller._stop.set()
    assert loop.run_until_complete(poller.delivered_to_end()) == set(), "stopped: nothing known"
    loop.close()
