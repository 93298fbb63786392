"""Circuit breakers on the in-memory twin, on its fake clock: a capability's breaker opens after N
failures or timeouts within its window (and not when they are spread out), sends calls to the
fallback or fails them at once with CircuitOpen while open, lets one trial through after the
cool-down, and journals every decision so a replay takes the same branch."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from streams import (
    App,
    Breaker,
    CallFailed,
    CallTimeout,
    CircuitOpen,
    ConfigError,
    Context,
    DataError,
    Middleware,
    Retry,
    TransientError,
    Workflow,
    WorkflowFailed,
)
from streams.events import (
    BreakerDecision,
    BreakerStatus,
    StepKind,
    StepStatus,
    TaskCompleted,
    TaskRequested,
    TaskStatus,
    WorkflowEvent,
    WorkflowEventKind,
)
from streams.state.store import MemoryStore
from streams.state.view import TableView
from streams.telemetry.metrics import BreakerCollector
from streams.testing import TestApp
from streams.workflows.breaker import CIRCUIT_OPEN_CLASS, Breakers, BreakerStats
from streams.workflows.engine import WorkflowEngine
from streams.workflows.replay import replay

pytestmark = pytest.mark.unit


def _task(task_id: str, mode: str = "") -> TaskRequested:
    return TaskRequested(task_id=task_id, capability="research", payload=mode)


def _done(task_id: str, result: str) -> TaskCompleted:
    return TaskCompleted(task_id=task_id, agent="wf", status=TaskStatus.SUCCEEDED, result=result)


def _app(
    health: dict[str, bool],
    asked: list[str],
    policy: Breaker,
    middleware: Sequence[Middleware] = (),
) -> App:
    """``research`` fails while ``health["up"]`` is false; ``research-lite`` always answers. ``asked``
    records every request either of them handled."""
    app = App("breakers", middleware=middleware)
    app.breaker("research", policy)

    @app.specialist("research", input=TaskRequested, output=TaskCompleted)
    async def research(task: TaskRequested, ctx: Context) -> TaskCompleted:
        asked.append(f"research:{task.task_id}")
        if task.task_id.startswith("bad"):
            raise DataError("no such topic")  # the input's fault: never counted
        if not health["up"]:
            raise TransientError("research is down")
        return _done(task.task_id, "full")

    @app.specialist("research-lite", input=TaskRequested, output=TaskCompleted)
    async def research_lite(task: TaskRequested, ctx: Context) -> TaskCompleted:
        asked.append(f"lite:{task.task_id}")
        return _done(task.task_id, "lite")

    # One workflow (one engine, one partition: one breaker of research), run in several modes.
    @app.workflow(input=TaskRequested, output=TaskCompleted, partitions=1)
    async def ask(case: TaskRequested, wf: Workflow) -> TaskCompleted:
        if case.payload == "patient":  # no timeout, per-step retries, and errors end the run
            return await wf.call("research", case, retry=Retry(attempts=3, backoff=1, jitter=0))
        if case.payload == "saga":  # undone by research when the run fails
            await wf.call("research-lite", case)
            wf.compensate("research", _task(f"undo-{case.task_id}"))
            raise RuntimeError("gave up")
        if case.payload == "pair":  # two calls in parallel
            steps = [wf.call("research", _task(f"{case.task_id}/{i}")) for i in range(2)]
            results = []
            for step in steps:
                try:
                    results.append((await step).result or "")
                except CallFailed:
                    results.append("failed")
            return _done(case.task_id, ",".join(results))
        try:
            return await wf.call("research", case, timeout=10)
        except CircuitOpen as exc:
            return _done(case.task_id, f"refused: {exc.capability}")
        except CallTimeout:
            return _done(case.task_id, "timed out")
        except CallFailed:
            return _done(case.task_id, "failed")

    return app


async def _ask(t: TestApp, task_id: str, mode: str = "") -> str:
    workflow_id = await t.start("ask", _task(task_id, mode), workflow_id=task_id)
    result: TaskCompleted = t.result("ask", workflow_id)
    return result.result or ""


def _state(t: TestApp) -> BreakerStatus | None:
    found = t.breaker("ask", "research")
    return None if found is None else found.status


async def test_the_breaker_opens_after_n_failures_within_the_window_and_not_when_they_are_spread_out() -> (
    None
):
    health, asked = {"up": False}, []
    app = _app(health, asked, Breaker(failures=3, within=60, cool_down=30))
    async with TestApp(app) as t:
        assert [await _ask(t, "c0"), await _ask(t, "c1")] == ["failed", "failed"]
        await t.advance(61)  # the first two fall out of the window
        assert [await _ask(t, "c2"), await _ask(t, "c3")] == ["failed", "failed"]
        state = t.breaker("ask", "research")
        assert state is not None and state.status is BreakerStatus.CLOSED, "4 failures, never 3 in 60 s"
        assert len(state.failures) == 2
        assert await _ask(t, "c4") == "failed"  # the third within 60 s
        state = t.breaker("ask", "research")
        assert state is not None and state.status is BreakerStatus.OPEN and state.opens == 1
        assert state.last_error == "TransientError: research is down"
        assert await _ask(t, "c5") == "refused: research"
        assert asked == [f"research:c{i}" for i in range(5)], "the call while open reached nobody"


async def test_while_open_calls_go_to_the_fallback_and_the_metrics_say_so() -> None:
    health, asked = {"up": False}, []
    app = _app(health, asked, Breaker(failures=2, within=60, cool_down=30, fallback="research-lite"))
    async with TestApp(app) as t:
        assert [await _ask(t, "c0"), await _ask(t, "c1")] == ["failed", "failed"]
        assert await _ask(t, "c2") == "lite"
        assert asked == ["research:c0", "research:c1", "lite:c2"]
        journal = t.journal("ask", "c2")
        assert journal is not None
        [step] = journal.steps
        assert (step.name, step.breaker, step.fallback, step.status) == (
            "research",
            BreakerDecision.FALLBACK,
            "research-lite",
            StepStatus.SUCCEEDED,
        )
        assert [m.value.task_id for m in t.messages(app.specialists["research"].requests)] == ["c0", "c1"]

        engine = app.agents["ask"].handler
        assert isinstance(engine, WorkflowEngine)
        registry = CollectorRegistry()
        registry.register(BreakerCollector({"ask": engine.breaker_stats}))
        labels = {"agent": "ask", "capability": "research"}
        sample = registry.get_sample_value
        assert sample("streams_workflow_breaker_state", {**labels, "partition": "0"}) == 2  # open
        assert sample("streams_workflow_breaker_opens_total", labels) == 1
        assert sample("streams_workflow_breaker_short_circuited_total", labels) == 1
        assert sample("streams_workflow_breaker_fallbacks_total", labels) == 1


async def test_without_a_fallback_an_open_breaker_fails_the_call_at_once_with_circuit_open() -> None:
    health, asked = {"up": False}, []
    app = _app(health, asked, Breaker(failures=2, within=60, cool_down=30))
    async with TestApp(app) as t:
        await _ask(t, "c0")
        await _ask(t, "c1")
        workflow_id = await t.start("ask", _task("s", "patient"))
        with pytest.raises(WorkflowFailed) as failed:
            t.result("ask", workflow_id)
        assert failed.value.error_class == CIRCUIT_OPEN_CLASS
        assert "circuit open for research" in str(failed.value)
        journal = t.journal("ask", workflow_id)
        assert journal is not None
        [step] = journal.steps
        assert step.status is StepStatus.FAILED and step.breaker is BreakerDecision.REFUSED
        assert step.tries == 1 and step.error_kind == "FATAL", "refused at once, not retried"
        assert t.clock.sleeps == [], "no backoff waited for"
        assert asked == ["research:c0", "research:c1"], "no request sent"


async def test_after_the_cool_down_one_trial_goes_through_and_its_outcome_closes_or_reopens() -> None:
    health, asked = {"up": False}, []
    app = _app(health, asked, Breaker(failures=2, within=60, cool_down=30, fallback="research-lite"))
    async with TestApp(app) as t:
        await _ask(t, "c0")
        await _ask(t, "c1")
        await t.advance(29)
        assert await _ask(t, "c2") == "lite", "still cooling down"
        await t.advance(2)
        assert await _ask(t, "p1", "pair") == "failed,lite", "one trial (failed), the other kept away"
        journal = t.journal("ask", "p1")
        assert journal is not None
        assert [s.breaker for s in journal.steps] == [BreakerDecision.TRIAL, BreakerDecision.FALLBACK]
        state = t.breaker("ask", "research")
        assert state is not None and state.status is BreakerStatus.OPEN and state.opens == 2, "re-opened"
        assert await _ask(t, "c3") == "lite", "a new cool-down from the failed trial"

        health["up"] = True
        await t.advance(31)
        assert await _ask(t, "p2", "pair") == "full,lite"
        assert _state(t) is BreakerStatus.CLOSED, "the trial succeeded"
        assert await _ask(t, "c4") == "full", "closed: calls go through again"
        assert [a for a in asked if a.startswith("research:")] == [
            "research:c0",
            "research:c1",
            "research:p1/0",
            "research:p2/0",
            "research:c4",
        ]


async def test_timeouts_count_and_a_trial_that_never_answers_is_given_up_after_a_cool_down() -> None:
    health, asked = {"up": True}, []
    app = _app(health, asked, Breaker(failures=2, within=60, cool_down=30, fallback="research-lite"))
    async with TestApp(app, agents=["ask", "research-lite"]) as t:  # research answers nobody
        for task_id in ("c0", "c1"):
            await t.start("ask", _task(task_id), workflow_id=task_id)
            await t.advance(10)
            assert t.result("ask", task_id).result == "timed out"
        assert _state(t) is BreakerStatus.OPEN
        await t.advance(31)
        await t.start("ask", _task("w0", "patient"), workflow_id="w0")  # the trial, never answered
        state = t.breaker("ask", "research")
        assert state is not None and state.status is BreakerStatus.HALF_OPEN
        assert await _ask(t, "c2") == "lite", "a trial is out: kept away"
        await t.advance(31)
        await t.start("ask", _task("c3"), workflow_id="c3")
        journal = t.journal("ask", "c3")
        assert journal is not None and journal.steps[0].breaker is BreakerDecision.TRIAL, "w0 given up"
        await t.advance(10)
        assert t.result("ask", "c3").result == "timed out"
        state = t.breaker("ask", "research")
        assert state is not None and state.status is BreakerStatus.OPEN and state.opens == 2


async def test_a_decision_is_journaled_so_a_replay_takes_the_same_branch_whatever_the_breaker_says_now() -> (
    None
):
    health, asked = {"up": False}, []
    app = _app(health, asked, Breaker(failures=2, within=60, cool_down=30, fallback="research-lite"))
    async with TestApp(app, agents=["ask", "research"]) as t:  # the fallback answers only when told
        await _ask(t, "c0")
        await _ask(t, "c1")
        await t.start("ask", _task("x", "patient"), workflow_id="x")  # to the fallback; no answer yet
        [request] = t.messages(app.specialists["research-lite"].requests)
        health["up"] = True
        await t.advance(31)
        assert await _ask(t, "y") == "full"
        assert _state(t) is BreakerStatus.CLOSED, "closed before x's answer came"

        # A restarted engine has x's committed journal and a breaker that now lets calls through.
        journal = t.journal("ask", "x")
        assert journal is not None and journal.steps[0].breaker is BreakerDecision.FALLBACK
        closed = Breakers(
            app.breakers,
            app.specialists,
            lambda: TableView("breakers", MemoryStore(), 0),
            0,
            BreakerStats(),
        )
        outcome = replay(
            app.workflows["ask"].function,
            journal,
            TaskRequested,
            now_ms=t.clock.millis(),
            payloads=t.payloads,
            output_of=lambda kind, name: app.specialists[name].output,
            breakers=closed,
        )
        assert outcome.suspended and outcome.requests == [], "nothing asked again, of anyone"
        assert outcome.journal.steps[0].fallback == "research-lite"

        # The fallback's answer comes (as research-lite would send it) and x ends with it.
        answer = WorkflowEvent(
            kind=WorkflowEventKind.STEP_SUCCEEDED,
            workflow_id="x",
            name="research-lite",
            request_id=request.headers["message-id"],
            payload=t.payloads.encode(_done("x", "lite")),
            attempts=1,
            sender="research-lite",
            at=datetime.fromtimestamp(t.clock.now, UTC),
        )
        await t.publish(app.workflows["ask"].events, answer, key="x")
        assert t.result("ask", "x").result == "lite"
        assert "research:x" not in asked


def test_breaker_policies_are_checked_when_declared() -> None:
    with pytest.raises(ConfigError, match="failures"):
        Breaker(failures=0)
    with pytest.raises(ConfigError, match="longer than 0"):
        Breaker(cool_down=0)
    app = App("breakers")
    with pytest.raises(ConfigError, match="its own fallback"):
        app.breaker("research", Breaker(fallback="research"))
    app.breaker("research", Breaker(failures=3))
    app.breaker("research", Breaker(failures=3))  # the same again is no conflict
    with pytest.raises(ConfigError, match="different breaker"):
        app.breaker("research", Breaker(failures=4))


async def test_a_fallback_that_takes_other_records_fails_the_workflow_with_a_clear_error() -> None:
    app = App("breakers")
    app.breaker("research", Breaker(failures=1, fallback="summary"))

    @app.specialist("research", input=TaskRequested, output=TaskCompleted)
    async def research(task: TaskRequested, ctx: Context) -> TaskCompleted:
        raise TransientError("down")

    @app.specialist("summary", input=TaskCompleted, output=TaskCompleted)
    async def summary(done: TaskCompleted, ctx: Context) -> TaskCompleted:
        return done

    @app.workflow(input=TaskRequested, output=TaskCompleted, partitions=1)
    async def twice(case: TaskRequested, wf: Workflow) -> TaskCompleted:
        with contextlib.suppress(CallFailed):
            await wf.call("research", case)
        return await wf.call("research", case)

    async with TestApp(app) as t:
        workflow_id = await t.start("twice", _task("t"))
        with pytest.raises(WorkflowFailed, match="a fallback must take and return the same records"):
            t.result("twice", workflow_id)
        journal = t.journal("twice", workflow_id)
        assert journal is not None and [s.kind for s in journal.steps] == [StepKind.CALL, StepKind.CALL]


async def test_a_gather_can_go_on_with_partial_results_when_a_breaker_refuses_one_call() -> None:
    health, asked = {"up": False}, []
    app = _app(health, asked, Breaker(failures=1, cool_down=30))

    @app.workflow(input=TaskRequested, output=TaskCompleted, partitions=1)
    async def survey(case: TaskRequested, wf: Workflow) -> TaskCompleted:
        steps = [wf.call(c, _task(f"{case.task_id}/{c}")) for c in ("research", "research-lite")]
        gathered = await wf.gather_within(*steps, timeout=60, at_least=1)
        failed = ",".join(type(error).__name__ for error in gathered.failed.values())
        return _done(case.task_id, f"{len(gathered.answered)} answered; failed: {failed}")

    async with TestApp(app) as t:
        first = await t.start("survey", _task("s1"))
        assert t.result("survey", first).result == "1 answered; failed: CallFailed"
        second = await t.start("survey", _task("s2"))
        assert t.result("survey", second).result == "1 answered; failed: CircuitOpen", "refused at once"
        assert asked.count("research:s1/research") == 1 and "research:s2/research" not in asked


async def test_failed_tries_of_a_steps_retries_count_and_data_errors_do_not() -> None:
    health, asked = {"up": False}, []
    app = _app(health, asked, Breaker(failures=2, within=60, cool_down=30))
    async with TestApp(app) as t:
        assert [await _ask(t, f"bad-{i}") for i in range(3)] == ["failed"] * 3
        assert _state(t) is not BreakerStatus.OPEN, "three data errors, none counted"
        run = await t.start("ask", _task("r", "patient"), workflow_id="r")
        await t.advance(5)  # the first backoff: the second try fails
        await t.advance(5)  # the second: the third try finds the breaker open
        with pytest.raises(WorkflowFailed, match="circuit open for research"):
            t.result("ask", run)
        journal = t.journal("ask", run)
        assert journal is not None
        [step] = journal.steps
        assert step.tries == 3 and step.breaker is BreakerDecision.REFUSED, "two failed tries opened it"
        assert asked.count("research:r") == 2, "the third try was refused"


async def test_compensations_are_never_kept_from_their_capability() -> None:
    health, asked = {"up": False}, []
    app = _app(health, asked, Breaker(failures=2, within=60, cool_down=30))
    async with TestApp(app) as t:
        await _ask(t, "c0")
        await _ask(t, "c1")
        health["up"] = True  # open still: the cool-down has not passed
        run = await t.start("ask", _task("s", "saga"), workflow_id="s")
        with pytest.raises(WorkflowFailed, match="gave up"):
            t.result("ask", run)
        assert "research:undo-s" in asked
        assert _state(t) is BreakerStatus.OPEN


README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


async def test_the_readme_breaker_example_runs_as_written() -> None:
    code = (
        README.split("### Circuit breakers and fallbacks", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    )
    health, asked = {"up": False}, []
    app = _app(health, asked, Breaker())  # its specialists; the example declares its own breaker
    app.breakers.clear()
    example: dict[str, Any] = {
        "app": app,
        "Breaker": Breaker,
        "CircuitOpen": CircuitOpen,
        "TaskCompleted": TaskCompleted,
        "TaskRequested": TaskRequested,
        "TaskStatus": TaskStatus,
        "Workflow": Workflow,
    }
    exec(compile(code, "README.md", "exec"), example)  # our own README's example, run as written
    async with TestApp(app, agents=["answer", "research", "research-lite"]) as t:
        answers = []
        for i in range(6):
            run = await t.start("answer", _task(f"a{i}"))
            try:
                answers.append(t.result("answer", run).result)
            except WorkflowFailed as exc:  # the example lets other failures end the run
                answers.append(type(exc).__name__)
        assert answers == ["WorkflowFailed"] * 5 + ["lite"], "five failures within 60 s open it"
