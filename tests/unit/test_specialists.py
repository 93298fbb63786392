"""Specialists on the in-memory twin: typed answers, failures told to the caller, not dead-lettered."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from streams import App, CallFailed, ConfigError, Context, ExactlyOnce, Retry, Settings
from streams.events import TaskCompleted, TaskRequested, TaskStatus, WorkflowEventKind
from streams.serde.registry import InMemoryRegistry
from streams.testing import TestApp
from streams.transport import clients
from streams.worker.agent_worker import AgentWorker

pytestmark = pytest.mark.unit


def _request(task_id: str, payload: str = "question") -> TaskRequested:
    return TaskRequested(task_id=task_id, capability="research", payload=payload)


def _app(fail_times: int = 0, retry: Retry | None = None) -> tuple[App, list[str]]:
    app = App("spec")
    attempts: list[str] = []

    @app.specialist("research", input=TaskRequested, output=TaskCompleted, retry=retry or Retry(attempts=1))
    async def research(task: TaskRequested, ctx: Context) -> TaskCompleted:
        attempts.append(task.task_id)
        if len(attempts) <= fail_times:
            raise RuntimeError(f"model overloaded ({len(attempts)})")
        return TaskCompleted(
            task_id=task.task_id, agent="research", status=TaskStatus.SUCCEEDED, result=task.payload.upper()
        )

    return app, attempts


async def test_a_call_returns_the_specialists_typed_output() -> None:
    app, _ = _app()
    async with TestApp(app) as t:
        found = await t.call("research", _request("t1", "why"), correlation_id="case-7")
        assert found == TaskCompleted(
            task_id="t1", agent="research", status=TaskStatus.SUCCEEDED, result="WHY"
        )
        [reply] = t.messages(app.replies_topic())
        assert reply.value.kind is WorkflowEventKind.STEP_SUCCEEDED
        assert reply.key == "test", "answered under the key the request named"
        assert reply.headers["correlation-id"] == "case-7", "the answer belongs to the caller's piece of work"
        assert t.stats("research").processed == 1


async def test_retries_happen_before_the_caller_hears_anything() -> None:
    app, attempts = _app(fail_times=2, retry=Retry(attempts=3, backoff=0.1))
    async with TestApp(app) as t:
        found = await t.call("research", _request("t1"))
        assert found.result == "QUESTION"
        assert len(attempts) == 3
        assert len(t.sent(app.replies_topic())) == 1


async def test_a_failure_left_after_retries_is_told_to_the_caller_not_dead_lettered() -> None:
    app, attempts = _app(fail_times=99, retry=Retry(attempts=2, backoff=0.1))
    async with TestApp(app) as t:
        with pytest.raises(
            CallFailed, match=r"research failed after 2 attempt\(s\): RuntimeError: model"
        ) as failed:
            await t.call("research", _request("t1"))
        assert failed.value.error_class == "builtins.RuntimeError"
        assert len(attempts) == 2
        assert t.dead_letters("research") == []
        assert t.committed("research"), "the request is finished: it was answered"


async def test_a_wrong_output_type_fails_the_call() -> None:
    app = App("spec")

    @app.specialist("echo", input=TaskRequested, output=TaskCompleted)
    async def echo(task: TaskRequested, ctx: Context) -> TaskCompleted:
        return task  # type: ignore[return-value]

    async with TestApp(app) as t:
        with pytest.raises(CallFailed, match="specialist echo returned TaskRequested, not TaskCompleted"):
            await t.call("echo", _request("t1"))


async def test_a_failed_request_nobody_waits_for_is_dead_lettered() -> None:
    app, _ = _app(fail_times=99)
    async with TestApp(app) as t:
        await t.publish(app.specialists["research"].requests, _request("t1"), key="t1")
        [letter] = t.dead_letters("research")
        assert "model overloaded" in letter.reason
        assert t.sent(app.replies_topic()) == []


def test_declarations_say_what_is_wrong() -> None:
    app, _ = _app()
    with pytest.raises(ConfigError, match="already has a specialist for research"):
        app.specialist("research", input=TaskRequested, output=TaskCompleted)
    with pytest.raises(ConfigError, match="illegal capability"):
        app.specialist("re search", input=TaskRequested, output=TaskCompleted)


async def test_calling_an_unknown_capability_names_the_known_ones() -> None:
    app, _ = _app()
    async with TestApp(app) as t:
        with pytest.raises(ConfigError, match="no specialist for writing; capabilities: research"):
            await t.call("writing", _request("t1"))


class _Stop(Exception):
    """Raised where the worker would reach for the broker: the test needs only its producer."""


async def _producer_config_of(
    app: App, agent: str, configs: list[dict[str, object]], monkeypatch: pytest.MonkeyPatch
) -> dict[str, object]:
    def no_consumer(*args: object, **kwargs: object) -> None:
        raise _Stop

    monkeypatch.setattr(clients, "agent_consumer", no_consumer)
    before = len(configs)
    with pytest.raises(_Stop):
        await AgentWorker(app.agents[agent], Settings(), InMemoryRegistry()).run(asyncio.Event())
    [config] = configs[before:]
    return config


async def test_a_specialists_answers_leave_without_waiting_to_fill_a_batch(
    producer_configs: list[dict[str, object]], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, _ = _app()
    topic = app.topic("spec.log", value=TaskRequested)

    @app.agent(topic)
    async def logger(task: TaskRequested, ctx: Context) -> None:
        return None

    # Somebody awaits every answer: at-least-once answers that lingered 5 ms made a one-at-a-time
    # three-step workflow take 44 ms instead of 27 (bench.run's workflows scenario).
    assert (await _producer_config_of(app, "research", producer_configs, monkeypatch))["linger.ms"] == 0
    logger_config = await _producer_config_of(app, "logger", producer_configs, monkeypatch)
    assert logger_config["linger.ms"] == 5, "others batch"


async def test_an_exactly_once_specialist_answers_at_once_in_its_transactions(
    producer_configs: list[dict[str, object]], monkeypatch: pytest.MonkeyPatch
) -> None:
    app = App("spec")

    @app.specialist("research", input=TaskRequested, output=TaskCompleted, guarantee=ExactlyOnce())
    async def research(task: TaskRequested, ctx: Context) -> TaskCompleted:
        return TaskCompleted(task_id=task.task_id, agent="research", status=TaskStatus.SUCCEEDED)

    config = await _producer_config_of(app, "research", producer_configs, monkeypatch)
    assert config["linger.ms"] == 0
    assert "transactional.id" in config


@pytest.mark.parametrize("linger", [-1, True, 1.5, "5"])
def test_an_agents_linger_must_be_a_whole_number_of_milliseconds(linger: object) -> None:
    app, _ = _app()
    with pytest.raises(ConfigError, match="linger_ms must be an integer >= 0"):
        dataclasses.replace(app.agents["research"], linger_ms=linger)
