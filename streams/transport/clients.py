"""Every librdkafka client the library opens, built from :class:`~streams.config.Settings` here.

:class:`Settings` renders the connection (servers, TLS/SASL, idempotence) and this module adds what a
client is for: an agent's group member, a throwaway reader that scans topics and commits nothing, a
named group that commits (dead-letter replay), producers. Nothing else writes a librdkafka dict, so a
setting changes in one place. Invalid settings become one-line :class:`ConfigError` s.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaException
from confluent_kafka.admin import AdminClient

from streams.config import Settings
from streams.errors import ConfigError, TransportError
from streams.transport.async_producer import AsyncProducer
from streams.transport.producer import Producer

# Heartbeats come from librdkafka's own thread, so a short session only detects dead workers sooner
# (10 s, not 45 s); slow handlers are covered by the poll thread that never stops polling.
_AGENT_SESSION_TIMEOUT_MS = 10_000
# A crashed worker's open transaction blocks read_committed readers of its outputs until it times
# out; the worker's transactions last ~100 ms, so 10 s (not Kafka's 60 s) is ample.
_TRANSACTION_TIMEOUT_MS = 10_000
# A transaction begun right after the last one committed finds the coordinator still writing the last
# one's markers: AddOffsetsToTxn answers CONCURRENT_TRANSACTIONS, which librdkafka retries after
# retry.backoff.ms (100 ms by default), for a wait of about a millisecond. An exactly-once hop is a few
# ms, so that stall cost about half of all one-at-a-time workflows 100 ms (measured: bench.run's
# workflows scenario, traced per transaction). Retries still back off exponentially from here up to
# retry.backoff.max.ms (1 s), so a broker in trouble is not hammered.
_TRANSACTIONAL_RETRY_BACKOFF_MS = 2
# A transaction's outputs are produced together just before its offsets are added and it commits,
# and the commit flushes them anyway, so a linger only holds them back: with 5 ms they waited for
# that flush and EndTxn for their acknowledgement; with none they leave as soon as their partitions
# are in the transaction, while the offsets are being added.
_TRANSACTIONAL_LINGER_MS = 0


def agent_consumer(
    settings: Settings,
    group_id: str,
    client_id: str,
    *,
    from_earliest: bool,
    user_config: Mapping[str, Any] = {},
) -> Consumer:
    """A member of an agent's consumer group: cooperative rebalancing, offsets stored and committed
    only by the worker. ``user_config`` may tune librdkafka; the worker's own settings win over it."""
    config = settings.consumer_config(
        group_id,
        **{
            "session.timeout.ms": _AGENT_SESSION_TIMEOUT_MS,
            **user_config,
            "partition.assignment.strategy": "cooperative-sticky",
            "auto.offset.reset": "earliest" if from_earliest else "latest",
            "enable.auto.offset.store": False,
            "client.id": client_id,
        },
    )
    return _consumer(config, f"consumer of group {group_id}")


def scan_consumer(settings: Settings, purpose: str, **overrides: Any) -> Consumer:
    """A reader with a group id of its own that is never committed: for assign-and-scan work (tail,
    trace, changelog restores) that must not disturb any real group."""
    return _consumer(
        settings.consumer_config(f"{purpose}-{uuid.uuid4().hex[:8]}", **overrides), f"{purpose} reader"
    )


def group_consumer(settings: Settings, group_id: str, **overrides: Any) -> Consumer:
    """A consumer that commits its progress as ``group_id`` (e.g. replaying dead letters once)."""
    return _consumer(settings.consumer_config(group_id, **overrides), f"consumer of group {group_id}")


def async_producer(
    settings: Settings,
    *,
    client_id: str | None = None,
    transactional_id: str | None = None,
    on_fatal: Callable[[TransportError], None] | None = None,
    linger_ms: int | None = None,
) -> AsyncProducer:
    """The asyncio producer of a worker (transactional when ``transactional_id`` is given);
    ``linger_ms`` overrides how long a batch may wait to fill (the settings' 5 ms)."""
    overrides: dict[str, Any] = {}
    if client_id is not None:
        overrides["client.id"] = client_id
    if linger_ms is not None:
        overrides["linger.ms"] = linger_ms
    if transactional_id is not None:
        overrides["transactional.id"] = transactional_id
        overrides["transaction.timeout.ms"] = _TRANSACTION_TIMEOUT_MS
        overrides["retry.backoff.ms"] = _TRANSACTIONAL_RETRY_BACKOFF_MS
        if linger_ms is None:
            overrides["linger.ms"] = _TRANSACTIONAL_LINGER_MS
    try:
        return AsyncProducer(settings.producer_config(**overrides), on_fatal=on_fatal)
    except KafkaException as exc:
        raise ConfigError(f"invalid producer settings: {exc.args[0].str()}") from exc


def producer(settings: Settings) -> Producer:
    """A blocking producer for publishing from code and the CLI."""
    try:
        return Producer(settings.producer_config())
    except KafkaException as exc:
        raise ConfigError(f"invalid producer settings: {exc.args[0].str()}") from exc


def admin(settings: Settings) -> AdminClient:
    try:
        return AdminClient(settings.admin_config())
    except KafkaException as exc:
        raise ConfigError(f"invalid admin client settings: {exc.args[0].str()}") from exc


def _consumer(config: dict[str, Any], what: str) -> Consumer:
    try:
        return Consumer(config)
    except KafkaException as exc:
        raise ConfigError(f"invalid settings for the {what}: {exc.args[0].str()}") from exc
