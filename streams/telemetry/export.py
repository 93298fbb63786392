"""Where finished spans go, and an exact count of those that never got there.

``OTEL_TRACES_EXPORTER`` names the exporters (``console``: JSON on stderr; ``otlp``: OTLP over HTTP,
or gRPC with ``OTEL_EXPORTER_OTLP_PROTOCOL=grpc``; ``none``), ``STREAMS_TRACES_FILE`` adds a JSON-lines
file. Asking for one that cannot work (``otlp`` without its package, a name we do not know, a file
that cannot be opened) is a :class:`~streams.errors.ConfigError`: exporting nothing without a word
is the failure this module exists to prevent.

Each exporter sits behind its own OpenTelemetry batch processor, whose export thread sends spans in
batches. Its queue is bounded, and a span that finds it full is dropped, never waited for: a slow
collector must not stall agents. The bound is ``OTEL_BSP_MAX_QUEUE_SIZE`` when set; otherwise
:data:`SPANS_PER_MESSAGE` per message the process's agents may hold in flight (their
``max_in_flight``, summed, as the runner reserves them), and never below the SDK's default of 2048.
The batch processor's other knobs (``OTEL_BSP_SCHEDULE_DELAY``, ``OTEL_BSP_MAX_EXPORT_BATCH_SIZE``,
``OTEL_BSP_EXPORT_TIMEOUT``) are the SDK's own.

Every sampled span that ends is counted as exactly one of: queued, exported, failed to export
(the exporter said so), or dropped because the queue was full. :func:`export_stats` reads the
counts (``/metrics`` serves them).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from streams.errors import ConfigError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider

log = logging.getLogger("streams.tracing")

DEFAULT_QUEUE_SIZE = 2048  # the SDK's own default
SPANS_PER_MESSAGE = 2  # a handled message ends a consumer span and at least one producer span
_WARN_EVERY = 10.0  # seconds between two "queue full" warnings of one exporter
OTLP_MISSING = "OTEL_TRACES_EXPORTER=otlp needs the OTLP exporter: pip install 'streams[otlp]'"

_configured: TracerProvider | None = None
_processors: list[CountedSpanProcessor] = []
_lock = threading.Lock()
_reserved_in_flight = 0


def configure_tracing(service_name: str) -> TracerProvider | None:
    """Install an SDK tracer provider when the environment asks for an exporter; idempotent.

    Returns the provider (call ``shutdown()`` on it to flush at exit) or None when tracing is off.
    Raises ConfigError when the environment asks for an exporter that cannot work.
    """
    global _configured
    with _lock:
        if _configured is not None:
            return _configured
        exporters = _exporters()
        if not exporters:
            return None
        queue_size()  # a bad OTEL_BSP_MAX_QUEUE_SIZE fails here, not at the first span
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider

        provider = TracerProvider(
            resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", service_name)})
        )
        for name, exporter in exporters:
            processor = CountedSpanProcessor(name, exporter)
            _processors.append(processor)
            provider.add_span_processor(processor)
        trace.set_tracer_provider(provider)
        _configured = provider
        return provider


def tracing_active() -> bool:
    """Whether an SDK tracer provider is installed (by :func:`configure_tracing` or by the application),
    so that spans are recorded and worth creating."""
    from opentelemetry.sdk.trace import TracerProvider

    return isinstance(trace.get_tracer_provider(), TracerProvider)


def reserve_span_queue(messages: int) -> None:
    """Make room in every exporter's queue for the spans of ``messages`` more in-flight messages
    (unless ``OTEL_BSP_MAX_QUEUE_SIZE`` fixes the size). Takes effect at once, also after
    :func:`configure_tracing`."""
    global _reserved_in_flight
    with _lock:
        _reserved_in_flight += messages


def queue_size() -> int:
    """How many finished spans each exporter's queue holds before it drops new ones."""
    configured = os.environ.get("OTEL_BSP_MAX_QUEUE_SIZE", "").strip()
    if configured:
        try:
            size = int(configured)
        except ValueError:
            size = 0
        if size < 1:
            raise ConfigError(f"OTEL_BSP_MAX_QUEUE_SIZE must be a positive integer, not {configured!r}")
        return size
    return max(DEFAULT_QUEUE_SIZE, SPANS_PER_MESSAGE * _reserved_in_flight)


@dataclass(frozen=True)
class ExportStats:
    """The spans one exporter was given, as of one moment."""

    exporter: str
    exported: int
    failed: int
    dropped: int
    queued: int
    capacity: int


def export_stats() -> list[ExportStats]:
    """Counts of every exporter :func:`configure_tracing` installed (none when tracing is off)."""
    return [processor.stats() for processor in list(_processors)]


