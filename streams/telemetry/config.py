"""Telemetry settings of one worker process: the metrics endpoint, heartbeats and lag sampling.

One frozen object read from ``STREAMS_*`` environment variables (the CLI's options override them), so a
deployment turns the endpoint on without code changes. Nothing here starts anything.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_HEARTBEAT_TOPIC = "streams.heartbeats"


class TelemetryConfig(BaseSettings):
    """Every field can be set from ``STREAMS_<FIELD>`` (e.g. ``STREAMS_METRICS_PORT=9464``)."""

    model_config = SettingsConfigDict(
        frozen=True, extra="ignore", case_sensitive=False, env_prefix="STREAMS_"
    )

    metrics_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="Serve /metrics, /health and /ready on this port; 0 picks a free one; unset: no server",
    )
    metrics_host: str = Field(
        default="127.0.0.1",
        description="Interface the endpoint binds to (0.0.0.0 exposes it beyond the host)",
    )
    heartbeat_interval: float = Field(
        default=10.0, ge=0, description="Seconds between AgentHeartbeat events per agent; 0 turns them off"
    )
    heartbeat_topic: str = Field(default=DEFAULT_HEARTBEAT_TOPIC, min_length=1)
    lag_interval: float = Field(
        default=1.0,
        gt=0,
        description="Seconds between librdkafka statistics reports, which carry the high watermarks "
        "consumer lag is computed from",
    )

    scale_drain_within: float = Field(
        default=60.0,
        gt=0,
        description="Seconds within which the recommended worker count (streams_recommended_workers) "
        "should clear an agent's lag",
    )

    @property
    def metrics_enabled(self) -> bool:
        return self.metrics_port is not None

    @property
    def heartbeats_enabled(self) -> bool:
        return self.heartbeat_interval > 0

    @property
    def enabled(self) -> bool:
        return self.metrics_enabled or self.heartbeats_enabled
