"""Sagas under kill -9, on the real broker.

tests/chaos/saga_app.py: each run books "a" and "b", registering a compensation after each, then
fails on "c", so it unwinds: "undo" for b, then for a. The engine's worker is killed with -9 twice
while the compensations run (each takes 0.3 s), both times with runs caught between their two
compensations. Every run must end FAILED exactly once, with exactly its two compensations, in reverse
order, each requested once (request topic read as read_committed consumers see it).
"""

from __future__ import annotations

import functools
import importlib
import os
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from streams import App, Publisher, Settings
from streams.admin import TopicAdmin
from streams.events import TaskRequested, WorkflowEvent, WorkflowEventKind
from streams.serde.payloads import Payloads
from streams.serde.registry import ConfluentRegistry
from streams.workflows.messages import start_event
from tests.chaos import saga_app
from tests.chaos._harness import CommittedReader, EffectsLog, Pipeline

pytestmark = pytest.mark.chaos

RUNS = 60
KILLS = 2
DEADLINE = float(os.environ.get("CHAOS_DEADLINE", "600"))
ENGINE, SPECIALISTS = ("trip",), ("book", "undo")


def test_a_failed_saga_runs_its_two_compensations_in_reverse_once_through_engine_kills(
    settings: Settings, registry: ConfluentRegistry, tmp_path: Path
) -> None:
    effects = EffectsLog(tmp_path / "effects.log")
    pipeline = Pipeline.create(
        settings,
        registry,
        tmp_path,
        app_ref="tests.chaos.saga_app:app",
        agents=(*ENGINE, *SPECIALISTS),
        extra_env={"CHAOS_HANDLER_SLEEP": "0.3", "CHAOS_EFFECTS_FILE": str(effects.path)},
    )
    os.environ["CHAOS_PREFIX"] = pipeline.prefix
    app = _app_for(pipeline.prefix)
    TopicAdmin(settings, registry).apply(list(app.topics.values()))
    definition = app.workflows["trip"]
    payloads = Payloads(registry)
    runs = [f"saga-{uuid.uuid4().hex[:12]}" for _ in range(RUNS)]
    with Publisher(settings, registry) as publisher:
        for workflow_id in runs:
            value = TaskRequested(task_id=workflow_id, capability="saga", payload="trip")
            event = start_event(
                definition, value, workflow_id, payloads, "chaos-test", int(time.time() * 1000)
            )
            publisher.publish(definition.events, event, key=workflow_id)

    events = CommittedReader(settings, registry, definition.events.name, value=WorkflowEvent)
    started = time.monotonic()
    between_at_kill: list[int] = []

    def undone() -> dict[str, list[str]]:
        per_run: dict[str, list[str]] = defaultdict(list)
        for line in effects.lines():
            workflow_id, thing = line.split()
            per_run[workflow_id].append(thing)
        return per_run

    def caught(target: int) -> bool:
        """At least ``target`` runs unwinding, and some of them between their two compensations."""
        per_run = undone()
        return len(per_run) >= target and sum(things == ["b"] for things in per_run.values()) >= 3

    def ended() -> int:
        events.drain(0.3)
        return sum(1 for e in events.values if e.kind is WorkflowEventKind.FAILED)

    def wait_until(predicate: object, what: str) -> None:
        assert callable(predicate)
        while not predicate():
            dead = [w for w in pipeline.workers if w.poll() not in (None, 0, -9)]
            assert not dead, f"a worker exited with {dead[0].returncode}:\n{pipeline.logs()}"
            assert time.monotonic() - started < DEADLINE, f"{what}:\n{pipeline.logs()}"
            time.sleep(0.05)

    try:
        engine = pipeline.start_worker(ENGINE)
        pipeline.start_worker(SPECIALISTS)
        for kill in range(KILLS):
            # Kill once some runs are caught between their two compensations.
            target = (kill + 1) * RUNS // (KILLS + 2)
            wait_until(functools.partial(caught, target), f"unwinding never reached {target} runs")
            between_at_kill.append(sum(things == ["b"] for things in undone().values()))
            pipeline.kill_9(engine)
            engine = pipeline.start_worker(ENGINE)
        wait_until(lambda: ended() >= RUNS, f"{ended()} of {RUNS} runs ended")
        events.drain(3.0)  # a second ending would show up now
    finally:
        codes = pipeline.stop_all()
        events.close()

    assert codes.count(-9) == KILLS, codes
    assert all(n > 0 for n in between_at_kill), f"runs between compensations at each kill: {between_at_kill}"
    endings = [e for e in events.values if e.kind in (WorkflowEventKind.COMPLETED, WorkflowEventKind.FAILED)]
    per_run = Counter(e.workflow_id for e in endings)
    assert set(per_run) == set(runs) and max(per_run.values()) == 1, "every run ended, once"
    assert all(
        e.kind is WorkflowEventKind.FAILED and "c cannot be booked" in (e.error or "") for e in endings
    )
    # The code failed with the CallFailed its third call raised (the specialist's DataError is in its text).
    assert all(e.error_class == "streams.errors.CallFailed" for e in endings), "failed as the code did"
    wrong = {w: things for w, things in undone().items() if things != ["b", "a"]}
    assert set(undone()) == set(runs) and not wrong, (
        f"{len(wrong)} runs unwound wrongly: {list(wrong.items())[:3]}"
    )
    requests = CommittedReader(settings, registry, app.specialists["undo"].requests.name, value=TaskRequested)
    try:
        deadline = time.monotonic() + 60
        while requests.drain(1.0) < 2 * RUNS and time.monotonic() < deadline:
            pass
        requests.drain(2.0)
    finally:
        requests.close()
    ids = Counter(requests.ids)
    print(f"{len(endings)} endings; runs between compensations at kills: {between_at_kill}; {len(ids)} undos")
    assert len(ids) == 2 * RUNS and max(ids.values()) == 1, "each compensation requested once"


def _app_for(prefix: str) -> App:
    assert os.environ["CHAOS_PREFIX"] == prefix
    return importlib.reload(saga_app).app
