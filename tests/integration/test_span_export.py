"""Spans leaving worker processes: a fully sampled burst is exported whole (or every drop is counted
in /metrics), and OTLP reaches a collector with the settings docs/telemetry.md gives."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from streams import Publisher, Settings, Topic
from streams.admin import TopicAdmin
from streams.events import TaskCompleted, TaskRequested
from streams.serde.registry import ConfluentRegistry
from tests.integration._http import http_get
from tests.integration._kafka import message_count, wait_for

ROOT = Path(__file__).resolve().parents[2]
STAGES = 3
SPANS_PER_EVENT = 2 * STAGES  # each stage: the consumer span of its input, the producer span of its send


class Worker:
    """`streams run` of the trace app's three agents in a process of its own, with /metrics on."""

    def __init__(self, prefix: str, settings: Settings, directory: Path, name: str, **env: str) -> None:
        self.log = directory / f"{name}.log"
        self.spans = directory / f"{name}-spans.jsonl"
        environment = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
            "SCHEMA_REGISTRY_URL": settings.schema_registry_url,
            "TRACE_PREFIX": prefix,
            "STREAMS_TRACES_FILE": str(self.spans),
            "STREAMS_HEARTBEAT_INTERVAL": "0",
            "OTEL_TRACES_SAMPLER": "always_on",
            **env,
        }
        args = [sys.executable, "-m", "streams", "run", "tests.integration.trace_app:app"]
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [*args, "--metrics-port", "0"],
                cwd=ROOT,
                env=environment,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.url = ""

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 90
        while not self.url:
            found = re.search(r"serving metrics on (http://127\.0\.0\.1:\d+)/metrics", self.log.read_text())
            if found:
                self.url = found.group(1)
                break
            assert self.process.poll() is None and time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.1)
        while http_get(f"{self.url}/ready")[0] != 200:
            assert time.monotonic() < deadline, f"never ready: {http_get(self.url + '/ready')}"
            time.sleep(0.2)

    def spans_accounted(self) -> dict[str, float]:
        """The file exporter's span counts from /metrics."""
        status, text = http_get(f"{self.url}/metrics")
        assert status == 200, text
        samples = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }
        file = (("exporter", "file"),)
        return {
            "exported": samples[("streams_spans_exported_total", file)],
            "dropped": samples[("streams_spans_dropped_total", (*file, ("reason", "queue_full")))],
            "failed": samples[("streams_spans_dropped_total", (*file, ("reason", "export_failed")))],
            "queued": samples[("streams_span_queue_spans", file)],
            "capacity": samples[("streams_span_queue_capacity", file)],
        }

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(90) == 0, self.log.read_text()[-3000:]

    def exported_spans(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.spans.read_text().splitlines() if line.strip()]


def _declare(prefix: str, settings: Settings, registry: ConfluentRegistry) -> Topic[TaskRequested]:
    """Create tests/integration/trace_app.py's topics under ``prefix``; returns its input topic."""
    topics: list[Topic[Any]] = [
        Topic(f"{prefix}.{name}", value=value, partitions=2)
        for name, value in [
            ("tasks", TaskRequested),
            ("planned", TaskRequested),
            ("researched", TaskRequested),
            ("done", TaskCompleted),
        ]
    ]
    TopicAdmin(settings, registry).apply(topics)
    return topics[0]


def _burst(settings: Settings, registry: ConfluentRegistry, topic: Topic[TaskRequested], events: int) -> None:
    with Publisher(settings, registry) as publisher:
        for i in range(events):
            publisher.publish(
                topic, TaskRequested(task_id=f"t{i}", capability="c", payload="{}"), key=f"k{i}"
            )


def _settled(workers: list[Worker], expected: int) -> list[dict[str, float]]:
    """Each worker's counts once every expected span is exported, failed or dropped."""
    counts: list[dict[str, float]] = []

    def done() -> bool:
        counts[:] = [w.spans_accounted() for w in workers]
        return sum(c["exported"] + c["dropped"] + c["failed"] for c in counts) == expected and not any(
            c["queued"] for c in counts
        )

    assert wait_for(done, timeout=60), f"spans not all accounted for: {counts}"
    return counts


