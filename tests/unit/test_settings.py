import pytest

from streams import ConfigError, Settings
from streams.transport import clients

pytestmark = pytest.mark.unit


def test_tls_and_sasl_settings_reach_every_client_config() -> None:
    settings = Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="svc",
        kafka_sasl_password="secret",
        kafka_ssl_ca_location="/etc/ca.pem",
        schema_registry_ssl_ca_location="/etc/registry-ca.pem",
    )
    for config in (settings.producer_config(), settings.consumer_config("g"), settings.admin_config()):
        assert config["security.protocol"] == "SASL_SSL"
        assert config["sasl.mechanism"] == "SCRAM-SHA-512"
        assert (config["sasl.username"], config["sasl.password"]) == ("svc", "secret")
        assert config["ssl.ca.location"] == "/etc/ca.pem"
        assert "ssl.key.location" not in config, "unset TLS fields stay librdkafka's defaults"
    assert settings.registry_config()["ssl.ca.location"] == "/etc/registry-ca.pem"
    assert "secret" not in repr(settings), "secrets never show in logs"


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"KAFKA_TIMEOUT": "-1"}, "invalid settings: KAFKA_TIMEOUT: Input should be greater than 0"),
        ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "KAFKA_SECURITY_PROTOCOL: Input should be 'PLAINTEXT'"),
        ({"KAFKA_SASL_MECHANISM": "PLAIN"}, "KAFKA_SASL_MECHANISM needs KAFKA_SECURITY_PROTOCOL"),
        # Past what gc.set_threshold takes: refused here, not with an OverflowError at start-up.
        ({"STREAMS_GC_YOUNG_THRESHOLD": str(2**40)}, "STREAMS_GC_YOUNG_THRESHOLD: Input should be less"),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "svc"},
            "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD go together",
        ),
    ],
)
def test_a_bad_environment_is_one_config_error_line(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], message: str
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        Settings()
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_transactional_producer_sends_at_once_and_retries_a_busy_coordinator_soon(
    producer_configs: list[dict[str, object]],
) -> None:
    clients.async_producer(Settings(), transactional_id="engine.w1")
    clients.async_producer(Settings())
    transactional, plain = producer_configs
    # CONCURRENT_TRANSACTIONS right after a commit clears within about a millisecond: retrying after
    # librdkafka's default 100 ms cost a one-at-a-time workflow 100 ms each time it happened.
    assert int(str(transactional["retry.backoff.ms"])) <= 10
    assert transactional["linger.ms"] == 0, "the commit flushes the outputs anyway: waiting only delays"
    assert plain["linger.ms"] == 5, "other producers keep batching"
    assert "retry.backoff.ms" not in plain
