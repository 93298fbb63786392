"""Readiness of a worker process: what ``/ready`` answers, and why when the answer is no."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from streams.events import WorkerState
from streams.telemetry.probe import WorkerSnapshot


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reason: str


def readiness(snapshots: Sequence[WorkerSnapshot]) -> Readiness:
    """Ready when every agent's worker runs, has not failed and owns at least one partition.

    A worker without partitions is not serving its agent (still joining its group, or one worker more
    than the topic has partitions), so the process is not ready on its behalf either.
    """
    if not snapshots:
        return Readiness(False, "no agents")
    problems: list[str] = []
    for snapshot in snapshots:
        if snapshot.failure is not None:
            problems.append(f"agent {snapshot.agent} failed: {snapshot.failure}")
        elif snapshot.state != WorkerState.RUNNING:
            problems.append(f"agent {snapshot.agent} is {snapshot.state.value.lower()}")
        elif not snapshot.assigned:
            problems.append(f"agent {snapshot.agent} has no partitions assigned")
    if problems:
        return Readiness(False, "; ".join(problems))
    return Readiness(True, f"ready: {len(snapshots)} agent(s) consuming")
