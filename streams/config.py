"""Settings: one frozen, validated object read from the environment, rendered to client dicts here only.

Nothing else in the library builds a librdkafka or registry configuration by hand, so defaults
(idempotence, acks) are decided in one place.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from streams.errors import ConfigError

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
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] | None = Field(
        default=None, description="How clients talk to the brokers; SSL / SASL_SSL for TLS"
    )
    kafka_sasl_mechanism: (
        Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "GSSAPI"] | None
    ) = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_ca_location: str | None = Field(
        default=None, description="CA certificate(s) (PEM file) to verify the brokers; system CAs if unset"
    )
    kafka_ssl_certificate_location: str | None = Field(default=None, description="client certificate (mTLS)")
    kafka_ssl_key_location: str | None = Field(default=None, description="client private key (mTLS)")
    kafka_ssl_key_password: SecretStr | None = None
    schema_registry_basic_auth: SecretStr | None = Field(
        default=None, description="user:password for the schema registry"
    )
    schema_registry_ssl_ca_location: str | None = Field(
        default=None, description="CA certificate(s) to verify an https registry"
    )
    streams_tracing: bool = Field(
        default=True,
        description="Trace agents (spans when OTEL_* configures an exporter; otherwise only W3C context "
        "propagation). False removes the tracing middleware altogether.",
    )
    # Named after its variable like every field here: a field called `state_dir` would need an alias,
    # and pydantic-settings would then also read a bare STATE_DIR variable.
    streams_state_dir: Path = Field(
        default=Path(".streams/state"),
        description="Where tables with store='rocksdb' keep their local databases (relative paths are "
        "resolved against the working directory)",
    )
    streams_max_hops: int = Field(
        default=5,
        ge=0,
        description="How often one request may be handed off from specialist to specialist before the "
        "next handoff is refused (0: no handoffs)",
    )

    streams_gc_freeze: bool = Field(
        default=True,
        description="Once a worker process has started (modules imported, app built, topics ready), "
        "move every object then alive out of the garbage collector's reach (gc.freeze), so that its "
        "full collections do not walk them again and again. False leaves the collector as it is.",
    )
    streams_gc_young_threshold: int = Field(
        default=50_000,
        ge=0,
        le=2**31 - 1,
        description="In a process running workers, how many more container objects may be alive than "
        "after the garbage collector's last young collection before it runs the next (Python 3.12's "
        "default is 700, which messages in flight keep reaching with nothing to free). 0 leaves "
        "Python's threshold. Process-wide: it stays after the workers stop.",
    )

    def __init__(self, **values: Any) -> None:
        # A bad environment variable is a user mistake: one line naming it, not a validation traceback.
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ConfigError(_one_line(exc)) from exc

    @property
    def state_dir(self) -> Path:
        """``STREAMS_STATE_DIR``: the root of the local table stores."""
        return self.streams_state_dir

    @model_validator(mode="after")
    def _sasl_needs_a_secured_protocol(self) -> Settings:
        if self.kafka_sasl_mechanism and self.kafka_security_protocol not in ("SASL_PLAINTEXT", "SASL_SSL"):
            raise ValueError(
                "KAFKA_SASL_MECHANISM needs KAFKA_SECURITY_PROTOCOL=SASL_SSL (or SASL_PLAINTEXT)"
            )
        if bool(self.kafka_sasl_username) != bool(self.kafka_sasl_password):
            raise ValueError("KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD go together")
        return self

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
        tls = {
            "ssl.ca.location": self.kafka_ssl_ca_location,
            "ssl.certificate.location": self.kafka_ssl_certificate_location,
            "ssl.key.location": self.kafka_ssl_key_location,
            "ssl.key.password": self.kafka_ssl_key_password.get_secret_value()
            if self.kafka_ssl_key_password
            else None,
        }
        conf.update({name: value for name, value in tls.items() if value})
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
        if self.schema_registry_ssl_ca_location:
            conf["ssl.ca.location"] = self.schema_registry_ssl_ca_location
        return conf


def _one_line(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        name = "_".join(str(part) for part in error["loc"]).upper()
        message = error["msg"].removeprefix("Value error, ")
        problems.append(f"{name}: {message}" if name else message)
    return "invalid settings: " + "; ".join(problems)