class CountedSpanProcessor(SpanProcessor):
    """The SDK's batch processor behind a queue bound of our own, so that each dropped span is counted.

    The SDK's queue would drop the oldest span and log one warning; here the count of spans handed to
    it and not yet taken by its export thread is kept, and a span that would pass the bound is not
    handed over at all. The SDK's own queue is never the one that fills (its bound is unlimited).
    """

    def __init__(self, name: str, exporter: SpanExporter) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._queued = 0
        self._exported = 0
        self._failed = 0
        self._dropped = 0
        self._closed = False
        self._warned_at = -_WARN_EVERY
        self._batch = BatchSpanProcessor(_CountingExporter(exporter, self), max_queue_size=sys.maxsize)

    def on_end(self, span: ReadableSpan) -> None:
        if not (span.context and span.context.trace_flags.sampled):
            return
        with self._lock:
            full = self._closed or self._queued >= queue_size()
            if full:
                self._dropped += 1
            else:
                self._queued += 1
        if full:
            self._warn()
            return
        self._batch.on_end(span)

    def shutdown(self) -> None:
        with self._lock:
            self._closed = True
        self._batch.shutdown()  # type: ignore[no-untyped-call]  # the SDK leaves it unannotated

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._batch.force_flush(timeout_millis)

    def stats(self) -> ExportStats:
        with self._lock:
            return ExportStats(
                self.name, self._exported, self._failed, self._dropped, self._queued, queue_size()
            )

    def taken(self, count: int) -> None:
        """The export thread took ``count`` spans off the queue (it does so before exporting them)."""
        with self._lock:
            self._queued -= count

    def finished(self, count: int, *, ok: bool) -> None:
        with self._lock:
            if ok:
                self._exported += count
            else:
                self._failed += count

    def _warn(self) -> None:
        now = time.monotonic()
        if now - self._warned_at < _WARN_EVERY:
            return
        self._warned_at = now
        log.warning(
            "span queue of exporter %s is full (%d spans): dropping spans (%d so far, in "
            "streams_spans_dropped_total); raise OTEL_BSP_MAX_QUEUE_SIZE or sample fewer traces",
            self.name,
            queue_size(),
            self._dropped,
        )


class _CountingExporter(SpanExporter):
    """Passes batches to the real exporter and tells the processor what became of them."""

    def __init__(self, inner: SpanExporter, processor: CountedSpanProcessor) -> None:
        self._inner = inner
        self._processor = processor

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self._processor.taken(len(spans))
        try:
            result = self._inner.export(spans)
        except Exception:
            self._processor.finished(len(spans), ok=False)
            raise
        self._processor.finished(len(spans), ok=result == SpanExportResult.SUCCESS)
        return result

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return bool(self._inner.force_flush(timeout_millis))


def _exporters() -> list[tuple[str, SpanExporter]]:
    exporters: list[tuple[str, SpanExporter]] = []
    names = [n.strip() for n in os.environ.get("OTEL_TRACES_EXPORTER", "none").split(",") if n.strip()]
    for name in names:
        if name == "none":
            continue
        if name == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            # stderr: a command's stdout (`streams publish`, `streams trace`) is its answer.
            exporters.append(("console", ConsoleSpanExporter(out=sys.stderr)))
        elif name == "otlp":
            exporters.append(("otlp", _otlp_exporter()))
        else:
            raise ConfigError(f"unsupported OTEL_TRACES_EXPORTER {name!r} (use console, otlp or none)")
    path = os.environ.get("STREAMS_TRACES_FILE")
    if path:
        exporters.append(("file", JsonLinesExporter(path)))
    return exporters


def _otlp_exporter() -> SpanExporter:
    protocol = (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()
    if protocol == "http/protobuf":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[import-not-found,unused-ignore]
                OTLPSpanExporter,
            )
        except ImportError as exc:
            raise ConfigError(OTLP_MISSING) from exc
        http: SpanExporter = OTLPSpanExporter()
        return http
    if protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # type: ignore[import-not-found,unused-ignore]
                OTLPSpanExporter as GrpcSpanExporter,
            )
        except ImportError as exc:
            raise ConfigError(
                "OTEL_EXPORTER_OTLP_PROTOCOL=grpc needs the gRPC exporter: "
                "pip install opentelemetry-exporter-otlp-proto-grpc"
            ) from exc
        grpc: SpanExporter = GrpcSpanExporter()
        return grpc
    raise ConfigError(f"unsupported OTEL_EXPORTER_OTLP_PROTOCOL {protocol!r} (use http/protobuf or grpc)")


class JsonLinesExporter(SpanExporter):
    """Appends each finished span as one JSON object per line (cheap to read back in tests and tools)."""

    def __init__(self, path: str) -> None:
        try:
            self._file: IO[str] = Path(path).open("a", encoding="utf-8")  # noqa: SIM115 - closed in shutdown()
        except OSError as exc:
            raise ConfigError(f"STREAMS_TRACES_FILE: cannot write spans to {path}: {exc.strerror}") from exc
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self._lock:
            for span in spans:
                self._file.write(json.dumps(json.loads(span.to_json())) + "\n")
            self._file.flush()
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        with self._lock:
            self._file.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
