"""Telemetry of one worker process, as the runner sees it: what to add to agents and workers before they
start, and the endpoint and heartbeats to run beside them.

Life cycle, driven by :class:`~streams.runner.AgentRunner`: :meth:`instrument` each agent and
give its worker :meth:`middleware_for` it; :meth:`watch` the workers (tracing is set up here, so a bad
``OTEL_*`` setting fails before anything starts); :meth:`open_endpoint` (sockets bind, ``/health`` answers);
:meth:`start` once the topics exist and the worker tasks run; :meth:`close` after they finished
(final STOPPED heartbeats, then the endpoint goes away).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

from streams.agent import Agent
from streams.config import Settings
from streams.middleware import Middleware
from streams.serde.registry import SchemaRegistry
from streams.telemetry.config import TelemetryConfig
from streams.telemetry.export import configure_tracing, reserve_span_queue, tracing_active
from streams.telemetry.health import Readiness, readiness
from streams.telemetry.heartbeat import HeartbeatPublisher, heartbeat_topic
from streams.telemetry.latency import LatencyMiddleware
from streams.telemetry.metrics import (
    BreakerCollector,
    CacheCollector,
    MetricsMiddleware,
    SpanCollector,
    WorkerCollector,
)
from streams.telemetry.probe import ProbeUnavailable, WorkerProbe
from streams.telemetry.server import TelemetryServer
from streams.telemetry.tracing import TracingMiddleware
from streams.telemetry.watermarks import Watermarks, with_statistics
from streams.topics import Topic
from streams.worker.agent_worker import AgentWorker
from streams.workflows.engine import WorkflowEngine


class ProcessTelemetry:
    """Metrics, health and heartbeats for the workers of one process, as ``config`` turns them on."""

    def __init__(self, config: TelemetryConfig, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.registry = CollectorRegistry(auto_describe=True)
        self.metrics = MetricsMiddleware(self.registry) if config.metrics_enabled else None
        if config.metrics_enabled:
            self.registry.register(SpanCollector())
        self.server: TelemetryServer | None = None
        self.heartbeats: HeartbeatPublisher | None = None
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._watermarks: dict[str, Watermarks] = {}
        self._latency: dict[str, LatencyMiddleware] = {}
        self._probe: WorkerProbe | None = None
        self._stop: asyncio.Event | None = None
        self._span_reservation = 0
        self._tracer_provider: TracerProvider | None = None

    def middleware_for(self, agent: Agent[Any], app_middleware: Sequence[Middleware]) -> list[Middleware]:
        """The middleware of ``agent``'s worker: tracing outermost (every other layer runs inside the
        message's span), then the app's own, then metrics and the heartbeats' latency innermost.

        Tracing is set up here, once per process, as ``OTEL_*`` says (a ConfigError when it cannot
        work, before anything starts). Spans only when something records them; otherwise Context
        copies the trace context from input to output, which is what propagate-only needs.
        """
        outer: list[Middleware] = []
        if self.settings.streams_tracing:
            self._tracer_provider = configure_tracing(agent.app) or self._tracer_provider
            if tracing_active():
                outer.append(TracingMiddleware(agent.name, agent.group_id))
        inner: list[Middleware] = [self.metrics] if self.metrics is not None else []
        if self.config.heartbeats_enabled:
            inner.append(self._latency.setdefault(agent.name, LatencyMiddleware()))
        return [*outer, *app_middleware, *inner]

    @property
    def topics(self) -> list[Topic[Any]]:
        """Topics to create (and schemas to register) at start."""
        if not self.config.heartbeats_enabled:
            return []
        return [heartbeat_topic(self.config.heartbeat_topic)]

    @property
    def probe(self) -> WorkerProbe:
        if self._probe is None:
            raise RuntimeError("ProcessTelemetry.watch() has not been called")
        return self._probe

    def instrument(self, agent: Agent[Any]) -> Agent[Any]:
        """The agent with librdkafka statistics turned on for lag, when anything reports lag.

        Its ``max_in_flight`` also sizes the span exporters' queues: a burst the worker may hold at
        once must fit there, spans and all.
        """
        reserve_span_queue(agent.limits.max_in_flight)
        self._span_reservation += agent.limits.max_in_flight
        if not self.config.enabled:
            return agent
        instrumented, self._watermarks[agent.name] = with_statistics(agent, self.config.lag_interval)
        return instrumented

    def watch(self, workers: Sequence[AgentWorker]) -> None:
        """Observe these workers (created from instrumented agents); registers the scrape-time metrics."""
        watermarks = {w: self._watermarks[w.agent.name] for w in workers if w.agent.name in self._watermarks}
        self._probe = WorkerProbe(workers, watermarks)
        if self.config.metrics_enabled:
            self.registry.register(WorkerCollector(self._probe, self.config.scale_drain_within))
            engines = {
                w.agent.name: w.agent.handler for w in workers if isinstance(w.agent.handler, WorkflowEngine)
            }
            if engines:
                self.registry.register(CacheCollector({n: e.cache_stats for n, e in engines.items()}))
                self.registry.register(BreakerCollector({n: e.breaker_stats for n, e in engines.items()}))

    def readiness(self) -> Readiness:
        try:
            return readiness(self.probe.snapshots())
        except ProbeUnavailable as exc:
            return Readiness(False, str(exc))

    def open_endpoint(self) -> None:
        """Bind and serve the HTTP endpoint if a port is configured (raises ConfigError if taken)."""
        port = self.config.metrics_port
        if port is None or self.server is not None:
            return
        self.server = TelemetryServer(self.registry, self.readiness, self.config.metrics_host, port)
        self.server.start()

    def prepare(self, registry: SchemaRegistry) -> None:
        """Blocking, off the loop, after the topics exist: set up the heartbeat publisher."""
        if not self.config.heartbeats_enabled:
            return
        publisher = HeartbeatPublisher(
            self.settings,
            registry,
            heartbeat_topic(self.config.heartbeat_topic),
            self.config.heartbeat_interval,
            self.probe,
            self._latency,
        )
        publisher.prepare()
        self.heartbeats = publisher

    def start(self, tasks: Mapping[AgentWorker, asyncio.Future[None]], stop: asyncio.Event) -> None:
        """On the loop, once the worker tasks exist: states follow them, heartbeats begin."""
        self.probe.bind(tasks, stop)
        self._stop = stop
        if self.heartbeats is not None:
            self._heartbeat_task = asyncio.create_task(self.heartbeats.run(stop), name="heartbeats")

    async def close(self) -> None:
        """After the workers finished: final STOPPED heartbeats, then stop serving."""
        try:
            task = self._heartbeat_task
            if task is not None:
                if self._stop is None or not self._stop.is_set():
                    task.cancel()  # the runner itself was cancelled: no DRAINING beat will come
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if self.heartbeats is not None:
                await self.heartbeats.close()
            if self._tracer_provider is not None:
                # Spans of the last messages are still queued: export them before the process ends.
                await asyncio.get_running_loop().run_in_executor(None, self._tracer_provider.force_flush)
        finally:
            reserve_span_queue(-self._span_reservation)
            self._span_reservation = 0
            if self.server is not None:
                self.server.close()
                self.server = None
