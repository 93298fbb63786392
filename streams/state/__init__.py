"""Keyed state: local stores (in memory, or RocksDB on disk) and the per-message view handlers use. No
Kafka, no threads; the worker keeps the changelog (see :mod:`streams.worker.tables`)."""
