"""Telemetry: tracing (OpenTelemetry, W3C trace context in headers) and worker metrics and health.

Everything here hooks in as middleware or reads worker state; handlers never call it.
"""
