"""Exactly-once commits: outputs and the input offsets they came from, in one Kafka transaction.

Only outputs of messages below the commit position are included, so a crash can never leave an
output committed while its input is still to be processed again. A fenced producer (another worker
took over with the same group generation) fails the worker loudly; an abortable error aborts and the
same outputs are tried again at the next commit.
"""

from __future__ import annotations

from typing import Any

from confluent_kafka import KafkaException, TopicPartition

from streams.errors import TransportError
from streams.transport.async_producer import AsyncProducer
from streams.worker.outbox import Output

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
