"""Ours: the same work written with the public ``streams`` API, run by ``run_agents``.

Pipeline: three agents (one consumer group each) in one process and one event loop. Handlers build
typed records (pydantic), ``ctx.send`` them; the runtime decodes, encodes, propagates headers and
commits after delivery (at-least-once) or in a transaction (``guarantee=ExactlyOnce()``).
Windows: one ``app.windowed`` agent, a reducer counting samples into a ``WindowSummary``; window state
and stream time live in its tables (in memory, written to their changelog topics).
Options from the harness: ``concurrency``, ``ordering`` (pipeline, io), ``guarantee``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from bench.contenders.common import Config, StartMarker
from streams import App, AtLeastOnce, ExactlyOnce, Settings, Tumbling, Window
from streams.context import Context
from streams.events import MetricSample, TaskCompleted, TaskRequested, TaskStatus, WindowSummary
from streams.runner import run_agents


def build(config: Config) -> App:
    settings = Settings(kafka_bootstrap_servers=config.bootstrap, schema_registry_url=config.registry)
    app = App(config.group, settings=settings)
    guarantee = ExactlyOnce() if config.options.get("guarantee") == "exactly_once" else AtLeastOnce()
    options: dict[str, Any] = {
        "start": "earliest",
        "concurrency": int(config.options.get("concurrency", 1)),
        "ordering": config.options.get("ordering", "key"),
        "guarantee": guarantee,
    }
    marker = StartMarker()
    n = config.partitions  # the harness has created every topic with this many

    if config.scenario == "windows":
        samples = app.topic(config.topics[0], value=MetricSample, partitions=n)
        summaries = app.topic(config.topics[1], value=WindowSummary, partitions=n)

        @app.windowed(
            samples,
            Tumbling(size=config.window_ms / 1000, grace=config.grace_ms / 1000),
            into=summaries,
            timestamp=lambda sample: sample.observed_at,
            guarantee=guarantee,
            start="earliest",
        )
        def count(window: Window, current: WindowSummary | None, sample: MetricSample) -> WindowSummary:
            marker()
            if current is None:
                return WindowSummary(key=sample.name, start=window.start_at, end=window.end_at, count=1)
            return current.model_copy(update={"count": current.count + 1})

    elif config.scenario == "pipeline":
        a, b, c, d = (
            app.topic(config.topics[0], value=TaskRequested, partitions=n),
            app.topic(config.topics[1], value=TaskRequested, partitions=n),
            app.topic(config.topics[2], value=TaskRequested, partitions=n),
            app.topic(config.topics[3], value=TaskCompleted, partitions=n),
        )

        @app.agent(a, **options)
        async def stage1(task: TaskRequested, ctx: Context) -> None:
            marker()
            await ctx.send(b, _relay(task, 1))

        @app.agent(b, **options)
        async def stage2(task: TaskRequested, ctx: Context) -> None:
            await ctx.send(c, _relay(task, 2))

        @app.agent(c, **options)
        async def stage3(task: TaskRequested, ctx: Context) -> None:
            await ctx.send(d, _complete(task))

    else:
        source = app.topic(config.topics[0], value=TaskRequested, partitions=n)
        sink = app.topic(config.topics[1], value=TaskCompleted, partitions=n)
        delay = config.io_delay

        @app.agent(source, **options)
        async def call_model(task: TaskRequested, ctx: Context) -> None:
            marker()
            await asyncio.sleep(delay)  # stands in for a model or HTTP call
            await ctx.send(sink, _complete(task))

    return app


def _relay(task: TaskRequested, stage: int) -> TaskRequested:
    return task.model_copy(
        update={"capability": f"stage{stage + 1}", "context": {**task.context, f"stage{stage}": "done"}}
    )


def _complete(task: TaskRequested) -> TaskCompleted:
    return TaskCompleted(
        task_id=task.task_id, agent="stage3", status=TaskStatus.SUCCEEDED, result=task.payload
    )


def main() -> None:
    logging.basicConfig(level=os.environ.get("BENCH_LOG_LEVEL", "WARNING"))
    app = build(Config.load())
    asyncio.run(run_agents(app, handle_signals=True))


if __name__ == "__main__":
    main()
