"""The pattern gallery's modules on the real broker (agents/resilient_calls.py and its neighbours):
each runs as its docstring says, under an app name of its own, in worker tasks of this process."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agents import (
    autoscaling,
    caching_batching,
    event_sourcing,
    market,
    peer_review,
    resilient_calls,
    shared_state,
)
from streams import App, Client, Publisher, Settings
from streams.events import (
    AccountBalance,
    AccountEvent,
    AccountEventKind,
    CaseUpdate,
    TaskRequested,
    TaskStatus,
)
from streams.serde.registry import ConfluentRegistry
from streams.state_query import read_table
from streams.telemetry.config import TelemetryConfig
from tests.integration._agents import eventually, on_cluster, running, serving, unique
from tests.integration._http import http_get

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def _case(task_id: str, payload: str) -> TaskRequested:
    return TaskRequested(task_id=task_id, capability="answer", payload=payload)


async def test_resilient_calls_degrade_and_fall_back(settings: Settings, registry: ConfluentRegistry) -> None:
    app = on_cluster(resilient_calls.build(unique("resilient")), settings, registry)
    async with serving(app), Client(app, registry=registry) as client:

        async def ask(task_id: str, payload: str) -> tuple[TaskStatus, str]:
            run = await client.start("answer", _case(task_id, payload), workflow_id=task_id)
            done = await client.result("answer", run, timeout=60)
            return done.status, done.result or ""

        assert await ask("ok", "refund status") == (
            TaskStatus.SUCCEEDED,
            "answer to 'refund status' [2 sources]",
        )
        assert await ask("slow", "slow refund") == (
            TaskStatus.SUCCEEDED,
            "answer to 'slow refund' [no citations]",
        )
        status, text = await ask("empty", " ")
        assert status is TaskStatus.FAILED and "empty question" in text
        status, text = await ask("down-1", "down: eu")
        assert status is TaskStatus.FAILED and "model unavailable" in text
        # The third failure opens the breaker: the second case's retry, and every call for 30 s, is
        # answered by the fallback agent.
        assert await ask("down-2", "down: us") == (
            TaskStatus.SUCCEEDED,
            "short answer to 'down: us' [2 sources]",
        )
        assert await ask("after", "refund status") == (
            TaskStatus.SUCCEEDED,
            "short answer to 'refund status' [2 sources]",
        )


async def test_event_sourcing_resumes_from_its_checkpoint_and_a_new_projection_replays_the_log(
    settings: Settings, registry: ConfluentRegistry, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    name = unique("ledger")
    live = on_cluster(event_sourcing.build(name), settings, registry)
    live.settings = settings.model_copy(update={"streams_state_dir": tmp_path})
    events, balances = live.topics[f"{name}.events"], live.tables["balances"]
    kinds = [AccountEventKind.DEPOSITED, AccountEventKind.WITHDRAWN]
    history = [
        AccountEvent(account=f"a{i % 4}", kind=kinds[i % 2], amount=i, at=datetime.now(UTC))
        for i in range(60)
    ]

    def publish(batch: list[AccountEvent]) -> None:
        with Publisher(settings, registry) as publisher:
            for event in batch:
                publisher.publish(events, event, key=event.account)

    async def project(app: App, agent: str, expected: int) -> dict[str, AccountBalance]:
        async with running(app) as runner:
            stats = runner.workers[0].stats
            await eventually(lambda: stats.processed >= expected, within=30, what=f"{expected} events")
        assert stats.processed == expected, "no event handled twice"
        table = read_table(settings, registry, app.agents[agent], balances, timeout=30)
        return {str(row.key): row.value for row in table.rows()}

    publish(history[:40])
    assert await project(live, "balances", 40) == event_sourcing.replay(history[:40])
    publish(history[40:])
    with caplog.at_level(logging.INFO, logger="streams.worker"):
        # Restarted: only the 20 new events are handled, on top of the state its checkpoints kept.
        assert await project(live, "balances", 20) == event_sourcing.replay(history)
    assert "(local checkpoint)" in caplog.text and "(full restore)" not in caplog.text

    rebuilt = on_cluster(event_sourcing.build(name, projection="balances-rebuilt"), settings, registry)
    rebuilt.settings = live.settings
    assert await project(rebuilt, "balances-rebuilt", 60) == event_sourcing.replay(history)


async def test_shared_state_applies_every_update_once_and_resolves_conflicts(
    settings: Settings, registry: ConfluentRegistry
) -> None:
    app = on_cluster(shared_state.build(unique("cases")), settings, registry)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    updates = [  # 4 writers on 5 cases; each writer's clock runs ahead of the previous update's
        CaseUpdate(
            case_id=f"c{i % 5}",
            writer=f"w{i % 4}",
            status=f"s{i}",
            notes=[f"n{i}"],
            written_at=start + timedelta(seconds=i),
        )
        for i in range(200)
    ]
    stale = CaseUpdate(case_id="c0", writer="late", status="stale", notes=["late"], written_at=start)
    with Publisher(settings, registry) as publisher:
        for update in [*updates, stale]:
            publisher.publish(app.topics[f"{app.name}.updates"], update, key=update.case_id)
    async with running(app) as runner:
        stats = runner.workers[0].stats
        await eventually(lambda: stats.processed >= 201, within=30, what="201 updates")
    assert stats.processed == 201
    table = read_table(settings, registry, app.agents["case-file"], app.tables["files"], timeout=30)
    files = {str(row.key): row.value for row in table.rows()}
    assert {case: file.updates for case, file in files.items()} == {
        "c0": 41,
        **{f"c{k}": 40 for k in range(1, 5)},
    }
    assert [files[f"c{k}"].status for k in range(5)] == ["s195", "s196", "s197", "s198", "s199"]
    assert files["c0"].notes == sorted(["late", *(f"n{i}" for i in range(0, 200, 5))])


async def test_caching_batching_serves_lookups_from_the_cache_and_batches_model_calls(
    settings: Settings, registry: ConfluentRegistry
) -> None:
    batcher = caching_batching.Batcher(caching_batching.embed_model)
    app = on_cluster(caching_batching.build(unique("profiles"), batcher), settings, registry)
    async with serving(app) as runner, Client(app, registry=registry) as client:

        async def profile(i: int) -> str:
            case = TaskRequested(task_id=f"c{i}", capability="profile", payload=f"acme: refund {i} is late")
            done = await client.result("profile", await client.start("profile", case), timeout=60)
            return done.result or ""

        assert await profile(0) == "acme (founded 1904): refund:62 0:48 is:26 late:34"
        results = await asyncio.gather(*(profile(i) for i in range(1, 10)))
        assert all(r.startswith(f"acme (founded 1904): refund:62 {i}:") for i, r in enumerate(results, 1))
        stats = {worker.agent.name: worker.stats for worker in runner.workers}
        assert stats["lookup"].processed == 1, "every later run's lookup came from the cache"
        assert stats["embed"].processed == sum(batcher.batches) == 40
        assert len(batcher.batches) < 20, f"requests grouped into model calls: {batcher.batches}"


async def test_market_awards_each_task_to_the_lowest_bid_within_the_deadline(
    settings: Settings, registry: ConfluentRegistry
) -> None:
    app = on_cluster(market.build(unique("market")), settings, registry)
    async with serving(app) as runner, Client(app, registry=registry) as client:

        async def auction(task_id: str, words: int) -> str:
            task = TaskRequested(task_id=task_id, capability="auction", payload=" ".join(["word"] * words))
            done = await client.result("auction", await client.start("auction", task), timeout=60)
            return done.result or ""

        short, long = await asyncio.gather(auction("short", 2), auction("long", 8))
        stats = {worker.agent.name: worker.stats for worker in runner.workers}
        # edge, the cheapest, quotes after 5 s: past the 2-s window, so it neither wins nor works.
        assert short == "gpu at 6 of 2 bids: WORD WORD (by gpu)"
        assert long.startswith("cpu at 18 of 2 bids: WORD WORD")
        assert (stats["do-gpu"].processed, stats["do-cpu"].processed, stats["do-edge"].processed) == (1, 1, 0)


async def test_peer_review_keeps_the_best_scored_draft_of_those_in_time(
    settings: Settings, registry: ConfluentRegistry
) -> None:
    app = on_cluster(peer_review.build(unique("swarm")), settings, registry)
    question = "why was the refund late"
    async with serving(app) as runner, Client(app, registry=registry) as client:

        async def review(task_id: str) -> str:
            case = TaskRequested(task_id=task_id, capability="review", payload=question)
            done = await client.result("review", await client.start("review", case), timeout=60)
            return done.result or ""

        results = await asyncio.gather(review("q1"), review("q2"))
        stats = {worker.agent.name: worker.stats for worker in runner.workers}
    # slow drafts after 5 s, past the 2-s window: its draft is not scored, and it scores nothing.
    assert results == [f"thorough (9.0 from 2 peers): {peer_review.draft('thorough', question)}"] * 2
    assert [stats[f"score-{agent}"].processed for agent in ("terse", "thorough", "wild", "slow")] == [
        4,
        4,
        4,
        0,
    ]


async def test_a_backlog_raises_the_recommended_worker_count_on_metrics_and_in_streams_lag(
    settings: Settings, registry: ConfluentRegistry, cli: Callable[..., Any], tmp_path: Path
) -> None:
    name = unique("autoscaling")
    app = on_cluster(autoscaling.build(name), settings, registry)
    module = f"scaled_{name[-8:]}"
    (tmp_path / f"{module}.py").write_text(f"from agents.autoscaling import build\n\napp = build({name!r})\n")
    await asyncio.to_thread(autoscaling.publish, app, 1500)  # ~35 s of work for one worker
    config = TelemetryConfig(metrics_port=0, heartbeat_interval=0, lag_interval=0.2, scale_drain_within=10)
    async with running(app, telemetry=config) as runner:
        await eventually(lambda: runner.telemetry.server is not None, what="the endpoint to open")
        server = runner.telemetry.server
        assert server is not None
        gauge: list[float] = []
        deadline = asyncio.get_running_loop().time() + 20
        while not gauge and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.5)
            status, text = await asyncio.to_thread(http_get, f"{server.url}/metrics")
            assert status == 200
            gauge = [
                float(line.split()[-1])
                for line in text.splitlines()
                if line.startswith("streams_recommended_workers{")
            ]
        shown = await asyncio.to_thread(
            cli,
            "lag",
            f"{module}:app",
            "--recommend",
            "--over",
            "1",
            "--drain-within",
            "10",
            cwd=tmp_path,
            extra_env={"PYTHONPATH": str(ROOT)},  # the module imports agents.autoscaling from the repository
        )
    # One worker does at most 50 msg/s; over 1,300 documents wait, to be cleared in 10 s: that alone
    # needs 3 workers, and no more than the topic's 6 partitions can be used.
    assert len(gauge) == 1 and 3 <= gauge[0] <= 6, gauge
    assert shown.returncode == 0, shown.stderr
    [total] = [line.split("│")[1:-1] for line in shown.stdout.splitlines() if "total" in line]
    members, recommended = (int(cell.strip()) for cell in total[-2:])
    assert members == 1 and 3 <= recommended <= 6, shown.stdout
