"""Durable workflows under kill -9, on the real broker.

tests/chaos/workflow_app.py: each workflow makes 3 sequential calls, a 5-way scatter-gather and a
durable sleep. The engine's and the specialists' worker processes are each killed with -9 three times
while 2,000 workflows run (400 in CI). Every workflow must complete exactly once with its right output,
no step may be requested twice (request topics read as read_committed consumers see them), and every
workflow's timer must fire (it cannot complete otherwise).
"""

from __future__ import annotations

import importlib
import os
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from streams import App, Publisher, Settings
from streams.admin import TopicAdmin
from streams.events import TaskCompleted, TaskRequested, WorkflowEvent, WorkflowEventKind
from streams.serde.codec import RecordDecoder
from streams.serde.payloads import Payloads
from streams.serde.registry import ConfluentRegistry
from streams.workflows.messages import start_event
from tests.chaos import workflow_app
from tests.chaos._harness import CommittedReader, Pipeline

pytestmark = pytest.mark.chaos

WORKFLOWS = 2000 if os.environ.get("STREAMS_SOAK") == "1" else 400
KILLS = 3
START_SECONDS = 120 if os.environ.get("STREAMS_SOAK") == "1" else 50  # starts arrive over this long
DEADLINE = float(os.environ.get("CHAOS_DEADLINE", "900"))
ENGINE, SPECIALISTS = ("chaos",), ("step", "fan")


def test_workflows_complete_once_with_no_step_requested_twice_through_kills(
    settings: Settings, registry: ConfluentRegistry, tmp_path: Path
) -> None:
    pipeline = Pipeline.create(
        settings,
        registry,
        tmp_path,
        app_ref="tests.chaos.workflow_app:app",
        agents=(*ENGINE, *SPECIALISTS),
        extra_env={"CHAOS_HANDLER_SLEEP": "0.03"},
    )
    os.environ["CHAOS_PREFIX"] = pipeline.prefix  # the app below is built under the test's prefix
    app = _app_for(pipeline.prefix)
    TopicAdmin(settings, registry).apply(list(app.topics.values()))
    definition = app.workflows["chaos"]
    payloads = Payloads(registry)
    cases = {f"wf-{uuid.uuid4().hex[:12]}": f"case{i}" for i in range(WORKFLOWS)}
    publishing_failed: list[BaseException] = []

    def publish_over_time() -> None:
        """Starts arrive over START_SECONDS, as real traffic does: workflows then finish over the
        run instead of in one wave at its end, so kills scheduled by completions land mid-run."""
        try:
            with Publisher(settings, registry) as publisher:
                for n, (workflow_id, payload) in enumerate(cases.items()):
                    value = TaskRequested(task_id=workflow_id, capability="chaos", payload=payload)
                    now = int(time.time() * 1000)
                    event = start_event(definition, value, workflow_id, payloads, "chaos-test", now)
                    publisher.publish(definition.events, event, key=workflow_id)
                    if n % 20 == 19:
                        publisher.flush()
                        time.sleep(START_SECONDS * 20 / WORKFLOWS)
        except BaseException as exc:  # noqa: BLE001 - reported by the waiting loop below
            publishing_failed.append(exc)

    publisher_thread = threading.Thread(target=publish_over_time, name="starts", daemon=True)

    events = CommittedReader(settings, registry, definition.events.name, value=WorkflowEvent)
    started = time.monotonic()
    completed_at_kill: list[int] = []

    def completed() -> int:
        events.drain(0.3)
        return sum(1 for e in events.values if e.kind is WorkflowEventKind.COMPLETED)

    def wait_for(target: int) -> None:
        while completed() < target:
            assert not publishing_failed, f"publishing the starts failed: {publishing_failed[0]!r}"
            dead = [w for w in pipeline.workers if w.poll() not in (None, 0, -9)]
            assert not dead, f"a worker exited with {dead[0].returncode}:\n{pipeline.logs()}"
            assert time.monotonic() - started < DEADLINE, f"{completed()} of {target}:\n{pipeline.logs()}"

    try:
        engine = pipeline.start_worker(ENGINE)
        specialists = pipeline.start_worker(SPECIALISTS)
        publisher_thread.start()
        for i in range(2 * KILLS):  # engine and specialists by turns, each killed KILLS times
            wait_for(int(WORKFLOWS * (i + 1) / (2 * KILLS + 2)))
            completed_at_kill.append(completed())
            if i % 2 == 0:
                pipeline.kill_9(engine)
                engine = pipeline.start_worker(ENGINE)
            else:
                pipeline.kill_9(specialists)
                specialists = pipeline.start_worker(SPECIALISTS)
        wait_for(WORKFLOWS)
        events.drain(3.0)  # a second completion would show up now
    finally:
        codes = pipeline.stop_all()
        events.close()

    assert codes.count(-9) == 2 * KILLS, codes
    assert all(n < WORKFLOWS for n in completed_at_kill), f"every kill must land mid-run: {completed_at_kill}"
    decode = RecordDecoder(registry, TaskCompleted)
    endings = [e for e in events.values if e.kind in (WorkflowEventKind.COMPLETED, WorkflowEventKind.FAILED)]
    per_workflow = Counter(e.workflow_id for e in endings)
    assert set(per_workflow) == set(cases), f"{len(set(cases) - set(per_workflow))} workflows never ended"
    assert max(per_workflow.values()) == 1, (
        f"ended twice: {[w for w, n in per_workflow.items() if n > 1][:3]}"
    )
    wrong = {
        e.workflow_id: e.error or (e.payload and decode(e.payload).result)
        for e in endings
        if e.kind is not WorkflowEventKind.COMPLETED
        or decode(e.payload or b"").result != workflow_app.expected(cases[e.workflow_id])
    }
    assert not wrong, f"{len(wrong)} wrong outputs, e.g. {list(wrong.items())[:2]}"
    steps = CommittedReader(settings, registry, app.specialists["step"].requests.name, value=TaskRequested)
    fans = CommittedReader(settings, registry, app.specialists["fan"].requests.name, value=TaskRequested)
    try:
        step_ids, fan_ids = _request_ids(steps, 3 * WORKFLOWS), _request_ids(fans, 5 * WORKFLOWS)
    finally:
        steps.close()
        fans.close()
    restores = sum(log.read_text().count("restored table journal") for log in tmp_path.glob("worker-*.log"))
    print(
        f"{len(endings)} endings for {WORKFLOWS} workflows; completed at kills: {completed_at_kill}; "
        f"{sum(step_ids.values())} step and {sum(fan_ids.values())} fan requests; {restores} journal restores"
    )
    assert len(step_ids) == 3 * WORKFLOWS and max(step_ids.values()) == 1, "each call step requested once"
    assert len(fan_ids) == 5 * WORKFLOWS and max(fan_ids.values()) == 1, "each gathered step requested once"


def _request_ids(reader: CommittedReader, expected: int) -> Counter[str]:
    """Message ids of the committed requests on a request topic (they are the step ids)."""
    deadline = time.monotonic() + 60
    while reader.drain(1.0) < expected and time.monotonic() < deadline:
        pass
    reader.drain(2.0)
    return Counter(reader.ids)


def _app_for(prefix: str) -> App:
    """The chaos app as its workers build it, under ``prefix`` (set in the environment first)."""
    assert os.environ["CHAOS_PREFIX"] == prefix
    return importlib.reload(workflow_app).app
