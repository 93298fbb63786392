"""`streams workflow` without a broker: journals come from the in-memory twin's changelogs, the
registry is the twin's, and the client is a fake that records what it is asked to send.

What is checked here: how runs are listed, counted and filtered, what `show` decodes and prints for
each step, how values given as JSON become records, and that every mistake is one `error:` line.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest

from streams import App, Context, Settings, Workflow, WorkflowCancelled
from streams.cli import main
from streams.cli._workflows import read_value, record_from_json, record_type, took
from streams.errors import ConfigError, SerializationError
from streams.events import TaskCompleted, TaskRequested, TaskStatus
from streams.serde.registry import InMemoryRegistry
from streams.testing import TestApp
from streams.transport.changelog import ChangelogRecord

pytestmark = pytest.mark.unit

APP_REF = f"{__name__}:desk_app"


def _task(task_id: str, payload: str = "") -> TaskRequested:
    return TaskRequested(task_id=task_id, capability="case", payload=payload)


def _done(task_id: str, agent: str, result: str) -> TaskCompleted:
    return TaskCompleted(task_id=task_id, agent=agent, status=TaskStatus.SUCCEEDED, result=result)


def _app() -> App:
    app = App("desk")

    @app.specialist("plan", input=TaskRequested, output=TaskCompleted)
    async def plan(task: TaskRequested, ctx: Context) -> TaskCompleted:
        if task.payload == "boom":
            raise RuntimeError("no plan")
        return _done(task.task_id, "plan", f"plan for {task.payload}")

    @app.workflow(input=TaskRequested, output=TaskCompleted)
    async def triage(case: TaskRequested, wf: Workflow) -> TaskCompleted:
        planned = await wf.call("plan", case)
        wf.uuid()
        return _done(case.task_id, "triage", planned.result or "")

    @app.workflow(input=TaskRequested, output=TaskCompleted)
    async def approval(case: TaskRequested, wf: Workflow) -> TaskCompleted:
        decision = await wf.signal("approval", TaskCompleted)
        return _done(case.task_id, "approval", decision.result or "")

    @app.workflow(input=TaskRequested, output=TaskCompleted)
    async def archive(case: TaskRequested, wf: Workflow) -> TaskCompleted:
        return _done(case.task_id, "archive", "")

    return app


class TwinChangelog:
    """The changelogs as the twin's broker holds them, read the way `read_changelog` reads Kafka."""

    def __init__(self, twin: TestApp) -> None:
        self._broker = twin.broker

    def partitions_of(self, settings: Settings, topic: str, *, timeout: float) -> list[int]:
        return list(range(self._broker.partitions(topic)))  # TopicError for a topic never created

    def read(
        self, settings: Settings, topic: str, partitions: Iterable[int], *, timeout: float
    ) -> Iterator[ChangelogRecord]:
        wanted = set(partitions)
        for m in self._broker.messages(topic):
            if m.partition in wanted:
                yield ChangelogRecord(m.partition, m.offset, m.key, m.value)


class FakeClient:
    """Stands in for :class:`streams.Client`: records what is sent, answers ``result`` from ``ends``."""

    sent: ClassVar[list[tuple[Any, ...]]] = []
    ends: ClassVar[dict[str, Any]] = {}

    def __init__(self, app: App, settings: Settings, registry: Any) -> None:
        self.app = app

    async def __aenter__(self) -> FakeClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    async def start(self, workflow: str, value: Any, *, workflow_id: str | None = None) -> str:
        self.sent.append(("start", workflow, value, workflow_id))
        return workflow_id or "new-id"

    async def signal(self, workflow: str, workflow_id: str, name: str, value: Any) -> None:
        self.sent.append(("signal", workflow, workflow_id, name, value))

    async def cancel(self, workflow: str, workflow_id: str, reason: str | None = None) -> None:
        self.sent.append(("cancel", workflow, workflow_id, reason))

    async def result(self, workflow: str, workflow_id: str, *, timeout: float) -> Any:  # noqa: ASYNC109
        end = self.ends[workflow_id]
        if isinstance(end, BaseException):
            raise end
        return end


