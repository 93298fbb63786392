"""Counters of one agent worker, read by telemetry and tests (a plain view; the worker writes them)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class WorkerStats:
    received: int = 0  # messages fetched for owned partitions
    processed: int = 0  # handled successfully (not counting duplicates and dead letters)
    retries: int = 0
    dead_lettered: int = 0
    duplicates: int = 0  # skipped by the idempotent consumer
    expired: int = 0  # requests whose deadline had passed: dead-lettered, never started
    late_records: int = 0  # for windows that had closed (dead-lettered too if the agent asks)
    refetched: int = 0  # delivered again by the client after a rewind of its fetch position; skipped
    pauses: int = 0  # times fetching was paused for backpressure
    assignments: int = 0
    revocations: int = 0
    peak_in_flight: int = 0
    restored_records: int = 0  # table changelog records read back into local stores
    checkpoint_restores: int = 0  # table partitions restored from a local checkpoint on
    full_restores: int = 0  # table partitions restored from their changelog's start
    restore_seconds: float = 0.0  # how long the latest table restore took
