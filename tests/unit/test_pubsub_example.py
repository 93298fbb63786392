"""agents/pubsub.py on the in-memory twin, and `streams run --start` for the agent attached later."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from agents import pubsub
from agents.pubsub import Article, build
from streams import App, ConfigError
from streams.agent import parse_start
from streams.cli import main
from streams.testing import TestApp

pytestmark = pytest.mark.unit

ARTICLES = [
    Article(article_id="a1", headline="Markets rally!", body="Stocks rose today."),
    Article(article_id="a2", headline="Rain", body="It rained."),
]


async def test_every_agent_gets_every_article_in_a_group_of_its_own() -> None:
    app = build()
    async with TestApp(app) as t:
        for article in ARTICLES:
            await t.publish(app.topics["news.articles"], article, key=article.article_id)
        done = {(o.agent, o.task_id): o.result for o in t.sent(app.topics["news.done"])}
        committed = {agent: sum(t.committed(agent).values()) for agent in ("index", "notify", "archive")}
    assert len(done) == 6
    assert done[("notify", "a1")] == "push: Markets rally!" and done[("notify", "a2")] == "no push"
    assert done[("index", "a2")] == "it rain rained"
    assert committed == {"index": 2, "notify": 2, "archive": 2}, "each group has read both"
    assert {a.group_id for a in app.agents.values()} == {"news.index", "news.notify", "news.archive"}


async def test_the_new_agent_shares_the_systems_topics_under_a_group_of_its_own() -> None:
    translator = build(agents=("translate",))
    assert translator.topics.keys() == build().topics.keys()
    async with TestApp(translator) as t:
        await t.publish(translator.topics["news.articles"], ARTICLES[1], key="a2")
        [done] = t.sent(translator.topics["news.done"])
    assert (done.agent, done.result) == ("translate", "RAIN")
    assert translator.agents["translate"].group_id == "news.translate"


def test_start_is_earliest_latest_or_a_time_in_utc_unless_it_says() -> None:
    assert parse_start("earliest") == "earliest" and parse_start("latest") == "latest"
    assert parse_start("2026-12-07T10:00:00Z") == datetime(2026, 12, 7, 10, tzinfo=UTC)
    assert parse_start("2026-12-07T10:00:00") == datetime(2026, 12, 7, 10, tzinfo=UTC)
    with pytest.raises(ConfigError, match="start must be 'earliest', 'latest' or an ISO 8601 time"):
        parse_start("yesterday")


def test_run_start_sets_where_the_chosen_agents_start(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[App] = []

    async def fake_run(application: App, names: Any, **options: Any) -> list[Any]:
        ran.append(application)
        return []

    monkeypatch.setattr("streams.cli.agents.run_agents", fake_run)
    monkeypatch.setattr(pubsub.app, "agents", dict(pubsub.app.agents))  # the command replaces entries
    code = main(["run", "agents.pubsub:app", "--agent", "notify", "--start", "2026-12-07T10:00:00+01:00"])
    assert code == 0
    [application] = ran
    assert application.agents["notify"].start == datetime(2026, 12, 7, 9, tzinfo=UTC)
    assert application.agents["index"].start == "earliest", "agents not chosen keep their own"


def test_run_start_reaches_every_worker_process(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[list[str]] = []

    def fake_supervise(argv: list[str], workers: int, per_worker: Any = None) -> int:
        started.append(argv)
        return 0

    monkeypatch.setattr("streams.cli.agents.supervise", fake_supervise)
    monkeypatch.setattr(pubsub.translator, "agents", dict(pubsub.translator.agents))
    assert main(["run", "agents.pubsub:translator", "--workers", "2", "--start", "latest"]) == 0
    [argv] = started
    assert "--start=latest" in argv


def test_run_refuses_a_start_it_cannot_read(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "agents.pubsub:translator", "--start", "soon"]) == 1
    assert "error: start must be 'earliest', 'latest' or an ISO 8601 time" in capsys.readouterr().err
