"""`streams workflow breakers` and the breaker column of `show`, without a broker: the breakers table's
changelog comes from the in-memory twin, as in tests/unit/test_workflow_cli.py."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime

import pytest

from streams import App, Breaker, CallFailed, Context, TransientError, Workflow
from streams.cli import main
from streams.events import TaskCompleted, TaskRequested, TaskStatus
from streams.testing import TestApp
from tests.unit.test_workflow_cli import TwinChangelog

pytestmark = pytest.mark.unit

APP_REF = f"{__name__}:guarded_app"


def _task(task_id: str) -> TaskRequested:
    return TaskRequested(task_id=task_id, capability="research", payload="")


def _done(task_id: str, result: str) -> TaskCompleted:
    return TaskCompleted(task_id=task_id, agent="wf", status=TaskStatus.SUCCEEDED, result=result)


def _app() -> App:
    app = App("guarded")
    app.breaker("research", Breaker(failures=2, within=60, cool_down=30, fallback="research-lite"))

    @app.specialist("research", input=TaskRequested, output=TaskCompleted)
    async def research(task: TaskRequested, ctx: Context) -> TaskCompleted:
        raise TransientError("research is down")

    @app.specialist("research-lite", input=TaskRequested, output=TaskCompleted)
    async def research_lite(task: TaskRequested, ctx: Context) -> TaskCompleted:
        return _done(task.task_id, "lite")

    @app.workflow(input=TaskRequested, output=TaskCompleted, partitions=1)
    async def ask(case: TaskRequested, wf: Workflow) -> TaskCompleted:
        try:
            return await wf.call("research", case)
        except CallFailed:
            return _done(case.task_id, "failed")

    @app.workflow(input=TaskRequested, output=TaskCompleted)
    async def idle(case: TaskRequested, wf: Workflow) -> TaskCompleted:
        return _done(case.task_id, "")

    return app


@pytest.fixture
def twin(monkeypatch: pytest.MonkeyPatch) -> TestApp:
    app = _app()
    test_app = TestApp(app, agents=["ask", "research", "research-lite"])  # idle never runs

    async def run() -> None:
        async with test_app:
            for task_id in ("c0", "c1", "c2"):  # two failures open it; the third goes to the fallback
                await test_app.start("ask", _task(task_id), workflow_id=task_id)

    asyncio.run(run())
    changelog = TwinChangelog(test_app)
    monkeypatch.setattr("streams.state_query.read_changelog", changelog.read)
    monkeypatch.setattr("streams.state_query.changelog_partitions", changelog.partitions_of)
    monkeypatch.setattr("streams.cli.workflow.registry", lambda config: test_app.registry)
    # Ten seconds after the twin's start: within the cool-down.
    monkeypatch.setattr("streams.cli.workflow._now", lambda: datetime.fromtimestamp(1_700_000_010, UTC))
    monkeypatch.setattr(sys.modules[__name__], "guarded_app", app, raising=False)
    return test_app


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["workflow", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_breakers_lists_each_engines_breakers_from_the_changelog(
    twin: TestApp, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(capsys, "breakers", APP_REF, "--json")
    assert code == 0, err
    document = json.loads(out)
    assert document["not_run"] == ["idle"]
    assert document["declared"]["research"].startswith("research: opens after 2 failure(s) within 1m00s")
    [breaker] = document["breakers"]
    assert (breaker["workflow"], breaker["partition"], breaker["capability"]) == ("ask", 0, "research")
    assert (breaker["status"], breaker["trial_due"], breaker["opens"]) == ("open", False, 1)
    assert breaker["fallback"] == "research-lite"
    assert breaker["last_error"] == "TransientError: research is down"
    assert breaker["next_trial"] == datetime.fromtimestamp(1_700_000_030, UTC).isoformat()

    code, out, err = _run(capsys, "breakers", APP_REF, "ask")
    assert code == 0, err
    assert "│ ask " in out and "│ open " in out and "2023-11-14 22:13:50.000" in out, "next trial, UTC"
    assert "research: opens after 2 failure(s) within 1m00s; while open calls go to research-lite" in out


def test_show_says_what_the_breaker_decided_for_each_step_and_how_it_stands(
    twin: TestApp, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(capsys, "show", APP_REF, "ask", "c2", "--json")
    assert code == 0, err
    shown = json.loads(out)
    [step] = shown["steps"]
    assert (step["name"], step["breaker"], step["sent_to"]) == ("research", "fallback", "research-lite")
    assert step["result"]["result"] == "lite"
    [breaker] = shown["breakers"]
    assert (breaker["capability"], breaker["status"]) == ("research", "open")

    _, out, _ = _run(capsys, "show", APP_REF, "ask", "c2")
    assert "research -> research-lite (breaker open)" in out
    assert "open" in out and "TransientError: research is down" in out
