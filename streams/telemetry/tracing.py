"""OpenTelemetry tracing: a consumer span per handled message, a producer span per send, and W3C
``traceparent``/``tracestate`` headers that join every stage of a run into one trace.

Configuration follows the standard ``OTEL_*`` variables: ``OTEL_TRACES_EXPORTER`` (``console``,
``otlp`` or ``none``; see :mod:`streams.telemetry.export` for where spans go),
``OTEL_TRACES_SAMPLER``/``_ARG`` and ``OTEL_SERVICE_NAME``. ``STREAMS_TRACES_FILE`` additionally
writes finished spans as JSON lines to a file. With nothing configured no span is recorded, yet
trace context still flows: each message carries its cause's ``traceparent`` (or a fresh one at the
origin), copied from each input to its outputs, so a traced stage further down still joins the same
trace. ``STREAMS_TRACING=false`` turns even that off.
"""

from __future__ import annotations

import logging
import os
import secrets
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.propagate import extract, inject
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from streams import headers as hdr
from streams.middleware import CallNext, Middleware
from streams.telemetry.export import configure_tracing as configure_tracing
from streams.telemetry.export import tracing_active as tracing_active

if TYPE_CHECKING:
    from streams.context import Context

log = logging.getLogger("streams.tracing")

TRACEPARENT = hdr.TRACEPARENT
TRACESTATE = hdr.TRACESTATE
_TRACER_NAME = "streams"


def origin_trace_headers() -> hdr.Headers:
    """``traceparent`` for a message that starts a run: the current span's, or a fresh one.

    A fresh one is flagged sampled as ``OTEL_TRACES_SAMPLER`` would decide for its trace id, so that
    ``parentbased_*`` samplers downstream keep the ratio even where the origin records no span.
    """
    carrier: dict[str, str] = {}
    inject(carrier)
    if TRACEPARENT not in carrier:
        trace_id = secrets.randbits(128) or 1  # an all-zero trace id is invalid
        flags = "01" if origin_sampled(trace_id) else "00"
        carrier[TRACEPARENT] = f"00-{trace_id:032x}-{secrets.token_hex(8)}-{flags}"
    return [(k, v.encode()) for k, v in carrier.items() if k in (TRACEPARENT, TRACESTATE)]


def origin_sampled(trace_id: int) -> bool:
    """Whether ``OTEL_TRACES_SAMPLER`` samples a new trace with this id (the SDK's own rule: a ratio
    sampler keeps the trace ids whose low 64 bits fall under ratio x 2**64)."""
    sampler = os.environ.get("OTEL_TRACES_SAMPLER", "parentbased_always_on").strip().lower()
    if sampler in ("always_off", "parentbased_always_off"):
        return False
    if sampler not in ("traceidratio", "parentbased_traceidratio"):
        return True
    from opentelemetry.sdk.trace.sampling import TraceIdRatioBased

    try:
        rate = float(os.environ.get("OTEL_TRACES_SAMPLER_ARG", "1.0"))
    except ValueError:
        rate = 1.0  # as the SDK does with an unreadable ratio
    if not 0.0 <= rate <= 1.0:
        rate = 1.0
    return trace_id & TraceIdRatioBased.TRACE_ID_LIMIT < TraceIdRatioBased.get_bound_for_rate(rate)


class TracingMiddleware(Middleware):
    """Consumer span around each handler call (child of the message's ``traceparent``), producer span
    for each send, and the send's headers re-pointed at it."""

    def __init__(self, agent: str, group_id: str) -> None:
        self._agent = agent
        self._group_id = group_id
        self._tracer = trace.get_tracer(_TRACER_NAME)

    async def handle(self, ctx: Context, call_next: CallNext) -> None:
        parent = extract(ctx.headers)
        attributes: dict[str, AttributeValue] = {
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.destination.name": ctx.topic,
            "messaging.destination.partition.id": str(ctx.partition),
            "messaging.kafka.offset": ctx.offset,
            "messaging.consumer.group.name": self._group_id,
            "messaging.message.id": ctx.message_id,
            "streams.agent": self._agent,
            "streams.correlation_id": ctx.correlation_id or "",
            "streams.attempt": ctx.attempt,
        }
        with self._tracer.start_as_current_span(
            f"process {ctx.topic}",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            if ctx.attempt > 1:
                span.add_event("retry", {"streams.attempt": ctx.attempt})
            try:
                await call_next()
            except Exception as exc:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
                raise

    def on_send(self, ctx: Context, topic: str, headers: hdr.Headers) -> hdr.Headers:
        with producer_span(self._tracer, topic, headers, agent=self._agent):
            return with_trace_context(headers)


def producer_span(
    tracer: trace.Tracer, topic: str, headers: hdr.Headers, agent: str | None = None
) -> AbstractContextManager[trace.Span]:
    """The PRODUCER span of one send (from an agent, or from a publisher at the origin)."""
    attributes: dict[str, AttributeValue] = {
        "messaging.system": "kafka",
        "messaging.operation.type": "send",
        "messaging.destination.name": topic,
        "messaging.message.id": hdr.get(headers, hdr.MESSAGE_ID) or "",
        "streams.correlation_id": hdr.get(headers, hdr.CORRELATION_ID) or "",
    }
    if agent is not None:
        attributes["streams.agent"] = agent
    return tracer.start_as_current_span(f"send {topic}", kind=SpanKind.PRODUCER, attributes=attributes)


def with_trace_context(headers: hdr.Headers) -> hdr.Headers:
    """``headers`` with ``traceparent``/``tracestate`` pointing at the current span. Without an SDK the
    current span is the incoming message's context, so the trace id still flows downstream."""
    carrier: dict[str, str] = {}
    inject(carrier)
    kept = [(k, v) for k, v in headers if k not in (TRACEPARENT, TRACESTATE)]
    return kept + [(k, v.encode()) for k, v in carrier.items() if k in (TRACEPARENT, TRACESTATE)]
