"""A sequential pipeline (document intelligence): extract -> summarise -> entities -> classify.

    streams run agents.doc_pipeline:app          # the four stages, in one worker
    streams publish docs.raw --key-field doc_id \\
        --value '{"doc_id": "d1", "source": "<p>Acme Bank raised its rates in Paris.</p>"}'
    streams tail docs.classified --from-beginning
    streams tail docs.summarise.dlq --from-beginning   # what a stage refused, with the reason

Each stage is an agent of its own (consumer group ``docs.<stage>``) that reads the previous stage's
topic and sends the document, one field richer, to the next, keyed by document id so a document's
versions stay in order. Every stage checks that its input has what it needs before working: a
document that cannot be worked on (empty, never extracted, ...) raises :class:`DataError`, which is
not retried and sends the message to the stage's dead-letter topic (``docs.<stage>.dlq``) with the
reason in its headers; nothing is dropped. Other failures (a model call timing out) are retried with
backoff. The stages stand in for model calls (a short sleep and a computed answer): replace the
bodies of ``extract`` ... ``classify`` with real clients; the plumbing stays.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import ClassVar

from streams import App, Context, DataError, Record, Retry, Topic

MODEL_LATENCY = 0.01  # seconds a stand-in model call takes
CATEGORIES = {"finance": {"bank", "rates", "payment", "invoice"}, "legal": {"court", "contract", "law"}}


class Document(Record):
    """A document as it moves down the pipeline; each stage fills one more field."""

    __avro_schema__: ClassVar[dict[str, object]] = {
        "type": "record",
        "name": "Document",
        "namespace": "agents.doc_pipeline",
        "fields": [
            {"name": "doc_id", "type": "string"},
            {"name": "source", "type": "string", "doc": "The raw document, markup and all."},
            {"name": "text", "type": ["null", "string"], "default": None},
            {"name": "summary", "type": ["null", "string"], "default": None},
            {"name": "entities", "type": ["null", {"type": "array", "items": "string"}], "default": None},
            {"name": "category", "type": ["null", "string"], "default": None},
        ],
    }

    doc_id: str
    source: str
    text: str | None = None
    summary: str | None = None
    entities: list[str] | None = None
    category: str | None = None


def extract(doc: Document) -> Document:
    text = " ".join(re.sub(r"<[^>]*>", " ", doc.source).split())
    if not text:
        raise DataError(f"extract: document {doc.doc_id} has no text once its markup is removed")
    return doc.model_copy(update={"text": text})


def summarise(doc: Document) -> Document:
    if not doc.text:
        raise DataError(f"summarise: document {doc.doc_id} has no text (was it extracted?)")
    return doc.model_copy(update={"summary": doc.text.split(". ")[0][:120]})


def entities(doc: Document) -> Document:
    if not doc.text or doc.summary is None:
        raise DataError(f"entities: document {doc.doc_id} needs its text and summary first")
    found = [word.strip(".,;:") for word in doc.text.split() if word[:1].isupper()]
    return doc.model_copy(update={"entities": sorted(set(found))})


def classify(doc: Document) -> Document:
    if not doc.summary or doc.entities is None:
        raise DataError(f"classify: document {doc.doc_id} needs its summary and entities first")
    words = {word.strip(".,;:").lower() for word in (doc.text or "").split()}
    category = next((name for name, cues in CATEGORIES.items() if words & cues), "general")
    return doc.model_copy(update={"category": category})


STAGES: list[tuple[str, Callable[[Document], Document]]] = [
    ("extract", extract),
    ("summarise", summarise),
    ("entities", entities),
    ("classify", classify),
]
TOPICS = ["raw", "extracted", "summarised", "entities", "classified"]  # stage i reads i, writes i + 1


def _stage(
    work: Callable[[Document], Document], out: Topic[Document]
) -> Callable[[Document, Context], Awaitable[None]]:
    async def handle(doc: Document, ctx: Context) -> None:
        await asyncio.sleep(MODEL_LATENCY)  # a real model client is called here
        await ctx.send(out, work(doc))

    return handle


def build(name: str = "docs") -> App:
    """The app, named ``name``; its topics are ``<name>.raw`` ... ``<name>.classified``."""
    app = App(name)
    topics = [app.topic(f"{name}.{t}", value=Document, partitions=3) for t in TOPICS]
    for (stage, work), source, out in zip(STAGES, topics, topics[1:], strict=False):
        app.agent(source, name=stage, concurrency=8, retry=Retry(attempts=3, backoff=0.2))(_stage(work, out))
    return app


app = build()
