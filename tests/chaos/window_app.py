"""A windowed count, run by `streams run` in worker processes that the chaos tests kill.

count: MetricSample on SAMPLES (key = the sample's name, event time = observed_at) -> one
WindowSummary per key and 10-second tumbling window on WINDOWS, sent once when the window closes.
Exactly-once: window state, stream time, results and input offsets commit together, so each window's
result is sent once and counts every sample of it exactly once, whatever crashes.
"""

from __future__ import annotations

import os
import time

from streams import App, ExactlyOnce, Tumbling, Window
from streams.events import MetricSample, WindowSummary
from tests._records import summarize

PREFIX = os.environ["CHAOS_PREFIX"]
PARTITIONS = int(os.environ.get("CHAOS_PARTITIONS", "6"))
SIZE = float(os.environ.get("CHAOS_WINDOW", "10"))
GRACE = float(os.environ.get("CHAOS_GRACE", "5"))
REDUCE_SLEEP = float(os.environ.get("CHAOS_REDUCE_SLEEP", "0"))
STORE = "rocksdb" if os.environ.get("CHAOS_TABLE_STORE") == "rocksdb" else "memory"

app = App(PREFIX.replace(".", "-"))
samples = app.topic(f"{PREFIX}.samples", value=MetricSample, partitions=PARTITIONS)
windows = app.topic(f"{PREFIX}.windows", value=WindowSummary, partitions=PARTITIONS)


@app.windowed(
    samples,
    Tumbling(size=SIZE, grace=GRACE),
    into=windows,
    timestamp=lambda sample: sample.observed_at,
    concurrency=PARTITIONS,
    guarantee=ExactlyOnce(),
    late="dead-letter",
    store=STORE,
)
def count(window: Window, current: WindowSummary | None, sample: MetricSample) -> WindowSummary:
    if REDUCE_SLEEP:
        time.sleep(REDUCE_SLEEP)  # paces the run so that the kills and rebalances land mid-way
    return summarize(window, current, sample)
