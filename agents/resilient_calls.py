"""Resilient model calls: retries with backoff by error class, a circuit breaker with a fallback agent,
and graceful degradation, together in one workflow.

    streams run agents.resilient_calls:app
    streams workflow start agents.resilient_calls:app answer --wait \\
        --input '{"task_id": "c1", "capability": "answer", "payload": "why are payments failing"}'

- **Error classes and retries.** ``model`` retries in-process (``Retry(attempts=3)``); its ``classify``
  calls a ``ValueError`` (an empty question) ``DATA``: never retried, answered at once, and not held
  against the model by the breaker. The workflow's own durable retry asks again once more after 0.2 s
  for failures classed transient (a payload starting ``down:`` stands in for a model that is down).
- **Circuit breaker and fallback agent.** Three failures within a minute open the breaker of
  ``model``; for 30 s every call goes to ``model-lite`` (a cheaper model, always up) instead, then one
  trial call decides whether ``model`` is back.
- **Graceful degradation.** Citations are optional: when ``cite`` is slow (a payload containing
  ``slow``) the answer goes out after 2 s without them; when even the main answer fails, the run still
  completes, with a canned answer saying so (``status=FAILED``), instead of failing the caller.

Each specialist stands in for a model call: a short sleep and a computed answer.
"""

from __future__ import annotations

import asyncio

from streams import App, Breaker, CallFailed, CallTimeout, Context, ErrorKind, Retry, TransientError, Workflow
from streams.events import TaskCompleted, TaskRequested, TaskStatus

MODEL_LATENCY = 0.01  # seconds a stand-in model call takes
SLOW_CITATIONS = 5.0  # how long `cite` takes on a payload containing "slow"


def _reply(task: TaskRequested, agent: str, result: str, ok: bool = True) -> TaskCompleted:
    status = TaskStatus.SUCCEEDED if ok else TaskStatus.FAILED
    return TaskCompleted(task_id=task.task_id, agent=agent, status=status, result=result)


def _classify(error: BaseException) -> ErrorKind | None:
    return ErrorKind.DATA if isinstance(error, ValueError) else None  # None: classed by its type


def build(name: str = "resilient") -> App:
    """The app, named ``name`` (tests run it under a name of their own)."""
    app = App(name)
    app.breaker("model", Breaker(failures=3, within=60, cool_down=30, fallback="model-lite"))

    @app.specialist(
        "model",
        input=TaskRequested,
        output=TaskCompleted,
        retry=Retry(attempts=3, backoff=0.05, classify=_classify),
    )
    async def model(question: TaskRequested, ctx: Context) -> TaskCompleted:
        await asyncio.sleep(MODEL_LATENCY)
        if not question.payload.strip():
            raise ValueError("empty question")
        if question.payload.startswith("down:"):
            raise TransientError("model unavailable")
        return _reply(question, "model", f"answer to {question.payload!r}")

    @app.specialist("model-lite", input=TaskRequested, output=TaskCompleted)
    async def model_lite(question: TaskRequested, ctx: Context) -> TaskCompleted:
        await asyncio.sleep(MODEL_LATENCY)
        return _reply(question, "model-lite", f"short answer to {question.payload!r}")

    @app.specialist("cite", input=TaskRequested, output=TaskCompleted, concurrency=8)
    async def cite(question: TaskRequested, ctx: Context) -> TaskCompleted:
        await asyncio.sleep(SLOW_CITATIONS if "slow" in question.payload else MODEL_LATENCY)
        return _reply(question, "cite", f"{len(question.payload.split())} sources")

    @app.workflow(input=TaskRequested, output=TaskCompleted)
    async def answer(case: TaskRequested, wf: Workflow) -> TaskCompleted:
        sources = wf.call("cite", case, timeout=2)  # asked in parallel with the answer
        try:
            main = await wf.call("model", case, timeout=10, retry=Retry(attempts=2, backoff=0.2))
        except (CallFailed, CallTimeout) as exc:
            return _reply(case, "answer", f"no answer now ({exc})", ok=False)
        try:
            cited = f" [{(await sources).result}]"
        except (CallFailed, CallTimeout):
            cited = " [no citations]"  # optional: the answer goes out without them
        return _reply(case, "answer", f"{main.result}{cited}")

    return app


app = build()
