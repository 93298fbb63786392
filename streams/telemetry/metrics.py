"""Prometheus metrics of one worker process, registered in a registry of its own (never the global one,
so several runners, or tests, can live in one process).

Three sources: :class:`MetricsMiddleware` counts what passes through handlers as it happens (messages
in and out, handler latency and errors); :class:`WorkerCollector` reads worker state when scraped
(totals the worker keeps anyway, in-flight work, partitions, lag), so idle workers cost nothing;
:class:`SpanCollector` reads what became of the process's finished spans.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from streams.headers import Headers
from streams.middleware import CallNext, Middleware
from streams.telemetry.export import ExportStats, export_stats
from streams.telemetry.probe import ProbeUnavailable, WorkerProbe, WorkerSnapshot
from streams.telemetry.scaling import DEFAULT_DRAIN_WITHIN, RateMeter, recommended_workers
from streams.workflows.breaker import BreakerStats
from streams.workflows.cache import CacheStats

if TYPE_CHECKING:
    from streams.context import Context

log = logging.getLogger("streams.telemetry")

# Agents range from microsecond transforms to model calls that take a minute.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


def error_class(error: BaseException) -> str:
    """The label of an error: its qualified class name, as in the dead-letter headers."""
    return f"{type(error).__module__}.{type(error).__qualname__}"


class MetricsMiddleware(Middleware):
    """Counts messages in (first attempts only, so retries do not inflate it), handler latency and
    errors per attempt, and sends per destination topic.

    It sits innermost, next to the handler, so latency is the handler's own. Undecodable and
    deduplicated messages never reach handlers: :class:`WorkerCollector` counts those.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.messages_in = Counter(
            "streams_messages_in",
            "Messages that reached an agent's handler (first attempts).",
            ["agent", "topic"],
            registry=registry,
        )
        self.handler_seconds = Histogram(
            "streams_handler_seconds",
            "Duration of one handler call (one attempt), in seconds.",
            ["agent"],
            registry=registry,
            buckets=LATENCY_BUCKETS,
        )
        self.handler_errors = Counter(
            "streams_handler_errors",
            "Handler calls that raised, by error class (each failed attempt counts).",
            ["agent", "error"],
            registry=registry,
        )
        self.messages_out = Counter(
            "streams_messages_out",
            "Messages handlers sent, by destination topic (counted when queued; dead letters excluded).",
            ["agent", "topic"],
            registry=registry,
        )

    async def handle(self, ctx: Context, call_next: CallNext) -> None:
        if ctx.attempt == 1:
            self.messages_in.labels(ctx.agent, ctx.topic).inc()
        started = time.perf_counter()
        try:
            await call_next()
        except Exception as exc:
            self.handler_seconds.labels(ctx.agent).observe(time.perf_counter() - started)
            self.handler_errors.labels(ctx.agent, error_class(exc)).inc()
            raise
        # A cancelled handler (shutdown gave up on it) is neither a latency sample nor an error.
        self.handler_seconds.labels(ctx.agent).observe(time.perf_counter() - started)

    def on_send(self, ctx: Context, topic: str, headers: Headers) -> Headers:
        self.messages_out.labels(ctx.agent, topic).inc()
        return headers


# name, help, what to read: the totals each worker keeps in its WorkerStats.
_TOTALS: tuple[tuple[str, str, str], ...] = (
    ("streams_messages_received", "Messages consumed, decodable or not.", "received"),
    ("streams_messages_processed", "Messages handled successfully.", "processed"),
    ("streams_retries", "Handler attempts that failed and were retried.", "retries"),
    ("streams_dead_letters", "Messages sent to the agent's dead-letter topic.", "dead_lettered"),
    ("streams_duplicates_skipped", "Redelivered messages a dedup agent skipped.", "duplicates"),
    ("streams_late_records", "Records for event-time windows that had closed.", "late_records"),
    (
        "streams_deadline_expired",
        "Requests that arrived past their deadline: dead-lettered, never started.",
        "expired",
    ),
    (
        "streams_table_restored_records",
        "Table changelog records read back into local stores on assignment.",
        "restored_records",
    ),
)


