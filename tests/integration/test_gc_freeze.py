"""A worker process exempts its start-up objects from the garbage collector (``STREAMS_GC_FREEZE``),
checked in a process of its own: freezing is once per process, and this one is pytest's."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from streams import Settings

# Runs one agent until its worker has started, then stops it and prints how many objects the
# collector had frozen before and after.
_WORKER = """
import asyncio, gc, sys
from streams import App
from streams.events import TaskRequested
from streams.runner import run_agents

app = App(sys.argv[1])
tasks = app.topic(sys.argv[2], value=TaskRequested, partitions=1)

@app.agent(tasks)
async def noop(task, ctx):
    pass

async def main():
    stop = asyncio.Event()
    before = gc.get_freeze_count()
    # Stopped at once: start-up (topics, schemas, the freeze) runs all the same, then it drains.
    stop.set()
    await run_agents(app, stop=stop)
    print(before, gc.get_freeze_count())

asyncio.run(main())
"""


@pytest.mark.parametrize(("setting", "frozen"), [(None, True), ("false", False)])
def test_a_worker_freezes_its_start_up_objects_unless_told_not_to(
    settings: Settings, topic_name: str, setting: str | None, frozen: bool
) -> None:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "SCHEMA_REGISTRY_URL": settings.schema_registry_url,
    }
    env.pop("STREAMS_GC_FREEZE", None)
    if setting is not None:
        env["STREAMS_GC_FREEZE"] = setting
    done = subprocess.run(
        [sys.executable, "-c", _WORKER, f"gc-{topic_name[-8:]}", topic_name],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    before, after = map(int, done.stdout.split())
    # Start-up leaves tens of thousands of objects (modules, classes, schemas); none more when turned
    # off (an imported library may have frozen a few hundred of its own).
    assert (after > before + 10_000) if frozen else (after == before), (before, after)
