"""Settings: one frozen, validated object read from the environment, rendered to client dicts here only.

Nothing else in the library builds a librdkafka or registry configuration by hand, so defaults
(idempotence, acks) are decided in one place.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

# librdkafka's own log lines (connection refused, retries) go through Python logging under this name
# instead of straight to stderr, so applications decide what to show. Without a handler configured
# they are dropped: every failure the library acts on is also raised or logged by the library itself.
KAFKA_CLIENT_LOGGER = logging.getLogger("streams.kafka")
KAFKA_CLIENT_LOGGER.addHandler(logging.NullHandler())

LOCAL_BOOTSTRAP_SERVERS = "127.0.0.1:9092"
LOCAL_REGISTRY_URL = "http://127.0.0.1:8081/apis/ccompat/v7"


class Settings(BaseSettings):
    """Connection settings; every field can be set from the environment variable of the same name."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", case_sensitive=False)

    kafka_bootstrap_servers: str = Field(
        default=LOCAL_BOOTSTRAP_SERVERS,
        description="Kafka bootstrap servers, host:port[,host:port...]",
    )
    schema_registry_url: str = Field(
        default=LOCAL_REGISTRY_URL,
        description="Confluent-compatible schema registry URL (Apicurio: .../apis/ccompat/v7)",
    )
    kafka_timeout: float = Field(
        default=15.0,
        gt=0,
        description="Seconds to wait for the broker on a lookup (metadata, topic checks) before failing; "
        "lower it to fail fast when the broker may be down",
    )
    kafka_security_protocol: str | None = None
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    schema_registry_basic_auth: SecretStr | None = Field(
        default=None, description="user:password for the schema registry"
    )
    streams_tracing: bool = Field(
        default=True,
        description="Trace agents (spans when OTEL_* configures an exporter; otherwise only W3C context "
        "propagation). False removes the tracing middleware altogether.",
    )

    def kafka_common(self) -> dict[str, Any]:
        """Settings shared by every Kafka client (producer, consumer, admin)."""
        conf: dict[str, Any] = {
            "bootstrap.servers": self.kafka_bootstrap_servers,
            "logger": KAFKA_CLIENT_LOGGER,
        }
        if self.kafka_security_protocol:
            conf["security.protocol"] = self.kafka_security_protocol
        if self.kafka_sasl_mechanism:
            conf["sasl.mechanism"] = self.kafka_sasl_mechanism
        if self.kafka_sasl_username:
            conf["sasl.username"] = self.kafka_sasl_username
        if self.kafka_sasl_password:
            conf["sasl.password"] = self.kafka_sasl_password.get_secret_value()
        return conf

    def producer_config(self, **overrides: Any) -> dict[str, Any]:
        """An idempotent producer: acks=all and no duplicates or reordering on internal retries."""
        conf = self.kafka_common()
        conf.update(
            {
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "compression.type": "lz4",
            }
        )
        conf.update(overrides)
        return conf

    def consumer_config(self, group_id: str, **overrides: Any) -> dict[str, Any]:
        """A consumer that never commits behind the caller's back."""
        conf = self.kafka_common()
        conf.update(
            {
                "group.id": group_id,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
            }
        )
        conf.update(overrides)
        return conf

    def admin_config(self) -> dict[str, Any]:
        return self.kafka_common()

    def registry_config(self) -> dict[str, Any]:
        conf: dict[str, Any] = {"url": self.schema_registry_url}
        if self.schema_registry_basic_auth:
            conf["basic.auth.user.info"] = self.schema_registry_basic_auth.get_secret_value()
        return conf
