"""Auto-scaling signals: an agent slower than its input, and the worker count it is recommended.

    streams run agents.autoscaling:app --metrics-port 9464     # one worker: about 40 messages/s
    python -m agents.autoscaling --messages 6000                # a backlog, in another terminal
    curl -s localhost:9464/metrics | grep streams_recommended_workers
    streams lag agents.autoscaling:app --recommend              # the same, from the broker's side

``summarise`` stands in for a model call of 20 ms, one at a time per worker, on a topic of 6
partitions. With a backlog, the recommendation (``streams_recommended_workers{agent="summarise"}`` on
every worker, the ``recommended`` column of ``streams lag --recommend``) is the workers that would
keep up with what arrives and clear the backlog within the drain target (60 s;
``STREAMS_SCALE_DRAIN_WITHIN``, ``--drain-within``), at most 6: for 6,000 documents at about 40/s
per worker, 3. Run that many (``streams run agents.autoscaling:app --workers N``) and watch the lag
fall. The rule is in docs/telemetry.md ("Scaling signals").
"""

from __future__ import annotations

import argparse
import asyncio

from streams import App, Context, Limits, Publisher
from streams.events import TaskRequested

MODEL_LATENCY = 0.02  # seconds a stand-in model call takes


def build(name: str = "autoscaling") -> App:
    """The app, named ``name`` (tests run it under a name of their own)."""
    app = App(name)
    documents = app.topic(f"{name}.documents", value=TaskRequested, partitions=6)

    # Few messages held at once: a worker that stops hands its partitions over within a second.
    @app.agent(documents, limits=Limits(max_in_flight=20))
    async def summarise(document: TaskRequested, ctx: Context) -> None:
        await asyncio.sleep(MODEL_LATENCY)

    return app


app = build()


def publish(target: App, messages: int) -> None:
    """Put ``messages`` documents on the app's topic, spread over its partitions by key."""
    documents = target.topics[f"{target.name}.documents"]
    with Publisher(target.settings) as publisher:
        for i in range(messages):
            document = TaskRequested(task_id=f"doc-{i}", capability="summarise", payload=f"document {i}")
            publisher.publish(documents, document, key=document.task_id)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Publish a backlog of documents for agents.autoscaling.")
    parser.add_argument("--messages", type=int, default=6000)
    publish(app, parser.parse_args().messages)
