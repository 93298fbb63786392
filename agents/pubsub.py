"""Event-driven pub/sub: several agents react to one event type, each in a consumer group of its own,
and a new agent joins the running system and catches up from where it is told to start.

    streams run agents.pubsub:app                 # index, notify and archive, each its own group
    streams publish news.articles --key-field article_id \\
        --value '{"article_id": "a1", "headline": "Markets rally", "body": "Stocks rose today."}'
    streams tail news.done --from-beginning       # one outcome per agent per article

and later, beside it, the new agent (group ``news.translate``)::

    streams run agents.pubsub:translator --start earliest                 # every article so far
    streams run agents.pubsub:translator --start latest                   # only new ones
    streams run agents.pubsub:translator --start 2026-12-07T10:00:00Z     # from that moment on

Every agent of ``news.articles`` gets every article, at its own pace: a slow or stopped one holds
no other back, and resumes from its group's committed position. ``--start`` only decides where a
group that has committed nothing yet begins; run the same command again and it resumes. The
``translator`` app declares only the new agent (under the same app name, so its group and topics
are the system's): the running workers are neither restarted nor changed. Each agent stands in for
a model call (a short sleep and a computed answer).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import ClassVar

from streams import App, Context, Record, Topic
from streams.events import TaskCompleted, TaskStatus

MODEL_LATENCY = 0.005


class Article(Record):
    """The event every agent here subscribes to."""

    __avro_schema__: ClassVar[dict[str, object]] = {
        "type": "record",
        "name": "Article",
        "namespace": "agents.pubsub",
        "fields": [
            {"name": "article_id", "type": "string"},
            {"name": "headline", "type": "string"},
            {"name": "body", "type": "string"},
        ],
    }

    article_id: str
    headline: str
    body: str


# What each agent makes of an article: the stand-ins for its model call.
WORK: dict[str, Callable[[Article], str]] = {
    "index": lambda a: " ".join(sorted({w.lower().strip(".,") for w in f"{a.headline} {a.body}".split()})),
    "notify": lambda a: f"push: {a.headline}" if "!" in a.headline else "no push",
    "archive": lambda a: f"archived {len(a.body)} characters",
    "translate": lambda a: a.headline.upper(),  # the new agent
}


def _subscriber(agent: str, done: Topic[TaskCompleted]) -> Callable[[Article, Context], Awaitable[None]]:
    async def handle(article: Article, ctx: Context) -> None:
        await asyncio.sleep(MODEL_LATENCY)  # a real model client is called here
        result = WORK[agent](article)
        outcome = TaskCompleted(
            task_id=article.article_id, agent=agent, status=TaskStatus.SUCCEEDED, result=result
        )
        await ctx.send(done, outcome)

    return handle


def build(name: str = "news", agents: tuple[str, ...] = ("index", "notify", "archive")) -> App:
    """App ``name`` with ``agents`` (names from :data:`WORK`) on ``<name>.articles``, reporting to
    ``<name>.done``."""
    app = App(name)
    articles = app.topic(f"{name}.articles", value=Article, partitions=3)
    done = app.topic(f"{name}.done", value=TaskCompleted, partitions=3)
    for agent in agents:
        app.agent(articles, name=agent, concurrency=4)(_subscriber(agent, done))
    return app


app = build()
translator = build(agents=("translate",))
