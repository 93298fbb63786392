"""Typed agent options: small frozen objects, so mypy catches a misspelt option and an invalid
combination cannot be written (dedup exists only on :class:`AtLeastOnce`)."""

from __future__ import annotations

from dataclasses import dataclass

from streams.errors import ConfigError


@dataclass(frozen=True)
class AtLeastOnce:
    """Every output is acknowledged by the broker before the input's offset is committed; after a
    crash, work since the last commit runs again.

    ``dedup=True`` makes the agent an idempotent consumer: ids of handled messages are kept in the
    changelog topic ``<app>.<agent>.dedup-changelog``, recorded only once the message's outputs are
    acknowledged, and a redelivered or republished message is skipped. Only a message in flight at a
    crash can run its handler twice.
    """

    dedup: bool = False


@dataclass(frozen=True)
class ExactlyOnce:
    """Kafka transactions: a message's outputs and its offset commit together, so read_committed
    consumers see each input's outputs exactly once, even across crashes and rebalances."""


Guarantee = AtLeastOnce | ExactlyOnce


@dataclass(frozen=True)
class Limits:
    """What one worker holds and how long it waits.

    Above ``max_in_flight`` messages or ``max_bytes`` received and not finished, the worker pauses its
    partitions and resumes below half; it can overshoot by one fetch (at most ``max_in_flight`` or 500
    messages, whichever is smaller). ``drain_timeout`` bounds how long SIGTERM and a revocation wait for
    received messages to finish; what is left then is redelivered.
    """

    max_in_flight: int = 10_000
    max_bytes: int = 64 * 1024 * 1024
    drain_timeout: float = 30.0

    def __post_init__(self) -> None:
        if self.max_in_flight < 1 or self.max_bytes < 1:
            raise ConfigError("Limits: max_in_flight and max_bytes must be >= 1")
        if self.drain_timeout < 0:
            raise ConfigError("Limits: drain_timeout must be >= 0 seconds")
