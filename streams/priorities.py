"""Priority classes of calls: which request topic a call goes to, and how a specialist shares out its
work between them.

Kafka has no priority queue, so each capability has one request topic per class (see
:class:`~streams.specialists.Specialist`); the specialist's worker consumes them all and starts
higher classes first (:class:`~streams.runtime.lanes.LaneScheduler`), pausing the fetch of lower ones
while a higher one has work (:class:`~streams.worker.processing.Processor`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from streams.errors import ConfigError

Priority = Literal["critical", "high", "normal", "low"]
"""A call's priority class; ``"normal"`` unless the caller says otherwise."""

PRIORITIES: tuple[Priority, ...] = get_args(Priority)
"""Every class, highest first (the rank a worker serves them in)."""

NORMAL: Priority = "normal"


def checked(priority: str) -> Priority:
    """``priority`` as a :data:`Priority`, or a one-line :class:`ConfigError` naming the choices."""
    if priority not in PRIORITIES:
        raise ConfigError(f"unknown priority {priority!r}: use {', '.join(PRIORITIES)}")
    return priority


@dataclass(frozen=True)
class Priorities:
    """How a specialist serves its priority classes.

    Higher classes start first; so that a flood of them cannot starve the rest, each lower class
    that has requests waiting still gets at least ``min_share`` of the requests started (0 makes the
    order strict: a lower class then waits for every higher one to be empty).
    """

    min_share: float = 0.05

    def __post_init__(self) -> None:
        share = self.min_share
        if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 0.25:
            raise ConfigError(f"Priorities: min_share must be a number from 0 to 0.25, got {share!r}")


__all__ = ["NORMAL", "PRIORITIES", "Priorities", "Priority", "checked"]
