"""Heartbeats: every ``interval`` seconds, one :class:`~streams.events.AgentHeartbeat` per agent of this
process, published to the telemetry topic, so anyone can see which workers are alive, what they own
and how far behind they are, from Kafka alone.

Each beat also carries the worker's totals (processed, retried, dead-lettered), its paused partitions,
the interval to the next beat and a sketch of its handler durations since the previous beat
(:mod:`streams.telemetry.latency`), which is what the agent watch (``agents/watch.py``) aggregates.

Beats go out STARTING until a worker's consumer has joined its group, RUNNING from then on, DRAINING
as soon as shutdown begins and, last, STOPPED for every worker once it has finished. Failing to
publish a beat is logged and never stops an agent. Owns its own producer; keyed by the agent's
consumer group, so one agent's beats stay in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from streams.config import Settings
from streams.errors import StreamsError
from streams.events import AgentHeartbeat, HandlerLatency, WorkerState
from streams.serde.codec import AvroEncoder
from streams.serde.registry import SchemaRegistry, subject_for
from streams.telemetry.latency import LatencyMiddleware
from streams.telemetry.probe import WorkerProbe, WorkerSnapshot
from streams.topics import Topic
from streams.transport import clients
from streams.transport.async_producer import AsyncProducer

log = logging.getLogger("streams.telemetry")

_FINAL_DELIVERY_TIMEOUT = 10.0


def heartbeat_topic(name: str) -> Topic[AgentHeartbeat]:
    """The declaration the runner applies at start: small, keyed by agent, kept for a day."""
    return Topic(name, value=AgentHeartbeat, partitions=3, retention_ms=24 * 3600 * 1000)


def heartbeat_of(
    snapshot: WorkerSnapshot,
    state: WorkerState | None = None,
    *,
    interval: float = 0.0,
    latency: HandlerLatency | None = None,
) -> AgentHeartbeat:
    """The heartbeat event describing ``snapshot`` (``state`` overrides the snapshot's); ``interval``
    is the seconds until the next beat, ``latency`` the handler durations since the previous one."""
    now = datetime.now(UTC)
    return AgentHeartbeat(
        agent=snapshot.group_id,
        worker_id=snapshot.worker_id,
        host=socket.gethostname(),
        pid=os.getpid(),
        state=state or snapshot.state,
        assigned_partitions=[partition for _, partition in snapshot.assigned],
        in_flight=snapshot.in_flight,
        processed_total=snapshot.stats.processed,
        errors_total=snapshot.errors,
        lag=snapshot.total_lag,
        retries_total=snapshot.stats.retries,
        dead_letters_total=snapshot.stats.dead_lettered,
        paused_partitions=snapshot.paused_partitions,
        interval_ms=round(interval * 1000),
        open_breakers=list(snapshot.open_breakers),
        latency=latency,
        # The schema keeps milliseconds: the event equals itself after a round trip through Kafka.
        sent_at=now.replace(microsecond=now.microsecond // 1000 * 1000),
    )


class HeartbeatPublisher:
    """Publishes the heartbeats of the workers ``probe`` sees; run :meth:`run` on their loop.

    ``latency`` holds each agent's latency middleware, by agent name (agents without one report none).
    """

    def __init__(
        self,
        settings: Settings,
        registry: SchemaRegistry,
        topic: Topic[AgentHeartbeat],
        interval: float,
        probe: WorkerProbe,
        latency: Mapping[str, LatencyMiddleware] | None = None,
    ) -> None:
        self.topic = topic
        self.interval = interval
        self._probe = probe
        self._latency = dict(latency or {})
        self._settings = settings
        self._encoder = AvroEncoder(registry, subject_for(topic.name), AgentHeartbeat.avro_schema())
        self._producer: AsyncProducer | None = None
        self.rounds = 0  # beat() calls: one heartbeat per worker each
        self.delivered = 0

    def prepare(self) -> None:
        """Blocking, so off the loop: look the schema id up once (beats never wait on the registry),
        then open the producer."""
        _ = self._encoder.schema_id
        self._producer = clients.async_producer(self._settings, client_id="streams-heartbeats")

    async def run(self, stop: asyncio.Event) -> None:
        """Beat every ``interval`` until ``stop`` is set, then once more (DRAINING)."""
        while True:
            try:
                await self.beat()
            except Exception:  # a heartbeat is never worth stopping the agents it reports on
                log.exception("heartbeat round failed")
            if stop.is_set():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)

    async def beat(self, state: WorkerState | None = None) -> list[asyncio.Future[Any]]:
        """Queue one heartbeat per worker; returns their deliveries."""
        if self._producer is None:
            raise RuntimeError("HeartbeatPublisher.prepare() has not been called")
        deliveries: list[asyncio.Future[Any]] = []
        self.rounds += 1
        for snapshot in self._probe.snapshots_now():
            timer = self._latency.get(snapshot.agent)
            heartbeat = heartbeat_of(
                snapshot,
                state,
                interval=self.interval,
                latency=None if timer is None else timer.take(),
            )
            try:
                delivery = await self._producer.send(
                    self.topic.name, self._encoder(heartbeat), snapshot.group_id.encode()
                )
            except StreamsError as exc:
                log.warning("heartbeat of agent %s not sent: %s", snapshot.agent, exc)
                continue
            delivery.add_done_callback(self._on_delivery)
            deliveries.append(delivery)
        return deliveries

    def _on_delivery(self, delivery: asyncio.Future[Any]) -> None:
        if delivery.cancelled():
            return
        error = delivery.exception()
        if error is None:
            self.delivered += 1
        else:
            log.warning("heartbeat not delivered: %s", error)

    async def close(self) -> None:
        """Send the final STOPPED heartbeats, wait (bounded) for their delivery and close the producer."""
        if self._producer is None:
            return
        deliveries = await self.beat(WorkerState.STOPPED)
        if deliveries:
            await asyncio.wait(deliveries, timeout=_FINAL_DELIVERY_TIMEOUT)
        loop = asyncio.get_running_loop()
        undelivered = await loop.run_in_executor(None, self._producer.close, _FINAL_DELIVERY_TIMEOUT)
        self._producer = None
        if undelivered:
            log.warning("%d heartbeat(s) undelivered at shutdown", undelivered)
