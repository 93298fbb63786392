"""Agent workers: wire transport, serde and runtime bookkeeping around agent handlers.

Owns what happens to each received message (processing, handling with retries, dead letters, dedup,
output delivery), commits, and one agent's life on Kafka (start, rebalances, drain, stop). Handlers
never see Kafka: they get a typed value and a :class:`streams.context.Context`. The process that runs
workers until SIGTERM is :mod:`streams.runner`; the in-memory twin (:mod:`streams.testing`) drives
the same processing and handling code.
"""
