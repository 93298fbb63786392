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

import pytest

from streams import Publisher, Settings, Topic
from streams.admin import TopicAdmin
from streams.events import TaskCompleted, TaskRequested
from streams.headers import CAUSATION_ID, CORRELATION_ID, MESSAGE_ID, SENT_BY
from streams.serde.registry import ConfluentRegistry
from streams.tail import tail

ROOT = Path(__file__).resolve().parents[2]


def _start(
    prefix: str,
    agents: list[str],
    spans: Path,
    settings: Settings,
    log: Path,
    guarantee: str = "at_least_once",
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "SCHEMA_REGISTRY_URL": settings.schema_registry_url,
        "TRACE_PREFIX": prefix,
        "TRACE_GUARANTEE": guarantee,
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


def _app_ref(directory: Path, prefix: str, guarantee: str = "at_least_once") -> str:
    """A module the CLI can import (it runs in its own process) that pins the app's environment."""
    (directory / "trace_app_ref.py").write_text(
        f"import os, sys\nsys.path.insert(0, {str(ROOT)!r})\nos.environ['TRACE_PREFIX'] = {prefix!r}\n"
        f"os.environ['TRACE_GUARANTEE'] = {guarantee!r}\n"
        "from tests.integration.trace_app import app\n"
    )
    return "trace_app_ref:app"


def _trace_topics(prefix: str) -> list[Topic]:  # type: ignore[type-arg]
    return [
        Topic(f"{prefix}.{name}", value=kind, partitions=2)
        for name, kind in [
            ("tasks", TaskRequested),
            ("planned", TaskRequested),
            ("researched", TaskRequested),
            ("done", TaskCompleted),
        ]
    ]


def _rows(output: str) -> list[list[str]]:
    """The body rows of a rich table, split into cells (the header row is drawn with ┃)."""
    return [
        [cell.strip() for cell in line.strip().strip("│").split("│")]
        for line in output.splitlines()
        if line.startswith("│")
    ]


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_streams_trace_finds_the_whole_chain_and_who_dead_lettered(
    cli,  # type: ignore[no-untyped-def]
    settings: Settings,
    registry: ConfluentRegistry,
    tmp_path: Path,
    guarantee: str,
) -> None:
    prefix = f"trace.{uuid.uuid4().hex[:8]}"
    app_ref = _app_ref(tmp_path, prefix, guarantee)
    topics = _trace_topics(prefix)
    dlq = f"{prefix.replace('.', '-')}.researcher.dlq"
    TopicAdmin(settings, registry).apply(topics)
    worker = _start(
        prefix,
        ["planner", "researcher", "writer"],
        tmp_path / "spans.jsonl",
        settings,
        tmp_path / "w.log",
        guarantee,
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
        assert list(tail(settings, registry, f"{prefix}.done", from_beginning=True, limit=1, idle_timeout=60))
        assert list(tail(settings, registry, dlq, from_beginning=True, limit=1, idle_timeout=60))
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(60) == 0, (tmp_path / "w.log").read_text()[-3000:]

    started = time.monotonic()
    good = cli("trace", "case-good", "--app", app_ref, cwd=tmp_path)
    assert good.returncode == 0, good.stderr
    # A bounded scan ends where each partition ends, commit markers and all: no waiting for a stall.
    assert time.monotonic() - started < 20
    rows = _rows(good.stdout)
    assert [row[1].strip() for row in rows] == [t.name for t in topics], good.stdout
    assert [row[4] for row in rows] == ["(origin)", "planner", "researcher", "writer"]
    assert all(row[5].endswith(" ms") for row in rows[1:]), "per-hop latency on every hop after the origin"

    bad = cli("trace", "case-bad", "--app", app_ref, cwd=tmp_path)
    assert bad.returncode == 0, bad.stderr
    rows = _rows(bad.stdout)
    assert [(row[1].strip(), row[4]) for row in rows] == [
        (topics[0].name, "(origin)"),
        (topics[1].name, "planner"),
        # The dead letter carries the failed message's sent-by (planner); the row names the agent that
        # dead-lettered it.
        (dlq, "researcher"),
    ], bad.stdout
    assert rows[2][6] == "dead letter: cannot research poison"

    none = cli("trace", "case-none", "--topics", f"{prefix}.tasks")
    assert none.returncode == 1 and "no message with correlation id case-none" in none.stdout


def test_streams_trace_right_after_topics_apply_and_publish(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # Before any worker ran, the dead-letter topics do not exist: they are empty, not an error.
    prefix = f"trace.{uuid.uuid4().hex[:8]}.with-a-long-name-so-rows-pass-eighty-columns"
    app_ref = _app_ref(tmp_path, prefix)
    applied = cli("topics", "apply", app_ref, cwd=tmp_path)
    assert applied.returncode == 0, applied.stderr
    value = json.dumps({"task_id": "t1", "capability": "c", "payload": "{}"})
    published = cli(
        "publish",
        f"{prefix}.tasks",
        *("--key", "t1", "--value", value, "--correlation-id", "case-new"),
        extra_env={"OTEL_TRACES_EXPORTER": "console"},
    )
    assert published.returncode == 0, published.stderr
    # The console exporter writes spans to stderr: stdout is the command's answer alone.
    assert published.stdout.startswith("published 1 event(s)")
    assert len(published.stdout.strip().splitlines()) == 1, published.stdout
    assert '"name": "send ' in published.stderr and "case-new" in published.stderr

    traced = cli("trace", "case-new", "--app", app_ref, cwd=tmp_path)
    assert traced.returncode == 0, traced.stderr
    [row] = _rows(traced.stdout)
    # Piped output keeps the table's full width: nothing cut at 80 columns.
    assert row[1] == f"{prefix}.tasks" and row[4] == "(origin)", traced.stdout
    assert max(len(line) for line in traced.stdout.splitlines()) > 80
    assert "not created yet, so empty:" in traced.stderr
    assert f"{prefix.replace('.', '-')}.planner.dlq" in traced.stderr
