"""A worker process sets the garbage collector up for itself: it exempts its start-up objects
(``STREAMS_GC_FREEZE``) and raises the young generation's threshold (``STREAMS_GC_YOUNG_THRESHOLD``).
Checked in a process of its own: both are once per process, and this one is pytest's."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from streams import Settings

# Runs one agent until its worker has started, then stops it and prints how many objects the
# collector had frozen before and after, and its young generation's threshold before and after.
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
    before, threshold = gc.get_freeze_count(), gc.get_threshold()[0]
    # Stopped at once: start-up (topics, schemas, the freeze) runs all the same, then it drains.
    stop.set()
    await run_agents(app, stop=stop)
    print(before, gc.get_freeze_count(), threshold, gc.get_threshold()[0])

asyncio.run(main())
"""


@pytest.mark.parametrize(
    ("variables", "frozen", "young"),
    [
        ({}, True, 50_000),
        ({"STREAMS_GC_FREEZE": "false"}, False, 50_000),
        ({"STREAMS_GC_YOUNG_THRESHOLD": "0"}, True, None),
        ({"STREAMS_GC_YOUNG_THRESHOLD": "20000"}, True, 20_000),
    ],
)
def test_a_worker_sets_the_collector_up_as_its_settings_say(
    settings: Settings, topic_name: str, variables: dict[str, str], frozen: bool, young: int | None
) -> None:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "SCHEMA_REGISTRY_URL": settings.schema_registry_url,
    }
    env.pop("STREAMS_GC_FREEZE", None)
    env.pop("STREAMS_GC_YOUNG_THRESHOLD", None)
    env.update(variables)
    done = subprocess.run(
        [sys.executable, "-c", _WORKER, f"gc-{topic_name[-8:]}", topic_name],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    before, after, threshold_before, threshold_after = map(int, done.stdout.split())
    # Start-up leaves tens of thousands of objects (modules, classes, schemas); none more when turned
    # off (an imported library may have frozen a few hundred of its own).
    assert (after > before + 10_000) if frozen else (after == before), (before, after)
    # 0 leaves Python's own threshold (700 unless something changed it) as it was.
    assert threshold_after == (threshold_before if young is None else young)
