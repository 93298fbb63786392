"""A hierarchical supervisor: plan, delegate each subtask to the specialist with its capability (in
parallel), then synthesise.

    streams run agents.supervisor:app        # the engine and the five specialists, in one worker
    streams workflow start agents.supervisor:app triage --wait \\
        --input '{"task_id": "case-1", "capability": "triage", "payload": "GDPR breach latency"}'

and from code (or a test)::

    async with Client(app) as client:
        case_id = await client.start("triage", TaskRequested(task_id="case-1", capability="triage",
                                                               payload="payments are failing in EU"))
        report = await client.result("triage", case_id)

The planner splits a case into subtasks and names the capability each needs (``research``, ``legal``
or ``analytics``, by its words); the workflow asks for them by capability, so each goes to the
request topic of that capability and is served by whichever workers run its specialist: run one
apart with ``streams run agents.supervisor:app --agent legal`` (or several, to share the load).
Each specialist stands in for a model call: a short sleep and a computed answer. Replace the bodies
with real model clients; the workflow stays the same. The workflow's journal makes it durable: kill
the worker at any point and restart it, and the case resumes where it was, with no step run twice.
"""

from __future__ import annotations

import asyncio
import os

from streams import App, Context, ExactlyOnce, Retry, Workflow
from streams.events import TaskCompleted, TaskRequested, TaskStatus

MODEL_LATENCY = 0.01  # seconds a stand-in model call takes
# Which capability a subtask needs, by its words; anything else is for research.
ROUTES = {
    "legal": {"gdpr", "contract", "contracts", "compliance", "complaints"},
    "analytics": {"latency", "revenue", "churn", "metrics"},
}


def route(topic: str) -> str:
    """The capability that handles ``topic``."""
    return next((capability for capability, words in ROUTES.items() if topic.lower() in words), "research")


def _answer(task: TaskRequested, agent: str, result: str) -> TaskCompleted:
    return TaskCompleted(task_id=task.task_id, agent=agent, status=TaskStatus.SUCCEEDED, result=result)


def build(name: str = "supervisor") -> App:
    """The app, named ``name`` (tests run it under a name of their own)."""
    app = App(name)

    @app.specialist("plan", input=TaskRequested, output=TaskCompleted, guarantee=ExactlyOnce())
    async def plan(case: TaskRequested, ctx: Context) -> TaskCompleted:
        await asyncio.sleep(MODEL_LATENCY)  # a real model client is called here (and in each specialist)
        words = [word for word in case.payload.split() if len(word) > 3][:3] or ["context"]
        return _answer(case, "plan", ",".join(f"{route(word)}:{word}" for word in words))

    @app.specialist(
        "research",
        input=TaskRequested,
        output=TaskCompleted,
        concurrency=32,
        guarantee=ExactlyOnce(),
        retry=Retry(attempts=3, backoff=0.1),
    )
    async def research(question: TaskRequested, ctx: Context) -> TaskCompleted:
        await asyncio.sleep(MODEL_LATENCY)
        return _answer(question, "research", f"{question.payload}: {len(question.payload)} findings")

    @app.specialist("legal", input=TaskRequested, output=TaskCompleted, guarantee=ExactlyOnce())
    async def legal(question: TaskRequested, ctx: Context) -> TaskCompleted:
        await asyncio.sleep(MODEL_LATENCY)
        return _answer(question, "legal", f"{question.payload}: {len(question.payload) % 4 + 1} obligations")

    @app.specialist("analytics", input=TaskRequested, output=TaskCompleted, guarantee=ExactlyOnce())
    async def analytics(question: TaskRequested, ctx: Context) -> TaskCompleted:
        await asyncio.sleep(MODEL_LATENCY)
        return _answer(question, "analytics", f"{question.payload}: up {len(question.payload) * 3}%")

    @app.specialist("synthesise", input=TaskRequested, output=TaskCompleted, guarantee=ExactlyOnce())
    async def synthesise(notes: TaskRequested, ctx: Context) -> TaskCompleted:
        await asyncio.sleep(MODEL_LATENCY)
        return _answer(notes, "synthesise", f"report: {notes.payload}")

    @app.workflow(input=TaskRequested, output=TaskCompleted)
    async def triage(case: TaskRequested, wf: Workflow) -> TaskCompleted:
        plan = (await wf.call("plan", case)).result or ""
        subtasks = [
            TaskRequested(task_id=f"{case.task_id}/{i}", capability=capability, payload=topic)
            for i, (capability, _, topic) in enumerate(item.partition(":") for item in plan.split(","))
        ]
        findings = await wf.gather(*(wf.call(task.capability, task) for task in subtasks))
        notes = "; ".join(found.result or "" for found in findings)
        report = await wf.call(
            "synthesise", TaskRequested(task_id=case.task_id, capability="synthesise", payload=notes)
        )
        return _answer(case, "triage", report.result or "")

    return app


# SUPERVISOR_APP renames it (its topics and consumer groups are <name>.*), so copies can share a cluster.
app = build(os.environ.get("SUPERVISOR_APP", "supervisor"))
