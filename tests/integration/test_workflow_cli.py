"""`streams workflow` on the real broker: the supervisor example's workflows started, listed, shown,
signalled and cancelled from the command line while its worker runs in this process.

The command runs in this process (`streams.cli.main`), so it can name the app built by the test; it
runs on a thread, because the agents it talks to run on this test's event loop.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from typing import Any

import pytest

from agents.supervisor import build
from streams import Settings, Workflow
from streams.admin import TopicAdmin
from streams.cli import main
from streams.events import TaskCompleted, TaskRequested, TaskStatus
from streams.serde.registry import ConfluentRegistry
from tests.integration._agents import running

APP_REF = f"{__name__}:app_under_test"

CASE = json.dumps({"task_id": "case-1", "capability": "triage", "payload": "payments are failing in EU"})


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The command reads its settings from the environment, as a user's shell gives them."""
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", settings.kafka_bootstrap_servers)
    monkeypatch.setenv("SCHEMA_REGISTRY_URL", settings.schema_registry_url)


async def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(main, ["workflow", *args])
    out, err = capsys.readouterr()
    return code, out, err


async def _runs_until(
    capsys: pytest.CaptureFixture[str], wanted: dict[str, str], within: float = 60.0
) -> dict[str, Any]:
    """`ls --json` once every id in ``wanted`` has the status it maps to (a journal commits a moment
    after the event that changed it)."""
    deadline = time.monotonic() + within
    while True:
        code, out, err = await _cli(capsys, "ls", APP_REF, "--json")
        assert code == 0, err
        document: dict[str, Any] = json.loads(out)
        statuses = {run["workflow_id"]: run["status"] for run in document["runs"]}
        if all(statuses.get(i) == status for i, status in wanted.items()):
            return document
        if time.monotonic() > deadline:
            raise AssertionError(f"runs {statuses}, not {wanted}, after {within:.0f}s")
        await asyncio.sleep(0.5)


async def test_start_ls_show_signal_and_cancel_from_the_command_line(
    settings: Settings,
    registry: ConfluentRegistry,
    cli_env: None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = build(f"wfcli-{uuid.uuid4().hex[:8]}")
    app.settings = settings

    @app.workflow(input=TaskRequested, output=TaskCompleted)
    async def approval(case: TaskRequested, wf: Workflow) -> TaskCompleted:
        decision = await wf.signal("approval", TaskCompleted)
        return TaskCompleted(
            task_id=case.task_id, agent="approval", status=TaskStatus.SUCCEEDED, result=decision.result
        )

    monkeypatch.setattr(sys.modules[__name__], "app_under_test", app, raising=False)
    TopicAdmin(settings, registry).apply(list(app.topics.values()))

    async with running(app):
        code, out, err = await _cli(capsys, "start", APP_REF, "triage", "--input", CASE, "--wait", "--json")
        assert code == 0, err
        started = json.loads(out)
        assert started["status"] == "completed"
        assert started["output"]["result"].startswith("report: payments: 8 findings; failing: 7 findings")
        triage_id = started["workflow_id"]

        for n in range(2):
            code, out, err = await _cli(
                capsys, "start", APP_REF, "approval", "--input", CASE, "--id", f"ap-{n}"
            )
            assert (code, out) == (0, f"ap-{n}\n"), err
        document = await _runs_until(capsys, {triage_id: "completed", "ap-0": "running", "ap-1": "running"})
        assert document["counts"]["completed"] == 1 and document["counts"]["running"] == 2

        code, out, err = await _cli(capsys, "show", APP_REF, "triage", triage_id, "--json")
        assert code == 0, err
        shown = json.loads(out)
        steps = [(s["kind"], s["name"], s["status"]) for s in shown["steps"]]
        assert steps == [
            ("call", "plan", "succeeded"),
            ("call", "research", "succeeded"),
            ("call", "research", "succeeded"),
            ("call", "synthesise", "succeeded"),
        ]
        assert shown["input"]["payload"] == "payments are failing in EU"
        assert shown["steps"][1]["result"]["result"] == "payments: 8 findings", "decoded as research's output"
        assert all(s["attempts"] == 1 and s["duration_s"] is not None for s in shown["steps"])
        assert shown["trace"] == f"streams trace {shown['correlation_id']} --app {APP_REF}"

        code, out, err = await _cli(
            capsys, "cancel", APP_REF, "approval", "ap-0", "--reason", "no longer needed"
        )
        assert (code, out) == (0, "workflow approval ap-0: cancelled: no longer needed\n"), err

        decision = json.dumps(
            {"task_id": "case-1", "agent": "boss", "status": "SUCCEEDED", "result": "approved"}
        )
        code, out, err = await _cli(
            capsys, "signal", APP_REF, "approval", "ap-1", "approval",
            "--value", decision, "--type", "streams.events:TaskCompleted",
        )  # fmt: skip
        assert (code, out) == (0, "sent signal approval to approval ap-1; it was waiting for it\n"), err

        document = await _runs_until(capsys, {"ap-0": "cancelled", "ap-1": "completed"})
        assert document["counts"] == {
            "running": 0,
            "completed": 2,
            "failed": 0,
            "cancelled": 1,
            "compensating": 0,
            "failed_compensation": 0,
        }
        code, out, err = await _cli(capsys, "show", APP_REF, "approval", "ap-1", "--json")
        assert code == 0, err
        assert json.loads(out)["output"]["result"] == "approved"

        code, out, err = await _cli(capsys, "cancel", APP_REF, "approval", "ap-1")
        assert code == 0 and "has ended already (completed): nothing to cancel" in out
        code, _, err = await _cli(capsys, "show", APP_REF, "approval", "ap-9")
        assert code == 1 and err.startswith("error: workflow approval has no run ap-9 (2 run(s);")