class WorkerCollector(Collector):
    """Reads every worker through a :class:`WorkerProbe` at scrape time.

    The recommended worker count compares each scrape with earlier ones (:class:`RateMeter`), so it
    appears from the second scrape at least a second after the first; ``drain_within`` is the
    scaling rule's target for clearing a backlog (:mod:`streams.telemetry.scaling`)."""

    def __init__(
        self,
        probe: WorkerProbe,
        drain_within: float = DEFAULT_DRAIN_WITHIN,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._probe = probe
        self._drain_within = drain_within
        self._clock = clock
        self._rates = RateMeter()

    def describe(self) -> Iterable[Metric]:
        # Without describe(), registering would call collect(), i.e. probe workers that may not run yet.
        return self._families([])

    def collect(self) -> Iterable[Metric]:
        try:
            snapshots = self._probe.snapshots()
        except ProbeUnavailable as exc:
            # The handler-side metrics are still worth serving; these series go absent meanwhile.
            log.warning("worker metrics unavailable: %s", exc)
            snapshots = []
        return self._families(snapshots)

    def _families(self, snapshots: list[WorkerSnapshot]) -> Iterator[Metric]:
        for name, help_text, field in _TOTALS:
            counter = CounterMetricFamily(name, help_text, labels=["agent"])
            for snapshot in snapshots:
                counter.add_metric([snapshot.agent], getattr(snapshot.stats, field))
            yield counter
        in_flight = GaugeMetricFamily(
            "streams_in_flight_messages", "Messages received and not finished yet.", labels=["agent"]
        )
        assigned = GaugeMetricFamily(
            "streams_assigned_partitions", "Partitions the agent's worker owns.", labels=["agent"]
        )
        paused = GaugeMetricFamily(
            "streams_paused_partitions",
            "Owned partitions paused (backpressure, or priority).",
            labels=["agent"],
        )
        lag = GaugeMetricFamily(
            "streams_consumer_lag",
            "Messages between the group's committed position and the partition's end.",
            labels=["agent", "topic", "partition"],
        )
        restores = CounterMetricFamily(
            "streams_table_restores",
            "Table partitions restored on assignment, by where their changelog was read from: a local "
            "checkpoint (the rest of the changelog only) or the beginning.",
            labels=["agent", "source"],
        )
        restore_seconds = GaugeMetricFamily(
            "streams_table_restore_seconds",
            "How long the latest table restore took (one table's newly assigned partitions).",
            labels=["agent"],
        )
        for snapshot in snapshots:
            restores.add_metric([snapshot.agent, "checkpoint"], snapshot.stats.checkpoint_restores)
            restores.add_metric([snapshot.agent, "beginning"], snapshot.stats.full_restores)
            restore_seconds.add_metric([snapshot.agent], snapshot.stats.restore_seconds)
        yield from (restores, restore_seconds)
        for snapshot in snapshots:
            in_flight.add_metric([snapshot.agent], snapshot.in_flight)
            assigned.add_metric([snapshot.agent], len(snapshot.assigned))
            paused.add_metric([snapshot.agent], snapshot.paused_partitions)
            for (topic, partition), value in sorted(snapshot.lag.items()):
                lag.add_metric([snapshot.agent, topic, str(partition)], value)
        yield from (in_flight, assigned, paused, lag)
        recommended = GaugeMetricFamily(
            "streams_recommended_workers",
            "Workers the agent needs to keep up and clear its lag within the drain target, judged from "
            "this worker's partitions, lag and throughput (docs/telemetry.md, scaling signals).",
            labels=["agent"],
        )
        now = self._clock()
        for snapshot in snapshots:
            workers = self._recommend(snapshot, now)
            if workers is not None:
                recommended.add_metric([snapshot.agent], workers)
        yield recommended

    def _recommend(self, snapshot: WorkerSnapshot, now: float) -> int | None:
        rates = self._rates.observe(
            (snapshot.agent, snapshot.worker_id),
            now,
            handled=snapshot.finished,
            end=sum(snapshot.ends.values()),
            basis=tuple(sorted(snapshot.ends)),
        )
        owned = len(snapshot.assigned)
        if rates is None or owned == 0 or snapshot.partitions == 0:
            return None
        # This worker's partitions stand for the topic's: the others are assumed as busy as its own.
        scale = snapshot.partitions / owned
        return recommended_workers(
            incoming=rates.incoming * scale,
            per_worker=rates.handled,
            lag=round(snapshot.total_lag * scale),
            partitions=snapshot.partitions,
            drain_within=self._drain_within,
        )


class CacheCollector(Collector):
    """Hits and misses of workflows' cacheable calls (``wf.call(..., cache=)``), per capability."""

    def __init__(self, engines: Mapping[str, CacheStats]) -> None:
        self._engines = dict(engines)  # by agent name

    def describe(self) -> Iterable[Metric]:
        return self.collect()

    def collect(self) -> Iterable[Metric]:
        lookups = CounterMetricFamily(
            "streams_workflow_cache_lookups",
            "Cacheable workflow calls, by whether an earlier result was served (hit) or a request sent.",
            labels=["agent", "capability", "result"],
        )
        for agent, stats in self._engines.items():
            # Copies: the engine's loop may add a capability while this thread reads.
            for result, counts in (("hit", dict(stats.hits)), ("miss", dict(stats.misses))):
                for capability, count in sorted(counts.items()):
                    lookups.add_metric([agent, capability, result], count)
        yield lookups


# The gauge's values: how far from letting calls through.
BREAKER_STATE_VALUES = {"CLOSED": 0, "HALF_OPEN": 1, "OPEN": 2}


class BreakerCollector(Collector):
    """Circuit breakers of workflows' calls (``app.breaker``): the state each partition's breaker was
    last seen in by this worker, how often they opened, and calls kept from their capability."""

    def __init__(self, engines: Mapping[str, BreakerStats]) -> None:
        self._engines = dict(engines)  # by agent name

    def describe(self) -> Iterable[Metric]:
        return self.collect()

    def collect(self) -> Iterable[Metric]:
        state = GaugeMetricFamily(
            "streams_workflow_breaker_state",
            "A capability's circuit breaker in one partition of the workflow's events, as last seen by "
            "this worker: 0 closed, 1 half-open (a trial call is out), 2 open.",
            labels=["agent", "capability", "partition"],
        )
        opens = CounterMetricFamily(
            "streams_workflow_breaker_opens",
            "Times a circuit breaker opened (a failed trial re-opens it).",
            labels=["agent", "capability"],
        )
        short = CounterMetricFamily(
            "streams_workflow_breaker_short_circuited",
            "Calls an open breaker kept from their capability (sent to the fallback, or failed at once).",
            labels=["agent", "capability"],
        )
        fallbacks = CounterMetricFamily(
            "streams_workflow_breaker_fallbacks",
            "Calls an open breaker sent to the fallback capability instead.",
            labels=["agent", "capability"],
        )
        for agent, stats in self._engines.items():
            # Copies: the engine's loop may add a capability while this thread reads.
            for (capability, partition), status in sorted(dict(stats.states).items()):
                state.add_metric([agent, capability, str(partition)], BREAKER_STATE_VALUES[status.value])
            for family, counts in (
                (opens, stats.opens),
                (short, stats.short_circuited),
                (fallbacks, stats.fallbacks),
            ):
                for capability, count in sorted(dict(counts).items()):
                    family.add_metric([agent, capability], count)
        yield from (state, opens, short, fallbacks)


class SpanCollector(Collector):
    """What became of the process's sampled spans, per exporter (no series while tracing is off)."""

    def describe(self) -> Iterable[Metric]:
        return self._families([])

    def collect(self) -> Iterable[Metric]:
        return self._families(export_stats())

    def _families(self, stats: list[ExportStats]) -> Iterator[Metric]:
        exported = CounterMetricFamily(
            "streams_spans_exported", "Spans the exporter accepted.", labels=["exporter"]
        )
        dropped = CounterMetricFamily(
            "streams_spans_dropped",
            "Spans that never reached the exporter's destination: its queue was full (queue_full), or "
            "the exporter failed to send them (export_failed).",
            labels=["exporter", "reason"],
        )
        queued = GaugeMetricFamily(
            "streams_span_queue_spans", "Finished spans waiting for export.", labels=["exporter"]
        )
        capacity = GaugeMetricFamily(
            "streams_span_queue_capacity",
            "Spans the export queue holds before it drops new ones.",
            labels=["exporter"],
        )
        for stat in stats:
            exported.add_metric([stat.exporter], stat.exported)
            dropped.add_metric([stat.exporter, "queue_full"], stat.dropped)
            dropped.add_metric([stat.exporter, "export_failed"], stat.failed)
            queued.add_metric([stat.exporter], stat.queued)
            capacity.add_metric([stat.exporter], stat.capacity)
        yield from (exported, dropped, queued, capacity)
