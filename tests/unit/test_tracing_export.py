"""Span export: every span accounted for (exported, failed, dropped on a full queue), exporters that
cannot work refused with one line, and the sampling decision at the origin."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from streams.errors import ConfigError
from streams.telemetry import export
from streams.telemetry.export import CountedSpanProcessor, queue_size, reserve_span_queue
from streams.telemetry.tracing import origin_sampled, origin_trace_headers

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


class GatedExporter(SpanExporter):
    """Holds every export until released; then succeeds (or fails, if told to)."""

    def __init__(self, result: SpanExportResult = SpanExportResult.SUCCESS) -> None:
        self.released = threading.Event()
        self.result = result
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.released.wait(10)
        self.spans += spans
        return self.result

    def shutdown(self) -> None:
        self.released.set()


def _end_spans(processor: CountedSpanProcessor, count: int) -> None:
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("test")
    for i in range(count):
        with tracer.start_as_current_span(f"span {i}"):
            pass


def test_a_full_queue_drops_new_spans_and_counts_every_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "50")
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "10")
    exporter = GatedExporter()
    processor = CountedSpanProcessor("gated", exporter)
    _end_spans(processor, 300)  # the exporter holds its first batch: at most 50 + 10 get anywhere
    during = processor.stats()
    # 50 wait in the queue, and the export thread may have taken a batch of 10 before it filled.
    assert 300 - 60 <= during.dropped <= 300 - 50 and during.queued == 50 and during.capacity == 50
    exporter.released.set()
    assert processor.force_flush()
    after = processor.stats()
    assert after.queued == 0 and after.failed == 0
    assert after.exported == len(exporter.spans), "the count is what the exporter received"
    assert after.exported + after.dropped == 300, "every span exported or counted as dropped"
    processor.shutdown()


def test_spans_the_exporter_fails_to_send_are_counted_as_failed() -> None:
    exporter = GatedExporter(SpanExportResult.FAILURE)
    exporter.released.set()
    processor = CountedSpanProcessor("failing", exporter)
    _end_spans(processor, 7)
    assert processor.force_flush()
    stats = processor.stats()
    assert (stats.exported, stats.failed, stats.dropped, stats.queued) == (0, 7, 0, 0)
    processor.shutdown()


def test_the_queue_holds_two_spans_per_message_in_flight_unless_configured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OTEL_BSP_MAX_QUEUE_SIZE", raising=False)
    monkeypatch.setattr(export, "_reserved_in_flight", 0)
    assert queue_size() == 2048, "never below the SDK's default"
    reserve_span_queue(10_000)
    reserve_span_queue(500)
    assert queue_size() == 21_000
    reserve_span_queue(-500)
    assert queue_size() == 20_000
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "100")
    assert queue_size() == 100
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "lots")
    with pytest.raises(ConfigError, match="OTEL_BSP_MAX_QUEUE_SIZE must be a positive integer, not 'lots'"):
        queue_size()


def test_exporters_that_cannot_work_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STREAMS_TRACES_FILE", raising=False)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "jaeger")
    with pytest.raises(ConfigError, match="unsupported OTEL_TRACES_EXPORTER 'jaeger'"):
        export._exporters()
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    with pytest.raises(ConfigError, match="unsupported OTEL_EXPORTER_OTLP_PROTOCOL 'http/json'"):
        export._exporters()
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_PROTOCOL")
    # None in sys.modules makes the import fail as if the package were not installed.
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)
    with pytest.raises(ConfigError) as refused:
        export._exporters()
    assert str(refused.value) == export.OTLP_MISSING
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    monkeypatch.setenv("STREAMS_TRACES_FILE", "/nonexistent-dir/spans.jsonl")
    with pytest.raises(ConfigError, match=r"cannot write spans to /nonexistent-dir/spans\.jsonl"):
        export._exporters()


def test_otlp_is_sent_over_http_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_PROTOCOL", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", raising=False)
    monkeypatch.delenv("STREAMS_TRACES_FILE", raising=False)
    [(name, exporter)] = export._exporters()
    assert name == "otlp" and isinstance(exporter, OTLPSpanExporter)


def test_console_spans_go_to_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    monkeypatch.delenv("STREAMS_TRACES_FILE", raising=False)
    [(name, exporter)] = export._exporters()
    processor = CountedSpanProcessor(name, exporter)
    _end_spans(processor, 1)
    assert processor.force_flush()
    assert '"name": "span 0"' in stderr.getvalue()
    assert processor.stats().exported == 1


def test_a_cli_asked_for_otlp_without_the_package_fails_with_one_line(tmp_path: Path) -> None:
    # The worker or publisher process must not run (and export nothing) with exit code 0.
    (tmp_path / "sitecustomize.py").write_text(
        "import sys\nsys.modules['opentelemetry.exporter.otlp.proto.http.trace_exporter'] = None\n"
    )
    (tmp_path / "otlp_app.py").write_text(
        "from streams import App\nfrom streams.events import TaskRequested\napp = App('otlp-app')\n"
        "tasks = app.topic('otlp.tasks', value=TaskRequested)\n"
        "@app.agent(tasks)\nasync def reader(task, ctx):\n    pass\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}",
        "OTEL_TRACES_EXPORTER": "otlp",
        # Nothing listens here: the command must fail before it would connect to anything.
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
        "SCHEMA_REGISTRY_URL": "http://127.0.0.1:1",
    }
    for args in (["run", "otlp_app:app"], ["publish", "otlp.tasks", "--value", "{}"]):
        result = subprocess.run(
            [sys.executable, "-m", "streams", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 1, (args, result.stderr)
        assert result.stderr.strip().splitlines() == [f"error: {export.OTLP_MISSING}"], (args, result.stderr)


@pytest.mark.parametrize(
    ("sampler", "ratio", "low_bits", "sampled"),
    [
        (None, None, 5, True),
        ("always_off", None, 5, False),
        ("parentbased_always_off", None, 5, False),
        ("traceidratio", "0", 0, False),
        ("traceidratio", "1", (1 << 64) - 1, True),
        ("parentbased_traceidratio", "0.5", (1 << 63) - 1, True),
        ("parentbased_traceidratio", "0.5", 1 << 63, False),
    ],
)
def test_a_fresh_origin_is_sampled_as_the_sampler_would_decide(
    monkeypatch: pytest.MonkeyPatch, sampler: str | None, ratio: str | None, low_bits: int, sampled: bool
) -> None:
    for name, value in (("OTEL_TRACES_SAMPLER", sampler), ("OTEL_TRACES_SAMPLER_ARG", ratio)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    assert origin_sampled((0xABC << 64) | low_bits) is sampled


def test_origin_headers_carry_the_sampling_decision(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    [(name, value)] = origin_trace_headers()
    version, trace_id, span_id, flags = value.decode().split("-")
    assert name == "traceparent" and version == "00" and flags == "00"
    assert len(trace_id) == 32 and len(span_id) == 16 and int(trace_id, 16) != 0
