"""Keyed state: local stores and the per-message view handlers use. Pure: no Kafka, no threads; the
worker keeps the changelog (see :mod:`streams.worker.tables`)."""
