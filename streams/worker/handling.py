"""Handling one message: decode, skip a known duplicate, run the handler with retries inside the
middleware onion, and dead-letter what cannot be handled.

No Kafka, no threads: outputs go through the delivery mode, waiting goes through ``sleep`` (the in-memory
twin passes a fake clock), so the real worker and the twin run exactly this code.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from streams import headers as hdr
from streams.agent import Agent
from streams.context import Clock, Context
from streams.errors import DeadlinePassed, DeserializationError, LateRecord, StreamsError
from streams.middleware import Chain
from streams.serde.codec import RecordDecoder, decode_key
from streams.serde.payloads import Payloads
from streams.worker.acks import Acks
from streams.worker.deadletter import dead_letter_headers
from streams.worker.delivery import Delivery
from streams.worker.items import WorkItem
from streams.worker.outbox import Output
from streams.worker.stats import WorkerStats
from streams.worker.tables import AgentTables

log = logging.getLogger("streams.worker")


class HandlerFailed(StreamsError):
    """A handler failed for good and the agent has no dead-letter topic: the worker stops, uncommitted."""


class SeenIds(Protocol):
    """The idempotent consumer's memory (see :mod:`streams.worker.dedup`)."""

    def seen(self, partition: int, message_id: str) -> bool: ...


@dataclass(slots=True)
class Outcome:
    """What a handled message still waits for before it counts as finished."""

    acks: Acks = field(default_factory=Acks)  # its outputs, until the broker acknowledged each
    handled_id: str | None = None  # dedup: the id to record once every delivery is acknowledged


class MessageHandler:
    def __init__(
        self,
        agent: Agent[Any],
        decoder: RecordDecoder[Any],
        delivery: Delivery,
        stats: WorkerStats,
        *,
        middleware: Chain,
        dedup: SeenIds | None = None,
        tables: AgentTables | None = None,
        payloads: Payloads | None = None,
        propagate_trace: bool = True,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Clock | None = None,
    ) -> None:
        self._agent = agent
        self._decoder = decoder
        self._delivery = delivery
        self._stats = stats
        # Bound once, not per message: a Chain without middleware is skipped altogether.
        self._chain = middleware if middleware.wraps_handlers else None
        self._on_send = middleware.on_send if middleware.rewrites_sends else None
        self._key_type = agent.topic.key
        self._open_table = tables.open if tables is not None else None
        self._dedup = dedup
        self._tables = tables
        self._payloads = payloads
        self._propagate_trace = propagate_trace
        self._sleep = sleep
        self._clock = clock

    async def handle(self, item: WorkItem) -> Outcome:
        """Run the handler (retrying as the agent's policy says) or dead-letter the message."""
        agent = self._agent
        try:
            value = self._decoder(item.value)
            key = decode_key(item.key, self._key_type)
        except DeserializationError as exc:
            if exc.retriable:
                raise
            acks = Acks()
            await self._dead_letter(item, exc, 0, acks)
            return Outcome(acks)
        headers = hdr.as_text(item.headers)
        message_id = hdr.message_identity(headers, item.topic, item.partition, item.offset)
        if self._dedup is not None and self._dedup.seen(item.partition, message_id):
            self._stats.duplicates += 1
            return Outcome()
        tp = (item.topic, item.partition)
        acks = Acks()
        attempt = 1
        while True:
            outbox = self._delivery.outbox(acks)
            ctx = Context(
                agent=agent.name,
                topic=item.topic,
                partition=item.partition,
                offset=item.offset,
                key=key,
                headers=headers,
                timestamp_ms=item.timestamp_ms,
                attempt=attempt,
                outbox=outbox,
                on_send=self._on_send,
                open_table=self._open_table,
                payloads=self._payloads,
                propagate_trace=self._propagate_trace,
                clock=self._clock,
                message_id=message_id,
            )
            try:
                if self._chain is not None:
                    await self._chain.handle(ctx, functools.partial(agent.handler, value, ctx))
                else:
                    await agent.handler(value, ctx)
            except asyncio.CancelledError:
                raise
            except LateRecord as exc:
                # Refused by design, not failed: trying again cannot make it on time.
                self._delivery.discard(outbox)
                self._stats.late_records += 1
                if exc.dead_letter and agent.dead_letter:
                    await self._dead_letter(item, exc, attempt, acks)
                else:
                    log.debug("agent %s: late record %s[%d]@%d: %s", agent.name, *tp, item.offset, exc)
                return Outcome(acks)
            except Exception as exc:  # any handler error is retried or dead-lettered
                self._delivery.discard(outbox)
                if agent.retry.should_retry(exc, attempt):
                    self._stats.retries += 1
                    log.debug("agent %s: retrying offset %d after %s", agent.name, item.offset, exc)
                    await self._sleep(agent.retry.delay(attempt, agent.retry.kind_of(exc)))
                    attempt += 1
                    continue
                if isinstance(exc, DeadlinePassed):
                    self._stats.expired += 1
                if not agent.dead_letter:
                    raise HandlerFailed(
                        f"agent {agent.name} failed on {item.topic}[{item.partition}]@{item.offset} after "
                        f"{attempt} attempt(s) and has no dead-letter topic: {type(exc).__name__}: {exc}"
                    ) from exc
                # Dead letters record no id: `streams dlq replay` sends them back with their identity.
                await self._dead_letter(item, exc, attempt, acks)
                return Outcome(acks)
            if self._tables is not None:
                self._tables.write(ctx.opened_tables(), outbox)
            self._delivery.keep(outbox, tp, item.offset)
            self._stats.processed += 1
            return Outcome(acks, message_id if self._dedup is not None else None)

    async def _dead_letter(self, item: WorkItem, error: BaseException, attempts: int, acks: Acks) -> None:
        agent = self._agent
        log.warning(
            "agent %s: dead-lettering %s[%d]@%d after %d attempt(s): %s: %s",
            agent.name,
            item.topic,
            item.partition,
            item.offset,
            attempts,
            type(error).__name__,
            error,
        )
        output = Output(
            agent.dead_letter_topic,
            item.value,
            item.key,
            dead_letter_headers(item, agent.name, error, attempts),
        )
        self._stats.dead_lettered += 1
        await self._delivery.dead_letter(output, (item.topic, item.partition), item.offset, acks)
