"""Point-in-time snapshots of a runner's workers, for metrics, readiness and heartbeats.

A worker's state belongs to its event loop, so snapshots are always taken there: a call from another
thread (the metrics endpoint's) is handed to the loop and waits for it, with a timeout. This module
only reads; it never changes a worker.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from streams.events import WorkerState
from streams.telemetry.watermarks import Watermarks, partition_lag
from streams.worker.agent_worker import AgentWorker, WorkerStats
from streams.workflows.engine import WorkflowEngine

TP = tuple[str, int]


class ProbeUnavailable(Exception):
    """The workers' loop is not running or did not answer in time; no snapshot could be taken."""


@dataclass(frozen=True)
class WorkerSnapshot:
    """One worker at one moment. ``lag`` holds the owned partitions whose lag is known so far."""

    agent: str
    group_id: str
    worker_id: str
    state: WorkerState
    assigned: tuple[TP, ...]
    in_flight: int
    paused_partitions: int  # for backpressure, or a lower priority class while a higher one has work
    lag: Mapping[TP, int]
    stats: WorkerStats
    failure: str | None
    open_breakers: tuple[str, ...] = ()  # a workflow engine's breakers not CLOSED (BreakerStats.open_in)
    partitions: int = 0  # of the agent's topic, as declared (0: unknown)
    ends: Mapping[TP, int] = field(default_factory=dict)  # owned partitions' ends, where reported

    @property
    def total_lag(self) -> int:
        return sum(self.lag.values())

    @property
    def finished(self) -> int:
        """Messages done with, whichever way: handled, dead-lettered, or skipped as duplicates or
        expired; each moved the committed position on."""
        stats = self.stats
        return stats.processed + stats.dead_lettered + stats.duplicates + stats.expired

    @property
    def errors(self) -> int:
        """Failed attempts: each one was either retried or ended in a dead letter (undecodable
        messages count once, as dead letters)."""
        return self.stats.retries + self.stats.dead_lettered


@dataclass
class _Binding:
    loop: asyncio.AbstractEventLoop
    loop_thread: int
    tasks: Mapping[AgentWorker, asyncio.Future[None]]
    stop: asyncio.Event


def _open_breakers(worker: AgentWorker, assigned: Sequence[TP]) -> tuple[str, ...]:
    handler = worker.agent.handler
    if not isinstance(handler, WorkflowEngine):
        return ()
    return tuple(handler.breaker_stats.open_in(partition for _, partition in assigned))


class WorkerProbe:
    """Takes :class:`WorkerSnapshot` s of ``workers``; :meth:`bind` tells it where they run."""

    def __init__(self, workers: Sequence[AgentWorker], watermarks: Mapping[AgentWorker, Watermarks]) -> None:
        self.workers = list(workers)
        self._watermarks = dict(watermarks)
        self._binding: _Binding | None = None

    def bind(self, tasks: Mapping[AgentWorker, asyncio.Future[None]], stop: asyncio.Event) -> None:
        """Call on the workers' loop once their tasks exist: from then on states follow the tasks."""
        self._binding = _Binding(asyncio.get_running_loop(), threading.get_ident(), dict(tasks), stop)

    def snapshots(self, timeout: float = 5.0) -> list[WorkerSnapshot]:
        """Snapshots of every worker, taken on their loop whichever thread calls.

        Raises :class:`ProbeUnavailable` if the loop is gone or busier than ``timeout`` seconds.
        """
        binding = self._binding
        if binding is None or threading.get_ident() == binding.loop_thread:
            return self.snapshots_now()
        future: concurrent.futures.Future[list[WorkerSnapshot]] = concurrent.futures.Future()

        def take() -> None:
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(self.snapshots_now())
                except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
                    future.set_exception(exc)

        try:
            binding.loop.call_soon_threadsafe(take)
            return future.result(timeout)
        except RuntimeError as exc:  # the loop is closed
            raise ProbeUnavailable("the workers' event loop has stopped") from exc
        except concurrent.futures.TimeoutError as exc:
            future.cancel()
            raise ProbeUnavailable(f"the workers' event loop did not answer within {timeout:.0f}s") from exc

    def snapshots_now(self) -> list[WorkerSnapshot]:
        """Snapshots of every worker; only on the workers' loop (or before they run)."""
        return [self._snapshot(worker) for worker in self.workers]

    def _state(self, worker: AgentWorker) -> WorkerState:
        binding = self._binding
        task = None if binding is None else binding.tasks.get(worker)
        if binding is None or task is None:
            return WorkerState.STARTING
        if task.done():
            return WorkerState.STOPPED
        if binding.stop.is_set() or worker.is_draining() or worker.failure() is not None:
            return WorkerState.DRAINING
        return WorkerState.RUNNING if self._joined(worker) else WorkerState.STARTING

    def _joined(self, worker: AgentWorker) -> bool:
        """Whether the worker's consumer has joined its group: it was assigned partitions, or (for a
        worker the group gave none) its statistics say it is a settled member."""
        watermarks = self._watermarks.get(worker)
        return worker.stats.assignments > 0 or (watermarks is not None and watermarks.joined)

    def _failure(self, worker: AgentWorker) -> str | None:
        error = worker.failure()
        binding = self._binding
        task = None if binding is None else binding.tasks.get(worker)
        if error is None and task is not None and task.done() and not task.cancelled():
            error = task.exception()  # failed before its loop started, e.g. invalid consumer settings
        return None if error is None else f"{type(error).__name__}: {error}"

    def _snapshot(self, worker: AgentWorker) -> WorkerSnapshot:
        assigned = worker.assigned_partitions()
        committed = worker.committed_positions()
        settled = worker.settled_partitions()
        watermarks = self._watermarks.get(worker)
        lag: dict[TP, int] = {}
        ends: dict[TP, int] = {}
        if watermarks is not None:
            for tp in assigned:
                reported = watermarks.get(tp)
                known = partition_lag(
                    reported,
                    committed.get(tp),
                    settled=tp in settled,
                    from_start=worker.agent.start == "earliest",
                )
                if known is not None:
                    lag[tp] = known
                if reported is not None and reported.end is not None:
                    ends[tp] = reported.end
        return WorkerSnapshot(
            agent=worker.agent.name,
            group_id=worker.agent.group_id,
            worker_id=worker.worker_id,
            state=self._state(worker),
            assigned=tuple(assigned),
            in_flight=worker.in_flight(),
            paused_partitions=worker.paused_partitions(),
            lag=lag,
            stats=replace(worker.stats),
            failure=self._failure(worker),
            open_breakers=_open_breakers(worker, assigned),
            partitions=worker.agent.topic.partitions,
            ends=ends,
        )