def test_a_fully_sampled_burst_is_exported_whole_by_two_workers(
    settings: Settings, registry: ConfluentRegistry, tmp_path: Path
) -> None:
    prefix = f"burst.{uuid.uuid4().hex[:8]}"
    events = 3000
    tasks = _declare(prefix, settings, registry)
    workers = [Worker(prefix, settings, tmp_path, f"w{i}") for i in (1, 2)]
    try:
        for worker in workers:
            worker.wait_ready()  # both in the groups: the burst is shared
        _burst(settings, registry, tasks, events)
        assert wait_for(lambda: message_count(settings, f"{prefix}.done") == events, timeout=180)
        counts = _settled(workers, events * SPANS_PER_EVENT)
    finally:
        for worker in workers:
            worker.stop()
    # The queue holds 2 spans per message each process's three agents may hold in flight (10,000
    # each by default): more than this burst ever puts in it, so nothing may be dropped.
    assert [c["capacity"] for c in counts] == [2 * 3 * 10_000] * 2
    assert [(c["dropped"], c["failed"]) for c in counts] == [(0, 0), (0, 0)]
    exported = [w.exported_spans() for w in workers]
    assert [len(spans) for spans in exported] == [c["exported"] for c in counts], "metrics match the files"
    assert all(counts[i]["exported"] > 0 for i in (0, 1)), "both workers handled part of the burst"
    spans = exported[0] + exported[1]
    assert len(spans) == events * SPANS_PER_EVENT
    assert len({s["context"]["span_id"] for s in spans}) == len(spans)
    kinds = [s["kind"] for s in spans]
    assert kinds.count("SpanKind.CONSUMER") == kinds.count("SpanKind.PRODUCER") == events * STAGES


def test_a_queue_too_small_for_the_burst_counts_every_dropped_span(
    settings: Settings, registry: ConfluentRegistry, tmp_path: Path
) -> None:
    prefix = f"drops.{uuid.uuid4().hex[:8]}"
    events = 300
    tasks = _declare(prefix, settings, registry)
    # The batch processor exports when 512 spans wait, or every 5 s: a queue of 64 must overflow.
    worker = Worker(prefix, settings, tmp_path, "w", OTEL_BSP_MAX_QUEUE_SIZE="64")
    try:
        worker.wait_ready()
        _burst(settings, registry, tasks, events)
        assert wait_for(lambda: message_count(settings, f"{prefix}.done") == events, timeout=120)
        [counts] = _settled([worker], events * SPANS_PER_EVENT)
    finally:
        worker.stop()
    assert counts["capacity"] == 64
    assert counts["dropped"] > 0 and counts["failed"] == 0
    assert len(worker.exported_spans()) == counts["exported"]
    assert counts["exported"] + counts["dropped"] == events * SPANS_PER_EVENT
    assert "span queue of exporter file is full (64 spans): dropping spans" in worker.log.read_text()


class _Collector(BaseHTTPRequestHandler):
    """An OTLP/HTTP trace receiver: what Jaeger's port 4318 speaks."""

    received: list[tuple[str, str, Any]] = []  # noqa: RUF012 - one collector per test, reset there

    def do_POST(self) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
            ExportTraceServiceResponse,
        )

        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        self.received.append((self.path, self.headers["Content-Type"], request))
        reply = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: Any) -> None:
        return None


@contextmanager
def _collector() -> Iterator[str]:
    _Collector.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _otlp_spans() -> list[tuple[str, str, dict[str, str]]]:
    """(service name, span name, string attributes) of every span the collector received."""
    found = []
    for _, _, request in list(_Collector.received):
        for resource_spans in request.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope in resource_spans.scope_spans:
                for span in scope.spans:
                    attributes = {a.key: a.value.string_value for a in span.attributes}
                    found.append((resource["service.name"], span.name, attributes))
    return found


def test_a_worker_sends_spans_to_an_otlp_collector_as_documented(
    settings: Settings, registry: ConfluentRegistry, tmp_path: Path
) -> None:
    prefix = f"otlp.{uuid.uuid4().hex[:8]}"
    tasks = _declare(prefix, settings, registry)
    with _collector() as endpoint:
        # The settings docs/telemetry.md gives for Jaeger (there on port 4318).
        worker = Worker(
            prefix,
            settings,
            tmp_path,
            "w",
            OTEL_TRACES_EXPORTER="otlp",
            OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
            OTEL_SERVICE_NAME="triage-workers",
            STREAMS_TRACES_FILE="",
        )
        try:
            worker.wait_ready()
            with Publisher(settings, registry) as publisher:
                publisher.publish(
                    tasks,
                    TaskRequested(task_id="t1", capability="c", payload="{}"),
                    key="t1",
                    correlation_id="otlp-case",
                )
            assert wait_for(lambda: message_count(settings, f"{prefix}.done") == 1, timeout=60)
        finally:
            worker.stop()  # flushes what is still queued
        spans = [s for s in _otlp_spans() if s[2].get("streams.correlation_id") == "otlp-case"]
    assert {path for path, _, _ in _Collector.received} == {"/v1/traces"}
    assert {kind for _, kind, _ in _Collector.received} == {"application/x-protobuf"}
    assert {service for service, _, _ in spans} == {"triage-workers"}
    assert sorted(name for _, name, _ in spans) == sorted(
        [f"process {prefix}.{t}" for t in ("tasks", "planned", "researched")]
        + [f"send {prefix}.{t}" for t in ("planned", "researched", "done")]
    )
