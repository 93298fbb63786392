"""Commits on Kafka. Exactly-once: outputs and the input offsets they came from, in one transaction.

Only outputs of messages below the commit position are included, so a crash can never leave an
output committed while its input is still to be processed again. A fenced producer (another worker
took over with the same group generation) fails the worker loudly; an abortable error aborts and the
same outputs are tried again at the next commit.
"""

from __future__ import annotations

import asyncio
from typing import Any

from confluent_kafka import KafkaException, TopicPartition

from streams.errors import TransportError
from streams.transport.async_producer import AsyncProducer
from streams.transport.poller import PollingConsumer
from streams.worker.acks import Acks
from streams.worker.committer import CommitBatch
from streams.worker.outbox import Output, send_counted

_TIMEOUT = 30.0


class Transactions:
    def __init__(self, producer: AsyncProducer) -> None:
        self._producer = producer.client

    def init(self) -> None:
        self._producer.init_transactions(_TIMEOUT)

    def commit(self, outputs: list[Output], offsets: list[TopicPartition], group_metadata: Any) -> None:
        """Produce ``outputs`` and commit ``offsets`` for the consumer group in one transaction.

        ``group_metadata`` comes from the consumer's poll thread (see the worker): it carries the
        generation that lets the broker fence a zombie that lost its partitions."""
        producer = self._producer
        try:
            producer.begin_transaction()
            for output in outputs:
                while True:
                    try:
                        producer.produce(output.topic, **output.produce_kwargs())
                        break
                    except BufferError:
                        producer.poll(0.05)
            producer.send_offsets_to_transaction(offsets, group_metadata, _TIMEOUT)
            producer.commit_transaction(_TIMEOUT)
        except KafkaException as exc:
            error = exc.args[0]
            if error.txn_requires_abort():
                producer.abort_transaction(_TIMEOUT)
                raise TransportError(
                    f"transaction aborted, will retry: {error.str()}", retriable=True
                ) from exc
            if error.retriable():
                raise TransportError(
                    f"transaction commit failed, will retry: {error.str()}", retriable=True
                ) from exc
            raise TransportError(f"transactional producer failed (fenced or fatal): {error.str()}") from exc


class ChangelogFlush:
    """At-least-once: a commit's changelog records produced and acknowledged before its offsets.

    On the loop, through the worker's producer, counted like a handler's outputs: a ``flush()`` of
    the producer would also wait for every output handlers keep sending meanwhile."""

    def __init__(self, producer: AsyncProducer) -> None:
        self._producer = producer

    async def flush(self, outputs: list[Output]) -> None:
        """Send ``outputs`` and return once the broker has them all; a retriable TransportError if one
        failed or they took longer than the commit timeout."""
        acks = Acks()
        for output in outputs:
            waiting = send_counted(self._producer, acks, *output.destination())
            if waiting is not None:
                await waiting
        if not acks.settled:
            try:
                await asyncio.wait_for(acks.wait(), _TIMEOUT)
            except TimeoutError as exc:
                raise TransportError(
                    f"changelog records not acknowledged within {_TIMEOUT:.0f}s, will retry", retriable=True
                ) from exc
        if acks.error is not None:
            raise TransportError(f"changelog record lost, will retry: {acks.error}", retriable=True)


class KafkaCommits:
    """How a commit batch reaches Kafka: the consumer's synchronous commit on its poll thread after
    the batch's changelog records are acknowledged (at-least-once), or a transaction with the held
    outputs (exactly-once)."""

    def __init__(
        self,
        poller: PollingConsumer,
        transactions: Transactions | None,
        changelogs: ChangelogFlush | None = None,
    ) -> None:
        self._poller = poller
        self._transactions = transactions
        self._changelogs = changelogs

    async def execute(self, batch: CommitBatch) -> None:
        """On the loop: hands the blocking part to the poll thread or an executor."""
        if self._transactions is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.execute_here, batch)
            return
        if batch.outputs:
            assert self._changelogs is not None, "changelog records need a producer to flush them"
            await self._changelogs.flush(batch.outputs)
        try:
            await self._poller.commit(_offsets(batch))
        except KafkaException as exc:
            raise TransportError(f"commit failed: {exc.args[0].str()}", retriable=True) from exc

    def execute_here(self, batch: CommitBatch) -> None:
        """On the calling thread: a rebalance callback (the poll thread) or an executor."""
        if self._transactions is not None:
            self._transactions.commit(batch.outputs, _offsets(batch), self._poller.group_metadata)
            return
        if batch.outputs:
            assert self._changelogs is not None, "changelog records need a producer to flush them"
            self._poller.run_on_loop(self._changelogs.flush(batch.outputs))
        self._poller.commit_here(_offsets(batch))


def _offsets(batch: CommitBatch) -> list[TopicPartition]:
    return [TopicPartition(t, p, o) for (t, p), o in batch.positions.items()]
