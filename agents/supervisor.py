"""A supervisor workflow: plan, then research each planned topic in parallel, then synthesise.

    streams run agents.supervisor:app        # the engine and the three specialists, in one worker

and from code (or a test)::

    async with Client(app) as client:
        case_id = await client.start("triage", TaskRequested(task_id="case-1", capability="triage",
                                                               payload="payments are failing in EU"))
        report = await client.result("triage", case_id)

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


def _answer(task: TaskRequested, agent: str, result: str) -> TaskCompleted:
    return TaskCompleted(task_id=task.task_id, agent=agent, status=TaskStatus.SUCCEEDED, result=result)


def build(name: str = "supervisor") -> App:
    """The app, named ``name`` (tests run it under a name of their own)."""
    app = App(name)

    @app.specialist("plan", input=TaskRequested, output=TaskCompleted, guarantee=ExactlyOnce())
    async def plan(case: TaskRequested, ctx: Context) -> TaskCompleted:
        await asyncio.sleep(MODEL_LATENCY)
        words = [word for word in case.payload.split() if len(word) > 3][:3] or ["context"]
        return _answer(case, "plan", ",".join(words))

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

    @app.specialist("synthesise", input=TaskRequested, output=TaskCompleted, guarantee=ExactlyOnce())
    async def synthesise(notes: TaskRequested, ctx: Context) -> TaskCompleted:
        await asyncio.sleep(MODEL_LATENCY)
        return _answer(notes, "synthesise", f"report: {notes.payload}")

    @app.workflow(input=TaskRequested, output=TaskCompleted)
    async def triage(case: TaskRequested, wf: Workflow) -> TaskCompleted:
        topics = (await wf.call("plan", case)).result or ""
        questions = [
            TaskRequested(task_id=f"{case.task_id}/{i}", capability="research", payload=topic)
            for i, topic in enumerate(topics.split(","))
        ]
        findings = await wf.gather(*(wf.call("research", q) for q in questions))
        notes = "; ".join(found.result or "" for found in findings)
        report = await wf.call(
            "synthesise", TaskRequested(task_id=case.task_id, capability="synthesise", payload=notes)
        )
        return _answer(case, "triage", report.result or "")

    return app


# SUPERVISOR_APP renames it (its topics and consumer groups are <name>.*), so copies can share a cluster.
app = build(os.environ.get("SUPERVISOR_APP", "supervisor"))
