"""Run an app's agents in this process until SIGTERM/SIGINT, or in N supervised worker processes.

Start-up creates missing topics (never alters existing ones) and registers schemas, so attaching a new
agent to a running pipeline is one command. Shutdown drains in-flight work and commits. Telemetry
(metrics endpoint, heartbeats: :mod:`streams.telemetry`) runs beside the workers as configured.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from streams.admin import TopicAdmin
from streams.agent import Agent
from streams.app import App
from streams.config import Settings
from streams.errors import ConfigError
from streams.serde.registry import ConfluentRegistry, SchemaRegistry
from streams.telemetry.config import TelemetryConfig
from streams.telemetry.loads import follow_loads
from streams.telemetry.process import ProcessTelemetry
from streams.topics import Topic
from streams.worker.agent_worker import AgentWorker
from streams.worker.dedup import DEDUP_CHANGELOG_CONFIG

log = logging.getLogger("streams.worker")


def select_agents(app: App, names: Sequence[str] | None) -> list[Agent[Any]]:
    if not app.agents:
        raise ConfigError(f"app {app.name} has no agents; declare one with @app.agent(topic)")
    if not names:
        return list(app.agents.values())
    unknown = [n for n in names if n not in app.agents]
    if unknown:
        raise ConfigError(
            f"app {app.name} has no agent {', '.join(unknown)}; agents: {', '.join(app.agents)}"
        )
    return [app.agents[n] for n in names]


def prepare_topics(
    app: App, agents: list[Agent[Any]], registry: SchemaRegistry, extra: Sequence[Topic[Any]] = ()
) -> None:
    """Create what the agents need: the app's topics, ``extra`` typed topics, table changelogs (typed,
    compacted, schemas registered), dead letters and dedup changelogs."""
    admin = TopicAdmin(app.settings, registry)
    tables = [agent.changelog(table) for agent in agents for table in agent.tables]
    for report in admin.apply([*app.topics.values(), *extra, *tables]):
        if report.action == "created":
            log.info("created topic %s", report.topic)
        elif report.differences:
            log.warning(
                "topic %s differs from its declaration: %s", report.topic, "; ".join(report.differences)
            )
    dead_letters = {a.dead_letter_topic: a.topic.partitions for a in agents if a.dead_letter}
    for name in admin.ensure_untyped(dead_letters):
        log.info("created dead-letter topic %s", name)
    changelogs = {a.dedup_changelog_topic: a.topic.partitions for a in agents if a.dedup}
    for name in admin.ensure_untyped(changelogs, DEDUP_CHANGELOG_CONFIG):
        log.info("created dedup changelog %s", name)


class AgentRunner:
    """The workers of the chosen agents (all by default) of one app, in this process.

    ``workers`` exist from construction, so callers (monitoring, tests) can read their stats while
    :meth:`run` is going. ``telemetry`` defaults to what ``STREAMS_*`` variables say (heartbeats every
    10 s; no metrics endpoint unless ``STREAMS_METRICS_PORT`` is set).
    """

    def __init__(
        self,
        app: App,
        names: Sequence[str] | None = None,
        registry: SchemaRegistry | None = None,
        *,
        telemetry: TelemetryConfig | None = None,
    ) -> None:
        self.app = app
        self.agents = select_agents(app, names)
        self._owned_registry = registry is None
        self.registry = registry or ConfluentRegistry(app.settings.registry_config())
        self.telemetry = ProcessTelemetry(telemetry or TelemetryConfig(), app.settings)
        self.workers = [
            AgentWorker(
                self.telemetry.instrument(agent),
                app.settings,
                self.registry,
                middleware=self.telemetry.middleware_for(agent, app.middleware),
            )
            for agent in self.agents
        ]
        self.telemetry.watch(self.workers)

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set; a fatal error in one agent stops the others, then is raised."""
        loop = asyncio.get_running_loop()
        stop_loads: Callable[[], None] | None = None
        try:
            # Before anything slow, so /health answers (and /ready says why not) from the start.
            self.telemetry.open_endpoint()
            await loop.run_in_executor(
                None, prepare_topics, self.app, self.agents, self.registry, self.telemetry.topics
            )
            await loop.run_in_executor(None, self.telemetry.prepare, self.registry)
            if any(agent.name in self.app.workflows for agent in self.agents):
                # Workflow engines route their calls between pools too.
                stop_loads = await loop.run_in_executor(
                    None,
                    follow_loads,
                    self.app,
                    self.app.settings,
                    self.registry,
                    self.telemetry.config.heartbeat_topic,
                )
            prepare_collector(self.app.settings)
            tasks = {w: asyncio.create_task(w.run(stop), name=f"agent-{w.agent.name}") for w in self.workers}
            self.telemetry.start(tasks, stop)
            done, _ = await asyncio.wait(tasks.values(), return_when=asyncio.FIRST_EXCEPTION)
            if any(t.exception() for t in done):
                stop.set()
            await asyncio.gather(*tasks.values(), return_exceptions=True)
            for task in tasks.values():
                error = task.exception()
                if error is not None:
                    raise error
        finally:
            if stop_loads is not None:
                await loop.run_in_executor(None, stop_loads)
            try:
                await self.telemetry.close()
            finally:
                if self._owned_registry:
                    self.registry.close()


