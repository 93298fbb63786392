"""A workflow definition as data: steps with dependencies, conditions, timeouts and retries, as a
typed record (``WorkflowSpec``) that a planner may emit, run by one generic workflow.

    streams run agents.workflow_spec:app          # the engines, the planner and the step specialists
    streams workflow start agents.workflow_spec:app planned --wait \\
        --input '{"task_id": "c1", "capability": "planned", "payload": "checkout outage in EU"}'
    streams workflow start agents.workflow_spec:app execute --wait --input @spec.json   # your own

``planned`` asks the ``plan`` specialist for a ``WorkflowSpec`` and runs it as a child ``execute``
workflow; ``execute`` takes any spec. It checks the spec first (unique step names, dependencies that
exist, no cycle, known capabilities, readable conditions) and fails the run with the reason before
asking anything. Then, in waves, it asks every step whose dependencies have answered, in parallel,
each with the spec's ``timeout_s`` and ``attempts`` (durable retries); a step whose ``when`` is false,
or that depends on a skipped step, is skipped. A step's ``input`` may name earlier results as
``{step}``. The output is a ``TaskCompleted`` whose result is the JSON object of every step's result
(``null`` where skipped). The run is a durable workflow: its progress is journaled, so a restart
resumes it without asking any step twice. The specialists stand in for model calls (a short sleep
and a computed answer); ``plan`` is where a model that writes plans would be called.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from graphlib import CycleError, TopologicalSorter
from typing import ClassVar

from pydantic import Field

from streams import App, Context, DataError, Record, Retry, Workflow
from streams.events import TaskCompleted, TaskRequested, TaskStatus

MODEL_LATENCY = 0.01


class StepSpec(Record):
    __avro_schema__: ClassVar[dict[str, object]] = {
        "type": "record",
        "name": "StepSpec",
        "namespace": "agents.workflow_spec",
        "fields": [
            {"name": "name", "type": "string"},
            {"name": "capability", "type": "string"},
            {"name": "input", "type": "string", "default": "", "doc": "Text; {step} is that step's result."},
            {"name": "depends_on", "type": {"type": "array", "items": "string"}, "default": []},
            {"name": "when", "type": ["null", "string"], "default": None, "doc": "'STEP == VALUE' or '!='."},
            {"name": "timeout_s", "type": "double", "default": 30.0},
            {"name": "attempts", "type": "int", "default": 1},
        ],
    }

    name: str
    capability: str
    input: str = ""
    depends_on: list[str] = Field(default_factory=list)
    when: str | None = None
    timeout_s: float = 30.0
    attempts: int = 1


class WorkflowSpec(Record):
    __avro_schema__: ClassVar[dict[str, object]] = {
        "type": "record",
        "name": "WorkflowSpec",
        "namespace": "agents.workflow_spec",
        "fields": [
            {"name": "spec_id", "type": "string"},
            {"name": "steps", "type": {"type": "array", "items": StepSpec.__avro_schema__}},
        ],
    }

    spec_id: str
    steps: list[StepSpec]


def _condition(when: str) -> tuple[str, str, str]:
    for operator in ("==", "!="):
        step, found, value = when.partition(f" {operator} ")
        if found:
            return step.strip(), operator, value.strip()
    raise DataError(f"condition {when!r}: write 'STEP == VALUE' or 'STEP != VALUE'")


def check(spec: WorkflowSpec, capabilities: set[str]) -> list[str]:
    """The step names in an order that respects dependencies; :class:`DataError` saying what is wrong."""
    steps = {step.name: step for step in spec.steps}
    if len(steps) != len(spec.steps):
        raise DataError(f"spec {spec.spec_id}: two steps share a name")
    for step in spec.steps:
        unknown = [d for d in step.depends_on if d not in steps]
        tested = None if step.when is None else _condition(step.when)[0]
        if tested is not None and tested not in step.depends_on:
            unknown.append(f"{tested} (in its condition; list it in depends_on)")
        if unknown:
            raise DataError(f"spec {spec.spec_id}: step {step.name} depends on unknown {', '.join(unknown)}")
        if step.capability not in capabilities:
            raise DataError(
                f"spec {spec.spec_id}: step {step.name} needs unknown capability {step.capability}"
            )
    try:
        return list(TopologicalSorter({s.name: s.depends_on for s in spec.steps}).static_order())
    except CycleError as exc:
        raise DataError(
            f"spec {spec.spec_id}: steps depend on each other in a cycle: {exc.args[1]}"
        ) from None


def _runs(step: StepSpec, results: dict[str, str | None]) -> bool:
    if any(results[d] is None for d in step.depends_on):
        return False  # a dependency was skipped
    if step.when is None:
        return True
    name, operator, value = _condition(step.when)
    return (results[name] == value) == (operator == "==")


def _input(step: StepSpec, results: dict[str, str | None]) -> str:
    text = step.input
    for name in step.depends_on:
        text = text.replace(f"{{{name}}}", results[name] or "")
    return text


# The step specialists' stand-in answers for their model calls.
FAKES: dict[str, Callable[[str], str]] = {
    "fetch": lambda text: f"{len(text.split())} records about {text}",
    "classify": lambda text: "urgent" if "outage" in text else "routine",
    "escalate": lambda text: f"paged on-call: {text}",
    "summarise": lambda text: f"summary: {text}",
}


def _fake(answer: Callable[[str], str]) -> Callable[[TaskRequested, Context], Awaitable[TaskCompleted]]:
    async def work(task: TaskRequested, ctx: Context) -> TaskCompleted:
        await asyncio.sleep(MODEL_LATENCY)  # a real model client is called here
        result = answer(task.payload)
        return TaskCompleted(
            task_id=task.task_id, agent=task.capability, status=TaskStatus.SUCCEEDED, result=result
        )

    return work


def build(name: str = "specs") -> App:
    app = App(name)
    for capability, answer in FAKES.items():
        app.specialist(capability, input=TaskRequested, output=TaskCompleted, concurrency=8)(_fake(answer))

    @app.specialist("plan", input=TaskRequested, output=WorkflowSpec)
    async def plan(case: TaskRequested, ctx: Context) -> WorkflowSpec:
        await asyncio.sleep(MODEL_LATENCY)  # a model that writes plans is called here
        return WorkflowSpec(
            spec_id=case.task_id,
            steps=[
                StepSpec(name="fetch", capability="fetch", input=case.payload, timeout_s=10, attempts=3),
                StepSpec(name="classify", capability="classify", input="{fetch}", depends_on=["fetch"]),
                StepSpec(
                    name="escalate",
                    capability="escalate",
                    input=case.payload,
                    depends_on=["classify"],
                    when="classify == urgent",
                    timeout_s=5,
                ),
                StepSpec(
                    name="summarise",
                    capability="summarise",
                    input="{fetch}, {classify}",
                    depends_on=["fetch", "classify"],
                ),
            ],
        )

    @app.workflow(input=WorkflowSpec, output=TaskCompleted)
    async def execute(spec: WorkflowSpec, wf: Workflow) -> TaskCompleted:
        order = check(spec, set(app.specialists))
        steps = {step.name: step for step in spec.steps}
        results: dict[str, str | None] = {}
        while len(results) < len(order):
            ready = [
                steps[n] for n in order if n not in results and all(d in results for d in steps[n].depends_on)
            ]
            wave = [step for step in ready if _runs(step, results)]
            results.update({step.name: None for step in ready if step not in wave})
            asks = [
                wf.call(
                    step.capability,
                    TaskRequested(
                        task_id=f"{spec.spec_id}/{step.name}",
                        capability=step.capability,
                        payload=_input(step, results),
                    ),
                    timeout=step.timeout_s,
                    retry=Retry(attempts=step.attempts, backoff=1.0),
                )
                for step in wave
            ]
            for step, answer in zip(wave, await wf.gather(*asks), strict=True):
                results[step.name] = answer.result or ""
        return TaskCompleted(
            task_id=spec.spec_id, agent="execute", status=TaskStatus.SUCCEEDED, result=json.dumps(results)
        )

    @app.workflow(input=TaskRequested, output=TaskCompleted)
    async def planned(case: TaskRequested, wf: Workflow) -> TaskCompleted:
        spec = await wf.call("plan", case, timeout=30)
        return await wf.child("execute", spec)

    return app


app = build()
