"""Agent workers: wire transport, serde and runtime bookkeeping around agent handlers.

Owns the consumer's life (subscribe, rebalance, pause/resume, commit, close), running handlers with
retries, dead letters and output delivery, and the process that runs agents until SIGTERM. Handlers
never see Kafka: they get a typed value and a :class:`streams.context.Context`.
"""
