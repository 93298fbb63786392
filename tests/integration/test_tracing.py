"""One trace and one correlation across a 3-stage pipeline run by two worker processes."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from streams import Publisher, Settings, Topic
from streams.admin import TopicAdmin
from streams.events import TaskCompleted, TaskRequested
from streams.headers import CAUSATION_ID, CORRELATION_ID, MESSAGE_ID, SENT_BY
from streams.serde.registry import ConfluentRegistry
from streams.tail import tail

ROOT = Path(__file__).resolve().parents[2]


def _start(
    prefix: str, agents: list[str], spans: Path, settings: Settings, log: Path
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "SCHEMA_REGISTRY_URL": settings.schema_registry_url,
        "TRACE_PREFIX": prefix,
        "STREAMS_TRACES_FILE": str(spans),
    }
    args = [sys.executable, "-m", "streams", "run", "tests.integration.trace_app:app"]
    args += [f"--agent={a}" for a in agents]
    with log.open("wb") as out:
        return subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def _spans(paths: list[Path]) -> list[dict]:  # type: ignore[type-arg]
    found = []
    for path in paths:
        if path.exists():
            found += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return found


def test_three_stages_in_two_processes_share_one_trace_and_correlation(
    settings: Settings, registry: ConfluentRegistry, tmp_path: Path
) -> None:
    prefix = f"trace.{uuid.uuid4().hex[:8]}"
    names = ["tasks", "planned", "researched", "done"]
    types = [TaskRequested, TaskRequested, TaskRequested, TaskCompleted]
    topics = [Topic(f"{prefix}.{n}", value=t, partitions=2) for n, t in zip(names, types, strict=True)]
    TopicAdmin(settings, registry).apply(topics)
    span_files = [tmp_path / "spans-1.jsonl", tmp_path / "spans-2.jsonl"]
    workers = [
        _start(prefix, ["planner"], span_files[0], settings, tmp_path / "w1.log"),
        _start(prefix, ["researcher", "writer"], span_files[1], settings, tmp_path / "w2.log"),
    ]
    try:
        with Publisher(settings, registry) as publisher:
            origin_id = publisher.publish(
                topics[0],
                TaskRequested(task_id="t1", capability="research", payload="{}"),
                key="t1",
                correlation_id="case-7",
            )
        done = list(tail(settings, registry, topics[3].name, from_beginning=True, limit=1, idle_timeout=60))
        assert len(done) == 1, [p.read_text() for p in tmp_path.glob("w*.log")]
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        codes = [w.wait(60) for w in workers]
    assert codes == [0, 0], [p.read_text()[-2000:] for p in tmp_path.glob("w*.log")]

    # The messages: one correlation, each naming its cause and the agent that sent it.
    hops = [
        next(iter(tail(settings, registry, t.name, from_beginning=True, limit=1, idle_timeout=20)))
        for t in topics
    ]
    assert [h.headers[CORRELATION_ID] for h in hops] == ["case-7"] * 4
    assert hops[0].headers[MESSAGE_ID] == origin_id
    for cause, effect in itertools.pairwise(hops):
        assert effect.headers[CAUSATION_ID] == cause.headers[MESSAGE_ID]
    assert [h.headers.get(SENT_BY) for h in hops] == [None, "planner", "researcher", "writer"]

    # The spans, exported by two processes: one trace, consumer spans children of the incoming
    # message's producer context, producer spans children of the consumer span that sent them.
    deadline = time.monotonic() + 10
    spans = _spans(span_files)
    while len(spans) < 6 and time.monotonic() < deadline:
        time.sleep(0.2)
        spans = _spans(span_files)
    mine = [s for s in spans if s["attributes"].get("streams.correlation_id") == "case-7"]
    consumers = {s["attributes"]["streams.agent"]: s for s in mine if s["kind"] == "SpanKind.CONSUMER"}
    producers = {s["attributes"]["streams.agent"]: s for s in mine if s["kind"] == "SpanKind.PRODUCER"}
    assert set(consumers) == {"planner", "researcher", "writer"}
    assert set(producers) == {"planner", "researcher", "writer"}
    trace_ids = {s["context"]["trace_id"] for s in mine}
    origin_trace = hops[0].headers["traceparent"].split("-")[1]
    assert trace_ids == {"0x" + origin_trace}, "every stage in the origin's trace"
    assert consumers["planner"]["parent_id"] == "0x" + hops[0].headers["traceparent"].split("-")[2]
    for agent in ("planner", "researcher", "writer"):
        assert producers[agent]["parent_id"] == consumers[agent]["context"]["span_id"]
    assert consumers["researcher"]["parent_id"] == producers["planner"]["context"]["span_id"]
    assert consumers["writer"]["parent_id"] == producers["researcher"]["context"]["span_id"]
    planner = consumers["planner"]["attributes"]
    assert planner["messaging.system"] == "kafka"
    assert planner["messaging.destination.name"] == topics[0].name
    assert planner["messaging.consumer.group.name"] == f"{prefix.replace('.', '-')}.planner"
    assert planner["messaging.message.id"] == origin_id
    assert {s["resource"]["attributes"]["service.name"] for s in mine} == {prefix.replace(".", "-")}


def test_streams_trace_finds_the_whole_chain_including_a_dead_letter(
    cli,
    settings: Settings,
    registry: ConfluentRegistry,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    prefix = f"trace.{uuid.uuid4().hex[:8]}"
    env_app = tmp_path / "trace_app_ref.py"
    env_app.write_text(  # the CLI imports the app in its own process; pin the prefix there
        f"import os, sys\nsys.path.insert(0, {str(ROOT)!r})\nos.environ['TRACE_PREFIX'] = {prefix!r}\n"
        "from tests.integration.trace_app import app\n"
    )
    topics = [
        Topic(f"{prefix}.{name}", value=kind, partitions=2)
        for name, kind in [
            ("tasks", TaskRequested),
            ("planned", TaskRequested),
            ("researched", TaskRequested),
            ("done", TaskCompleted),
        ]
    ]
    TopicAdmin(settings, registry).apply(topics)
    TopicAdmin(settings, registry).ensure_untyped({f"{prefix.replace('.', '-')}.researcher.dlq": 2})
    worker = _start(
        prefix, ["planner", "researcher", "writer"], tmp_path / "spans.jsonl", settings, tmp_path / "w.log"
    )
    try:
        with Publisher(settings, registry) as publisher:
            publisher.publish(
                topics[0],
                TaskRequested(task_id="good", capability="c", payload="{}"),
                key="good",
                correlation_id="case-good",
            )
            publisher.publish(
                topics[0],
                TaskRequested(task_id="bad", capability="c", payload="poison"),
                key="bad",
                correlation_id="case-bad",
            )
        list(tail(settings, registry, f"{prefix}.done", from_beginning=True, limit=1, idle_timeout=60))
        dlq = f"{prefix.replace('.', '-')}.researcher.dlq"
        assert list(tail(settings, registry, dlq, from_beginning=True, limit=1, idle_timeout=60))
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)

    good = cli("trace", "case-good", "--app", "trace_app_ref:app", cwd=tmp_path)
    assert good.returncode == 0, good.stderr
    lines = [line for line in good.stdout.splitlines() if prefix in line]
    assert [
        next(n for n in ("tasks", "planned", "researched", "done") if f"{prefix}.{n}" in line)
        for line in lines
    ] == ["tasks", "planned", "researched", "done"]
    assert "(origin)" in lines[0] and "planner" in lines[1] and "writer" in lines[3]
    assert all(" ms" in line for line in lines[1:]), "per-hop latency on every hop after the origin"

    bad = cli("trace", "case-bad", "--app", "trace_app_ref:app", cwd=tmp_path)
    assert bad.returncode == 0, bad.stderr
    assert "dead letter: cannot research poison" in bad.stdout
    assert f"{prefix}.done" not in bad.stdout

    none = cli("trace", "case-none", "--topics", f"{prefix}.tasks")
    assert none.returncode == 1 and "no message with correlation id case-none" in none.stdout