async def _scenario(twin: TestApp) -> None:
    await twin.start("triage", _task("t1", "payments"), workflow_id="tri-1")
    await twin.start("triage", _task("t2", "boom"), workflow_id="tri-2")
    await twin.start("approval", _task("a1"), workflow_id="app-1")
    await twin.start("approval", _task("a2"), workflow_id="app-2")
    await twin.advance(90)
    await twin.cancel("approval", "app-2", "withdrawn")


@pytest.fixture
def twin(monkeypatch: pytest.MonkeyPatch) -> TestApp:
    app = _app()
    test_app = TestApp(app, agents=["plan", "triage", "approval"])  # archive never runs

    async def run() -> None:
        async with test_app:
            await _scenario(test_app)

    asyncio.run(run())
    changelog = TwinChangelog(test_app)
    monkeypatch.setattr("streams.state_query.read_changelog", changelog.read)
    monkeypatch.setattr("streams.state_query.changelog_partitions", changelog.partitions_of)
    monkeypatch.setattr("streams.cli.workflow.registry", lambda config: test_app.registry)
    monkeypatch.setattr("streams.cli.workflow.Client", FakeClient)
    monkeypatch.setattr(sys.modules[__name__], "desk_app", app, raising=False)
    FakeClient.sent = []
    FakeClient.ends = {}
    return test_app


