"""At-least-once changelog records: held until the commit that passes their input, the last one per key
encoded then, and acknowledged before the offsets are committed."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest

from streams.errors import TransportError
from streams.events import MetricSample
from streams.serde.registry import InMemoryRegistry
from streams.topics import Topic
from streams.worker.acks import Acks
from streams.worker.committer import CommitBatch
from streams.worker.delivery import AtLeastOnceDelivery
from streams.worker.outbox import Encoders, Output
from streams.worker.transactions import ChangelogFlush, KafkaCommits

pytestmark = pytest.mark.unit

TP = ("in", 0)
CHANGELOG: Topic[MetricSample] = Topic("app.agent.table-changelog", value=MetricSample)


def _sample(value: float) -> MetricSample:
    return MetricSample(name="n", value=value, observed_at=0)  # type: ignore[arg-type]


def _write(key: bytes, value: float) -> Output:
    return Output(
        CHANGELOG.name, None, key, [], 0, latest_only=True, record=_sample(value), encode_as=CHANGELOG
    )


class _Producer:
    """Acknowledges at once, or fails every record when ``fail`` is set; keeps what it was sent."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.sent: list[tuple[str, bytes | None, bytes | None]] = []

    def send_reported(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        headers: Sequence[tuple[str, bytes]] | None,
        partition: int | None,
        report: Callable[[TransportError | None], None],
    ) -> None:
        self.sent.append((topic, value, key))
        report(TransportError("broker gone", retriable=True) if self.fail else None)


class _Poller:
    def __init__(self) -> None:
        self.commits: list[Any] = []

    async def commit(self, offsets: Any) -> None:
        self.commits.append(offsets)


class _Sender:
    def send_reported(self, *args: Any) -> None:
        raise AssertionError("changelog records are not sent by the handler")


def test_changelog_records_wait_for_the_commit_and_only_the_last_per_key_is_carried() -> None:
    delivery = AtLeastOnceDelivery(_Sender(), Encoders(InMemoryRegistry()))  # type: ignore[arg-type]
    for offset, (key, value) in enumerate([(b"a", 1.0), (b"b", 1.0), (b"a", 2.0), (b"a", 3.0)]):
        outbox = delivery.outbox(Acks())
        outbox.held.append(_write(key, value))
        delivery.keep(outbox, TP, offset)
    below = delivery.outputs_below({TP: 3})  # offsets 0, 1, 2: not the last write of a
    assert [(o.key, o.value is not None) for o in below] == [(b"b", True), (b"a", True)]
    assert all(o.value is not None and o.value[0] == 0 for o in below), "encoded in the wire format"
    delivery.committed({TP: 3})
    assert [o.key for o in delivery.outputs_below({TP: 4})] == [b"a"], "the write at offset 3 waits on"
    delivery.forget(TP)
    assert delivery.outputs_below({TP: 4}) == []


async def test_offsets_are_committed_only_after_the_changelog_records_are_acknowledged() -> None:
    encoders = Encoders(InMemoryRegistry())
    outputs = [_write(b"a", 1.0).encoded(encoders)]
    poller = _Poller()
    producer = _Producer()
    commits = KafkaCommits(poller, None, ChangelogFlush(producer))  # type: ignore[arg-type]
    await commits.execute(CommitBatch({TP: 1}, outputs))
    assert producer.sent == [(CHANGELOG.name, outputs[0].value, b"a")]
    assert len(poller.commits) == 1

    producer.fail = True
    with pytest.raises(TransportError, match="changelog record lost") as failed:
        await commits.execute(CommitBatch({TP: 2}, outputs))
    assert failed.value.retriable
    assert len(poller.commits) == 1, "a lost changelog record must keep the offsets uncommitted"