async def run_agents(
    app: App,
    names: Sequence[str] | None = None,
    *,
    stop: asyncio.Event | None = None,
    registry: SchemaRegistry | None = None,
    handle_signals: bool = False,
    telemetry: TelemetryConfig | None = None,
) -> list[AgentWorker]:
    """Run the chosen agents until ``stop`` is set (or SIGTERM/SIGINT with ``handle_signals``)."""
    stop = stop or asyncio.Event()
    if handle_signals:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, _on_signal, stop, sig)
    runner = AgentRunner(app, names, registry, telemetry=telemetry)
    await runner.run(stop)
    return runner.workers


_threshold_raised = False
_frozen = False


def prepare_collector(settings: Settings) -> None:
    """Set the garbage collector up for workers. Process-wide and once per process, whoever runs
    workers in it (``streams run``, :func:`run_agents`, a test): it stays so after they stop.

    Messages in flight are alive for a moment, and a worker always has some, so Python's
    young-generation threshold (700 more container objects alive than after the last collection, on
    Python 3.12) kept triggering collections that found nothing to free: on the 3-stage pipeline
    benchmark (60,000 messages) 3,375 young, 306 middle and 28 full collections took 0.44 s of ~8
    CPU-seconds and freed 10 objects. With ``streams_gc_young_threshold`` (50,000) a worker's own
    churn never reaches it there (no collection at all); reference cycles are still collected, in
    fewer and larger collections (a windowed count whose tables grow: 21, 19 of them young ones of
    about 7 ms, instead of 2,477; 0.17 s instead of 0.51). docs/benchmarks.md has the runs.

    ``streams_gc_freeze`` exempts what start-up made (modules, classes, schemas, the app: some 70,000
    objects) from full collections, which otherwise walk them every time. Frozen objects are still
    freed when their last reference goes; only a reference cycle among them would never be
    collected, so the collector runs once first.
    """
    global _threshold_raised, _frozen
    if settings.streams_gc_young_threshold and not _threshold_raised:
        _threshold_raised = True
        _, middle, oldest = gc.get_threshold()
        gc.set_threshold(settings.streams_gc_young_threshold, middle, oldest)
    if settings.streams_gc_freeze and not _frozen:
        _frozen = True
        gc.collect()
        gc.freeze()


def _on_signal(stop: asyncio.Event, sig: signal.Signals) -> None:
    if stop.is_set():
        log.warning("second %s: exiting without draining", sig.name)
        os._exit(130)
    log.info("%s received: draining and committing", sig.name)
    stop.set()


def supervise(argv: list[str], workers: int, per_worker: Sequence[Sequence[str]] | None = None) -> int:
    """Run ``workers`` copies of this command with ``--workers 1`` (worker i also gets the arguments
    ``per_worker[i]``); forward SIGTERM/SIGINT to them."""
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "streams", *argv, *(per_worker[i] if per_worker else ()), "--workers", "1"]
        )
        for i in range(workers)
    ]
    log.info("started %d worker processes: %s", workers, ", ".join(str(c.pid) for c in children))

    def forward(sig: int, _frame: Any) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(sig)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    while any(c.poll() is None for c in children):
        time.sleep(0.2)
    codes = [c.returncode for c in children]
    return max((abs(c) for c in codes), default=0)