def _cells(out: str) -> dict[str, list[str]]:
    """The body rows of the table in ``out``, by their first cell."""
    rows = [
        [cell.strip() for cell in line.split("│")[1:-1]] for line in out.splitlines() if line.startswith("│")
    ]
    return {row[0]: row for row in rows}


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["workflow", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_ls_lists_every_run_with_its_status_and_steps_and_counts_them(
    twin: TestApp, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(capsys, "ls", APP_REF)
    assert code == 0, err
    rows = _cells(out)
    assert list(rows) == ["app-1", "app-2", "tri-1", "tri-2"], "by start time, then workflow and id"
    assert rows["tri-1"][:4] == ["tri-1", "triage", "completed", "2/2"], "the call and the uuid"
    assert rows["tri-2"][2:4] == ["failed", "1/1"] and "no plan" in rows["tri-2"][6]
    assert rows["app-1"][2:4] == ["running", "0/1"]
    assert rows["app-2"][2:4] == ["cancelled", "0/1"] and rows["app-2"][6] == "withdrawn"
    assert rows["tri-1"][4] == "2023-11-14 22:13:20.000", "the twin's clock, in UTC"
    assert rows["app-2"][5] == "2023-11-14 22:14:50.000", "cancelled 90 s later"
    assert "4 run(s) of triage, approval, archive: 1 running, 1 completed, 1 failed, 1 cancelled" in out
    assert "workflow archive has no journal yet" in err


def test_ls_filters_by_workflow_and_status_and_prints_json(
    twin: TestApp, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "ls", APP_REF, "approval", "--status", "cancelled", "--json")
    assert code == 0
    document = json.loads(out)
    assert document["workflows"] == ["approval"]
    assert document["counts"] == {
        "running": 1,
        "completed": 0,
        "failed": 0,
        "cancelled": 1,
        "compensating": 0,
        "failed_compensation": 0,
    }
    [run] = document["runs"]
    assert run["workflow_id"] == "app-2"
    assert (run["status"], run["steps_done"], run["steps"], run["error"]) == ("cancelled", 0, 1, "withdrawn")
    assert run["started"] == datetime.fromtimestamp(1_700_000_000, UTC).isoformat()

    code, _, err = _run(capsys, "ls", APP_REF, "--status", "done")
    assert code == 1 and err.startswith("error: --status 'done': choose one of running, completed")


def test_show_decodes_the_input_output_and_each_step_and_hints_at_the_trace(
    twin: TestApp, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(capsys, "show", APP_REF, "triage", "tri-1", "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["status"] == "completed"
    assert shown["input"]["payload"] == "payments"
    assert shown["output"]["result"] == "plan for payments"
    call, uuid = shown["steps"]
    assert (call["position"], call["kind"], call["name"], call["status"]) == (0, "call", "plan", "succeeded")
    assert call["attempts"] == 1 and call["result"]["agent"] == "plan", "decoded as plan's output type"
    # On the twin the specialist stamps its answer with the same fake clock as the engine.
    assert call["finished"] is not None and call["duration_s"] == 0 and call["request_id"]
    assert (uuid["kind"], uuid["status"], len(uuid["value"])) == ("uuid", "succeeded", 32)
    journal = twin.journal("triage", "tri-1")
    assert journal is not None
    assert shown["trace"] == f"streams trace {journal.correlation_id} --app {APP_REF}"

    code, out, _ = _run(capsys, "show", APP_REF, "triage", "tri-1")
    assert code == 0
    assert "workflow triage  id tri-1  status completed" in out
    assert '"result": "plan for payments"' in out
    assert f"streams trace {journal.correlation_id} --app {APP_REF}" in out


def test_show_marks_what_a_cancelled_run_waited_for_as_abandoned_and_a_failure_with_its_error(
    twin: TestApp, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = _run(capsys, "show", APP_REF, "approval", "app-2")
    assert "status cancelled" in out and "error: withdrawn" in out
    assert _cells(out)["0"][1:4] == ["signal", "approval", "pending (abandoned)"]

    _, out, _ = _run(capsys, "show", APP_REF, "approval", "app-1")
    assert _cells(out)["0"][1:4] == ["signal", "approval", "pending"]

    _, out, _ = _run(capsys, "show", APP_REF, "triage", "tri-2", "--json")
    [call] = json.loads(out)["steps"]
    assert call["status"] == "failed" and "no plan" in call["error"] and call["result"] is None


def test_unknown_workflows_and_ids_are_one_error_line_naming_the_choices(
    twin: TestApp, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(capsys, "show", APP_REF, "triage", "nope")
    assert (code, out) == (1, "")
    listing = f"`streams workflow ls {APP_REF} triage` lists them"
    assert err == f"error: workflow triage has no run nope (2 run(s); {listing})\n"
    _, _, err = _run(capsys, "show", APP_REF, "triag", "tri-1")
    assert err == "error: app desk has no workflow triag; workflows: triage, approval, archive\n"
    _, _, err = _run(capsys, "cancel", APP_REF, "archive", "x")
    assert err == "error: workflow archive has no run x: no worker has run it yet\n"


def test_start_checks_the_input_before_sending_and_prints_the_id_then_the_output(
    twin: TestApp, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = _run(capsys, "start", APP_REF, "triage", "--input", '{"task_id": "x"}')
    assert code == 1 and err.startswith("error: --input is not a valid TaskRequested: ")
    assert "missing required field capability, payload" in err
    code, _, err = _run(capsys, "start", APP_REF, "triage", "--input", "{nope")
    assert code == 1 and err.startswith("error: --input is not valid JSON")
    assert FakeClient.sent == [], "nothing is sent for bad input"

    given = tmp_path / "case.json"
    given.write_text('{"task_id": "c9", "capability": "case", "payload": "p", "deadline": 1700000000000}')
    FakeClient.ends["c9-run"] = _done("c9", "triage", "fine")
    code, out, err = _run(
        capsys, "start", APP_REF, "triage", "--input", f"@{given}", "--id", "c9-run", "--wait"
    )
    assert code == 0, err
    [(_, workflow, value, workflow_id)] = FakeClient.sent
    assert (workflow, workflow_id) == ("triage", "c9-run")
    assert value == TaskRequested(
        task_id="c9", capability="case", payload="p", deadline=datetime.fromtimestamp(1_700_000_000, UTC)
    ), "typed as the workflow's input, timestamps included"
    first, second = out.splitlines()
    assert first == "c9-run" and json.loads(second)["result"] == "fine"


def test_start_with_wait_reports_a_failed_or_cancelled_end(
    twin: TestApp, capsys: pytest.CaptureFixture[str]
) -> None:
    case = '{"task_id": "c", "capability": "case", "payload": "p"}'
    FakeClient.ends["w1"] = WorkflowCancelled("workflow triage (w1) cancelled: stop", reason="stop")
    code, out, err = _run(
        capsys, "start", APP_REF, "triage", "--input", case, "--id", "w1", "--wait", "--json"
    )
    assert code == 1
    assert json.loads(out) == {
        "workflow": "triage",
        "workflow_id": "w1",
        "status": "cancelled",
        "error": "workflow triage (w1) cancelled: stop",
    }
    assert err == "error: workflow triage (w1) cancelled: stop\n"


def test_signal_needs_a_record_type_and_a_running_workflow(
    twin: TestApp, capsys: pytest.CaptureFixture[str]
) -> None:
    value = '{"task_id": "a1", "agent": "boss", "status": "SUCCEEDED", "result": "ok"}'
    code, out, err = _run(
        capsys, "signal", APP_REF, "approval", "app-1", "approval", "--value", value,
        "--type", "streams.events:TaskCompleted",
    )  # fmt: skip
    assert code == 0, err
    assert out == "sent signal approval to approval app-1; it was waiting for it\n"
    [(_, _, workflow_id, name, record)] = FakeClient.sent
    assert (workflow_id, name, record) == ("app-1", "approval", _done("a1", "boss", "ok"))

    code, _, err = _run(
        capsys, "signal", APP_REF, "approval", "app-2", "approval", "--value", value,
        "--type", "streams.events:TaskCompleted",
    )  # fmt: skip
    assert code == 1
    assert err == "error: workflow approval (app-2) has ended (cancelled): a signal would change nothing\n"
    _, _, err = _run(capsys, "signal", APP_REF, "approval", "app-1", "approval", "--value", value)
    assert "Missing option '--type'" in err
    assert len(FakeClient.sent) == 1


def test_cancel_sends_the_reason_and_says_how_the_run_ended(
    twin: TestApp, capsys: pytest.CaptureFixture[str]
) -> None:
    FakeClient.ends["app-1"] = WorkflowCancelled("cancelled: late", reason="late")
    code, out, err = _run(capsys, "cancel", APP_REF, "approval", "app-1", "--reason", "late")
    assert code == 0, err
    assert out == "workflow approval app-1: cancelled: late\n"
    assert FakeClient.sent == [("cancel", "approval", "app-1", "late")]

    FakeClient.ends["app-1"] = _done("a1", "approval", "ok")
    _, out, _ = _run(capsys, "cancel", APP_REF, "approval", "app-1")
    assert out == "workflow approval app-1: it completed before the cancel arrived\n"

    FakeClient.sent.clear()
    code, out, _ = _run(capsys, "cancel", APP_REF, "triage", "tri-1")
    assert code == 0 and "has ended already (completed): nothing to cancel" in out
    assert FakeClient.sent == [], "an ended run is left as it ended"


def test_values_from_the_command_line(tmp_path: Path) -> None:
    registry = InMemoryRegistry()
    assert read_value('{"a": 1}', "--value") == {"a": 1}
    with pytest.raises(ConfigError, match=r"cannot read .*missing.json"):
        read_value(f"@{tmp_path / 'missing.json'}", "--value")
    with pytest.raises(SerializationError, match="TaskRequested has no field colour"):
        record_from_json(
            TaskRequested,
            {"task_id": "t", "capability": "c", "payload": "", "colour": 1},
            registry,
            "--input",
        )
    with pytest.raises(SerializationError, match="expected a JSON object"):
        record_from_json(TaskRequested, [1], registry, "--input")
    assert record_type("streams.events:TaskCompleted") is TaskCompleted
    with pytest.raises(ConfigError, match="expected MODULE:RecordClass"):
        record_type("TaskCompleted")
    with pytest.raises(ConfigError, match="is not a record class"):
        record_type("streams.events:UTC")
    with pytest.raises(ConfigError, match="cannot import 'nowhere'"):
        record_type("nowhere:X")


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(None, "-"), (0.0, "0s"), (1.234, "1.23s"), (42.4, "42s"), (125, "2m05s"), (7300, "2h01m")],
)
def test_durations_read_well(seconds: float | None, shown: str) -> None:
    assert took(seconds) == shown
