"""Where the agent watch reads and writes, and when it calls an agent unwell, from ``STREAMS_WATCH_*``.

One frozen object shared by the watch app (``agents/watch.py``) and ``streams monitor``, so both
find the same topics from the same environment. The heartbeat topic is the workers' own setting,
``STREAMS_HEARTBEAT_TOPIC`` (see :class:`~streams.telemetry.config.TelemetryConfig`).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from streams.errors import ConfigError
from streams.monitoring.agent_rules import Bounds

DEFAULT_STATUS_TOPIC = "streams.agent-status"
DEFAULT_ALERTS_TOPIC = "streams.alerts"
DEFAULT_WORKFLOW_STATUS_TOPIC = "streams.workflow-status"
DEFAULT_WORKFLOW_PARTITIONS = 6  # App.workflow's default

_WORKFLOW_TOPIC = re.compile(r"^([A-Za-z0-9._-]+\.events)(?::([1-9][0-9]*))?$")


class WatchSettings(BaseSettings):
    """Every field can be set from ``STREAMS_WATCH_<FIELD>`` (e.g. ``STREAMS_WATCH_DOWN_AFTER=15``)."""

    model_config = SettingsConfigDict(
        frozen=True, extra="ignore", case_sensitive=False, env_prefix="STREAMS_WATCH_"
    )

    app: str = Field(default="streams-watch", min_length=1, description="The watch app's name")
    status_topic: str = Field(default=DEFAULT_STATUS_TOPIC, min_length=1)
    alerts_topic: str = Field(default=DEFAULT_ALERTS_TOPIC, min_length=1)
    workflow_status_topic: str = Field(default=DEFAULT_WORKFLOW_STATUS_TOPIC, min_length=1)
    workflows: str = Field(
        default="",
        description="Workflow event topics to count runs of, comma-separated: <app>.<workflow>.events, "
        "with :<partitions> when not 6",
    )
    down_after: float = Field(default=30.0, gt=0, description="Seconds without a heartbeat: agent down")
    forget_after: float = Field(default=3600.0, gt=0, description="Seconds until a silent worker is dropped")
    lag_rising_beats: int = Field(default=3, ge=1, description="Beats in a row of growing lag: alert")
    max_error_rate: float = Field(default=1.0, gt=0, description="Failed attempts per second: alert")

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            problems = "; ".join(
                f"STREAMS_WATCH_{'_'.join(map(str, error['loc'])).upper()}: "
                + error["msg"].removeprefix("Value error, ")
                for error in exc.errors()
            )
            raise ConfigError(f"invalid agent watch settings: {problems}") from exc

    @field_validator("workflows")
    @classmethod
    def _workflow_topics(cls, value: str) -> str:
        for entry in _entries(value):
            if not _WORKFLOW_TOPIC.match(entry):
                raise ValueError(
                    f"{entry!r} is not a workflow event topic (<app>.<workflow>.events[:partitions])"
                )
        return value

    def workflow_topics(self) -> list[tuple[str, int]]:
        """(name, partitions) of each workflow event topic to count."""
        found = []
        for entry in _entries(self.workflows):
            match = _WORKFLOW_TOPIC.match(entry)
            if match is not None:
                found.append((match.group(1), int(match.group(2) or DEFAULT_WORKFLOW_PARTITIONS)))
        return found

    def bounds(self) -> Bounds:
        return Bounds(
            down_after=self.down_after,
            forget_after=self.forget_after,
            lag_rising_beats=self.lag_rising_beats,
            max_error_rate=self.max_error_rate,
        )


def _entries(value: str) -> list[str]:
    return [entry.strip() for entry in value.split(",") if entry.strip()]


__all__ = [
    "DEFAULT_ALERTS_TOPIC",
    "DEFAULT_STATUS_TOPIC",
    "DEFAULT_WORKFLOW_STATUS_TOPIC",
    "WatchSettings",
]
