"""A pipeline with a parallel stage: split a batch into items, enrich the items in parallel, gather
them back into the batch, then carry on with the whole.

    streams run agents.batch_pipeline:app      # split, enrich, gather and report
    streams publish batches.in --key-field batch_id \\
        --value '{"batch_id": "b1", "items": ["red apple", "green pear", "blue plum"]}'
    streams tail batches.reports --from-beginning

``split`` checks the batch (an empty one is dead-lettered with the reason) and sends each item to
``batches.items`` under a key of its own, so items spread over partitions and workers; ``enrich``,
the parallel stage, handles up to 16 at once per worker in any order (``ordering="unordered"``:
run more workers for more) and sends each result back keyed by its batch, so one batch's results
meet in one partition. ``gather`` keeps each batch's results so far in its table ``gathering``
(exactly-once: the table, its outputs and its offsets commit together) and, once every item is in,
sends the batch, in the items' order, to ``report``, the stage that continues with the whole.
Results are kept by item index, so an item enriched twice (``enrich`` is at-least-once) counts once.
``enrich`` stands in for a model call (a short sleep and a computed answer).
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

from streams import App, Context, DataError, ExactlyOnce, Record
from streams.events import TaskCompleted, TaskStatus

MODEL_LATENCY = 0.01


class Batch(Record):
    __avro_schema__: ClassVar[dict[str, object]] = {
        "type": "record",
        "name": "Batch",
        "namespace": "agents.batch_pipeline",
        "fields": [
            {"name": "batch_id", "type": "string"},
            {"name": "items", "type": {"type": "array", "items": "string"}},
        ],
    }

    batch_id: str
    items: list[str]


class Item(Record):
    __avro_schema__: ClassVar[dict[str, object]] = {
        "type": "record",
        "name": "Item",
        "namespace": "agents.batch_pipeline",
        "fields": [
            {"name": "batch_id", "type": "string"},
            {"name": "index", "type": "int"},
            {"name": "total", "type": "int"},
            {"name": "text", "type": "string"},
        ],
    }

    batch_id: str
    index: int
    total: int
    text: str


class Gathering(Record):
    """A batch's results so far, by item index; ``sent`` once the whole batch has gone on."""

    __avro_schema__: ClassVar[dict[str, object]] = {
        "type": "record",
        "name": "Gathering",
        "namespace": "agents.batch_pipeline",
        "fields": [
            {"name": "total", "type": "int"},
            {"name": "results", "type": {"type": "map", "values": "string"}},
            {"name": "sent", "type": "boolean", "default": False},
        ],
    }

    total: int
    results: dict[str, str]
    sent: bool = False


def build(name: str = "batches") -> App:
    """App ``name``: ``<name>.in`` -> items -> enriched -> gathered -> ``<name>.reports``."""
    app = App(name)
    batches = app.topic(f"{name}.in", value=Batch, partitions=3)
    items = app.topic(f"{name}.items", value=Item, partitions=6)
    enriched = app.topic(f"{name}.enriched", value=Item, partitions=3)
    gathered = app.topic(f"{name}.gathered", value=Batch, partitions=3)
    reports = app.topic(f"{name}.reports", value=TaskCompleted, partitions=3)
    gathering = app.table("gathering", value=Gathering)

    @app.agent(batches)
    async def split(batch: Batch, ctx: Context) -> None:
        if not batch.items:
            raise DataError(f"split: batch {batch.batch_id} has no items")
        for index, text in enumerate(batch.items):
            item = Item(batch_id=batch.batch_id, index=index, total=len(batch.items), text=text)
            await ctx.send(items, item, key=f"{batch.batch_id}/{index}")

    @app.agent(items, concurrency=16, ordering="unordered")
    async def enrich(item: Item, ctx: Context) -> None:
        await asyncio.sleep(MODEL_LATENCY)  # a real model client is called here
        text = f"{item.text.title()} ({len(item.text.split())} words)"
        await ctx.send(enriched, item.model_copy(update={"text": text}), key=item.batch_id)

    @app.agent(enriched, guarantee=ExactlyOnce(), tables=[gathering])
    async def gather(item: Item, ctx: Context) -> None:
        table = ctx.table(gathering)
        so_far = table.get(item.batch_id) or Gathering(total=item.total, results={})
        if so_far.sent:
            return  # a late copy of an item of a batch that has gone on
        results = {**so_far.results, str(item.index): item.text}
        done = len(results) == so_far.total
        table.set(item.batch_id, Gathering(total=so_far.total, results=results, sent=done))
        if done:
            whole = [results[str(i)] for i in range(so_far.total)]
            await ctx.send(gathered, Batch(batch_id=item.batch_id, items=whole))

    @app.agent(gathered)
    async def report(batch: Batch, ctx: Context) -> None:
        summary = "; ".join(batch.items)
        await ctx.send(
            reports,
            TaskCompleted(
                task_id=batch.batch_id, agent="report", status=TaskStatus.SUCCEEDED, result=summary
            ),
        )

    return app


app = build()
