"""Ours in the workflows scenario: a durable workflow of three specialist calls.

``python -m bench.contenders.streams_workflows worker CONFIG`` runs the engine of workflow
``three_steps`` and the specialists ``step1``..``step3`` in one process (``run_agents``, as
``streams run`` does), the engine exactly-once and the specialists as the config's ``steps`` says
(``eos``: exactly-once; ``alo``: at-least-once, their default); ``... driver CONFIG`` starts the
workflows with :class:`streams.Client` and awaits each one's result (see
:mod:`bench.contenders.workflow_common`). Both build the same app: the driver needs its
declarations, not its agents.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any, ClassVar

from confluent_kafka.admin import AdminClient

from bench.contenders.workflow_common import STEPS, DriverConfig, config_from_argv, drive, step
from streams import App, AtLeastOnce, Client, Context, ExactlyOnce, Settings, Workflow
from streams.runner import run_agents
from streams.serde.record import Record

WORKFLOW = "three_steps"


class Tally(Record):
    """The value every step takes and returns."""

    __avro_schema__: ClassVar[dict[str, Any]] = {
        "type": "record",
        "name": "Tally",
        "namespace": "bench.workflows",
        "fields": [
            {"name": "id", "type": "string"},
            {"name": "count", "type": "long"},
            {"name": "trail", "type": "string"},
        ],
    }

    id: str
    count: int
    trail: str


def build(config: DriverConfig) -> App:
    options = config.options
    settings = Settings(kafka_bootstrap_servers=options["bootstrap"], schema_registry_url=options["registry"])
    app = App(options["app"], settings=settings)
    concurrency = config.concurrency
    guarantee = {"eos": ExactlyOnce(), "alo": AtLeastOnce()}[options["steps"]]

    for n in range(1, STEPS + 1):

        async def specialist(tally: Tally, ctx: Context, n: int = n) -> Tally:
            return Tally(**step(tally.model_dump(), n))

        specialist.__name__ = f"step{n}"
        app.specialist(f"step{n}", input=Tally, output=Tally, concurrency=concurrency, guarantee=guarantee)(
            specialist
        )

    @app.workflow(input=Tally, output=Tally, name=WORKFLOW, concurrency=concurrency)
    async def three_steps(tally: Tally, wf: Workflow) -> Tally:
        for n in range(1, STEPS + 1):
            tally = await wf.call(f"step{n}", tally)
        return tally

    return app


def _wait_for_topics(app: App, within: float = 120.0) -> None:
    """Until the worker has created the app's topics (it does at start-up)."""
    admin = AdminClient({"bootstrap.servers": app.settings.kafka_bootstrap_servers})
    names = set(app.topics)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if names <= set(admin.list_topics(timeout=10).topics):
            return
        time.sleep(0.2)
    raise RuntimeError(f"the worker did not create {sorted(names)} within {within:.0f} s")


async def _drive(app: App, config: DriverConfig) -> None:
    await asyncio.to_thread(_wait_for_topics, app)
    async with Client(app) as client:

        async def run_one(workflow_id: str, value: dict[str, Any]) -> dict[str, Any]:
            await client.start(WORKFLOW, Tally(**value), workflow_id=workflow_id)
            output = await client.result(WORKFLOW, workflow_id, timeout=config.timeout)
            return dict(output.model_dump())

        await drive(run_one, config)


def main() -> None:
    logging.basicConfig(level=os.environ.get("BENCH_LOG_LEVEL", "WARNING"))
    role, config = config_from_argv()
    app = build(config)
    if role == "worker":
        asyncio.run(run_agents(app, handle_signals=True))
    elif role == "driver":
        asyncio.run(_drive(app, config))
    else:
        raise SystemExit(f"unknown role {role!r}: worker or driver")


if __name__ == "__main__":
    main()
