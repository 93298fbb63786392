"""Runtime layer: the pure bookkeeping between the Kafka consumer and the agent handlers.

It owns the decisions a consumer loop makes about received messages, as plain, synchronous-or-asyncio
Python with no I/O:

- :mod:`streams.runtime.offsets`: which offsets of each partition are finished, so commits never pass
  an unfinished message (commit up to the lowest unfinished offset; gaps in offsets do not block);
- :mod:`streams.runtime.lanes`: which received messages may start now, so per-key (or per-partition)
  order holds under a concurrency limit and a hot key cannot starve the others;
- :mod:`streams.runtime.backpressure`: when in-flight work (messages and bytes) is too much, so the
  consumer pauses partitions and resumes them below a low-water mark.

It must never import or call the Kafka client (that is :mod:`streams.transport`), decode or encode
payloads (:mod:`streams.serde`), sleep, start threads or tasks of its own, or swallow a message: every
message handed in is either finished, handed back (revocation), or still counted as pending. Keeping it
free of I/O is what lets the ordering and commit guarantees be tested exhaustively without a broker.
"""
