"""What an agent's heartbeats add up to: pure functions from the last :class:`AgentStatus` and the
next :class:`AgentHeartbeat` to the next status, and from a status to the metric samples that alert
rules judge. No Kafka and no clock: every time is a heartbeat's ``sent_at``.

An agent is a consumer group; its workers (one per process, each with its own ``worker_id``) beat
independently. For each worker the status keeps its last beat's figures and the rates between its
last two beats (messages, failed attempts and dead letters per second). The agent's figures add up
its *live* workers: those not STOPPED that beat within ``down_after`` of the newest beat. A worker
silent for ``forget_after`` is dropped from the status. Totals count from each worker's start, so
they drop when a worker restarts; rates are what to watch.

Handler latency is exact in the sketch sense: the quantiles come from merging the live workers'
latest latency sketches (each covers one beat interval), not from averaging their percentiles.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from streams.events import (
    AgentHeartbeat,
    AgentStatus,
    HandlerLatency,
    MetricSample,
    WorkerState,
    WorkerStatus,
)
from streams.sketch import Sketch
from streams.telemetry.latency import latency_sketch
from streams.timestamps import epoch_millis

BEAT = "heartbeat"
"""The sample every status update sends (value: live workers); its absence means the agent is down."""
LAG_RISING = "lag_rising"
ERROR_RATE = "error_rate"
DEAD_LETTER_RATE = "dead_letter_rate"
STOPPED = "stopped"
"""The ``state`` label of an agent's samples once every worker of it has stopped on purpose."""
BREAKER_OPEN = "breaker_open"
"""1 while a live worker of a workflow engine holds a capability's circuit breaker open, 0 once none does;
one series per engine and capability (:func:`breaker_samples`)."""


def _rate(now: int, before: int, seconds: float) -> float:
    # A worker's totals only grow; a smaller one is another run of it (never for a unique worker_id).
    return max(0, now - before) / seconds if seconds > 0 else 0.0


def worker_status(beat: AgentHeartbeat, before: WorkerStatus | None) -> WorkerStatus:
    """The worker as ``beat`` shows it, with rates since its previous beat (``before``; 0 without)."""
    throughput = error_rate = dead_letter_rate = 0.0
    if before is not None:
        seconds = (beat.sent_at - before.last_seen).total_seconds()
        throughput = _rate(beat.processed_total, before.processed_total, seconds)
        error_rate = _rate(beat.errors_total, before.errors_total, seconds)
        dead_letter_rate = _rate(beat.dead_letters_total, before.dead_letters_total, seconds)
        if seconds <= 0:  # a repeat or a reordered beat: keep the rates it already had
            throughput, error_rate = before.throughput, before.error_rate
            dead_letter_rate = before.dead_letter_rate
    return WorkerStatus(
        worker_id=beat.worker_id,
        host=beat.host,
        pid=beat.pid,
        state=beat.state.value,
        partitions=len(beat.assigned_partitions),
        paused_partitions=beat.paused_partitions,
        in_flight=beat.in_flight,
        lag=beat.lag,
        lag_rising=_lag_rising(beat.lag, before),
        processed_total=beat.processed_total,
        errors_total=beat.errors_total,
        retries_total=beat.retries_total,
        dead_letters_total=beat.dead_letters_total,
        throughput=throughput,
        error_rate=error_rate,
        dead_letter_rate=dead_letter_rate,
        open_breakers=sorted(beat.open_breakers),
        last_seen=beat.sent_at,
    )


def _lag_rising(lag: int, before: WorkerStatus | None) -> int:
    """Beats in a row whose lag grew: a flat reading keeps the count, a falling one ends it."""
    if before is None or lag < before.lag or lag == 0:
        return 0
    return before.lag_rising + 1 if lag > before.lag else before.lag_rising


def is_live(worker: WorkerStatus, now: datetime, down_after_ms: int) -> bool:
    """Whether ``worker`` counts as an instance at ``now``: not stopped and heard from recently."""
    silent_ms = epoch_millis(now) - epoch_millis(worker.last_seen)
    return worker.state != WorkerState.STOPPED.value and silent_ms <= down_after_ms


