"""agents/monitoring.py's pipeline under a name of the test's own, run by `streams run` in worker
processes that the monitoring tests kill. CHAOS_SILENT_AFTER: seconds of silence the "silent" rule
waits for."""

from __future__ import annotations

import os

from agents.monitoring import build

app = build(
    os.environ["CHAOS_PREFIX"].replace(".", "-"), silent_after=float(os.environ["CHAOS_SILENT_AFTER"])
)
