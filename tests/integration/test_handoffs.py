"""Typed handoffs on the real broker: a chain answered end to end from code and from a workflow (its
journal recording the chain), and a chain longer than the hop limit refused with a clear error."""

from __future__ import annotations

import uuid

import pytest

from streams import App, Client, Context, ExactlyOnce, Handoff, HandoffRefused, Settings, Workflow
from streams import headers as hdr
from streams.admin import TopicAdmin
from streams.events import StepStatus, TaskCompleted, TaskRequested, TaskStatus
from streams.serde.registry import ConfluentRegistry
from streams.state_query import read_table
from streams.tail import tail
from streams.workflows.engine import JOURNAL
from tests.integration._agents import running

pytestmark = pytest.mark.integration

HOPS = ("hop-a", "hop-b", "hop-c")


def _task(task_id: str, route: str) -> TaskRequested:
    return TaskRequested(task_id=task_id, capability="front", payload=route)


def _app(settings: Settings) -> App:
    """``front`` and three hops, each passing the request on to the next capability its payload names
    (``hop-a,hop-b``), the last answering; the workflow asks ``front``. At most two handoffs."""
    app = App(f"handoff-{uuid.uuid4().hex[:8]}", settings.model_copy(update={"streams_max_hops": 2}))

    async def route(name: str, task: TaskRequested) -> TaskCompleted | Handoff:
        hops = [h for h in task.payload.split(",") if h]
        if not hops:
            return TaskCompleted(
                task_id=task.task_id, agent=name, status=TaskStatus.SUCCEEDED, result=f"answered by {name}"
            )
        rest = TaskRequested(task_id=task.task_id, capability=hops[0], payload=",".join(hops[1:]))
        return Handoff(to=hops[0], value=rest, reason=f"{name} sends it on")

    for name in ("front", *HOPS):

        @app.specialist(
            name, input=TaskRequested, output=TaskCompleted, partitions=2, guarantee=ExactlyOnce()
        )
        async def hop(task: TaskRequested, ctx: Context, name: str = name) -> TaskCompleted | Handoff:
            return await route(name, task)

    @app.workflow(input=TaskRequested, output=TaskCompleted, partitions=2)
    async def case(task: TaskRequested, wf: Workflow) -> TaskCompleted:
        return await wf.call("front", task, timeout=30)

    return app


async def test_a_chain_answers_from_code_and_from_a_workflow_and_one_past_the_limit_is_refused(
    settings: Settings, registry: ConfluentRegistry
) -> None:
    app = _app(settings)
    TopicAdmin(settings, registry).apply(list(app.topics.values()))
    async with running(app), Client(app, registry=registry) as client:
        answer = await client.call("front", _task("direct", "hop-a,hop-b"), timeout=30)
        assert (answer.agent, answer.result) == ("hop-b", "answered by hop-b"), "two handoffs: the limit"

        with pytest.raises(HandoffRefused) as refused:
            await client.call("front", _task("long", "hop-a,hop-b,hop-c"), timeout=30)
        assert str(refused.value) == (
            "front -> hop-a -> hop-b failed after 1 attempt(s): HandoffRefused: handoff refused: "
            "front -> hop-a -> hop-b -> hop-c would take 3 handoffs, over the limit of 2"
        )

        workflow_id = await client.start("case", _task("in-workflow", "hop-c"))
        output = await client.result("case", workflow_id, timeout=30)
        assert (output.agent, output.result) == ("hop-c", "answered by hop-c")

    journals = read_table(settings, registry, app.agents["case"], JOURNAL, timeout=30)
    [journal] = [row.value for row in journals.rows() if row.key == workflow_id]
    [step] = journal.steps
    assert (step.name, step.status, step.handoffs) == ("front", StepStatus.SUCCEEDED, ["front", "hop-c"])

    # The requests the hops sent on carry the chain in their headers; hop-c never got the long one.
    requests = {
        name: list(
            tail(settings, registry, app.specialists[name].requests.name, from_beginning=True, idle_timeout=2)
        )
        for name in HOPS
    }
    assert [m.headers[hdr.HANDOFF_CHAIN] for m in requests["hop-a"]] == ["front,hop-a", "front,hop-a"]
    assert [m.headers[hdr.HANDOFF_CHAIN] for m in requests["hop-b"]] == [
        "front,hop-a,hop-b",
        "front,hop-a,hop-b",
    ]
    [from_workflow] = requests["hop-c"]
    assert from_workflow.headers[hdr.HANDOFF_CHAIN] == "front,hop-c"
    assert from_workflow.headers[hdr.REPLY_KEY] == workflow_id, "the answer goes to the workflow"
    assert from_workflow.headers[hdr.HANDOFF_REASON] == "front sends it on"