def fold(
    previous: AgentStatus | None,
    beat: AgentHeartbeat,
    latencies: Mapping[str, HandlerLatency | None],
    *,
    down_after_ms: int,
    forget_after_ms: int,
) -> AgentStatus:
    """The agent's status after ``beat``. ``latencies`` holds the latest latency sketch of each
    worker (by ``worker_id``, the beat's own included); workers missing from it add none."""
    known = {w.worker_id: w for w in previous.workers} if previous is not None else {}
    current = worker_status(beat, known.get(beat.worker_id))
    now = max([beat.sent_at, *(w.last_seen for w in known.values())])
    workers = [
        worker
        for worker in known.values()
        if worker.worker_id != beat.worker_id
        and epoch_millis(now) - epoch_millis(worker.last_seen) <= forget_after_ms
    ]
    workers = sorted([*workers, current], key=lambda w: w.worker_id)
    live = [w for w in workers if is_live(w, now, down_after_ms)]
    p50, p99 = _latency([latencies.get(w.worker_id) for w in live])
    return AgentStatus(
        agent=beat.agent,
        workers=workers,
        instances=len(live),
        throughput=sum(w.throughput for w in live),
        latency_p50_ms=p50,
        latency_p99_ms=p99,
        processed_total=sum(w.processed_total for w in workers),
        errors_total=sum(w.errors_total for w in workers),
        retries_total=sum(w.retries_total for w in workers),
        dead_letters_total=sum(w.dead_letters_total for w in workers),
        error_rate=sum(w.error_rate for w in live),
        dead_letter_rate=sum(w.dead_letter_rate for w in live),
        lag=sum(w.lag for w in live),
        lag_rising=max((w.lag_rising for w in live), default=0),
        paused_partitions=sum(w.paused_partitions for w in live),
        in_flight=sum(w.in_flight for w in live),
        open_breakers=sorted({capability for w in live for capability in w.open_breakers}),
        last_seen=now,
        down_after_ms=down_after_ms,
    )


def _latency(records: list[HandlerLatency | None]) -> tuple[float | None, float | None]:
    merged: Sketch | None = None
    for record in records:
        if record is None:
            continue
        sketch = latency_sketch(record)
        merged = sketch if merged is None else merged.merge(sketch)
    if merged is None:
        return None, None
    p50, p99 = merged.quantile(0.5), merged.quantile(0.99)
    return (None if p50 is None else p50 * 1000), (None if p99 is None else p99 * 1000)


def samples(status: AgentStatus) -> list[MetricSample]:
    """What the alert rules judge of one update, at the time of its newest beat."""
    labels = {"agent": status.agent}
    if status.workers and all(w.state == WorkerState.STOPPED.value for w in status.workers):
        labels["state"] = STOPPED  # every worker sent its final beat: stopped on purpose
    figures = (
        (BEAT, float(status.instances)),
        (LAG_RISING, float(status.lag_rising)),
        (ERROR_RATE, status.error_rate),
        (DEAD_LETTER_RATE, status.dead_letter_rate),
    )
    return [
        MetricSample(name=name, value=value, labels=labels, observed_at=status.last_seen)
        for name, value in figures
    ]


def breaker_series(agent: str, capability: str) -> str:
    """The key of one engine's breaker samples (and so of its alerts) for ``capability``."""
    return f"{agent}/{capability}"


def breaker_samples(previous: AgentStatus | None, status: AgentStatus) -> list[tuple[str, MetricSample]]:
    """The breaker samples of one update, with their series keys: 1 for each breaker open now, 0 for
    each that was open at the previous update and no longer is (so its alert resolves once)."""
    now_open = set(status.open_breakers)
    was_open = set(previous.open_breakers) if previous is not None else set()
    return [
        (
            breaker_series(status.agent, capability),
            MetricSample(
                name=BREAKER_OPEN,
                value=1.0 if capability in now_open else 0.0,
                labels={"agent": status.agent, "capability": capability},
                observed_at=status.last_seen,
            ),
        )
        for capability in sorted(now_open | was_open)
    ]


__all__ = [
    "BEAT",
    "BREAKER_OPEN",
    "DEAD_LETTER_RATE",
    "ERROR_RATE",
    "LAG_RISING",
    "STOPPED",
    "breaker_samples",
    "breaker_series",
    "fold",
    "is_live",
    "samples",
    "worker_status",
]
