import pytest

from streams import App, ConfigError, Settings, Topic
from streams.events import TaskCompleted, TaskRequested

pytestmark = pytest.mark.unit


def test_topic_declaration_renders_broker_config() -> None:
    topic = Topic(
        "a.b",
        value=TaskRequested,
        cleanup_policy="compact",
        retention_ms=1000,
        config={"segment.ms": "60000"},
    )
    assert topic.value_subject == "a.b-value"
    assert topic.broker_config() == {
        "cleanup.policy": "compact",
        "retention.ms": "1000",
        "segment.ms": "60000",
    }


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"name": "bad name"}, "illegal topic name"),
        ({"name": "x" * 250}, "illegal topic name"),
        ({"partitions": 0}, "partitions"),
        ({"replication": 0}, "replication"),
        ({"key": int}, "key must be"),
        ({"value": dict}, "Record subclass"),
    ],
)
def test_bad_declarations_are_config_errors(options: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"name": "ok", "value": TaskRequested, **options}
    with pytest.raises(ConfigError, match=message):
        Topic(**arguments)  # type: ignore[arg-type]


def test_app_refuses_conflicting_redeclaration() -> None:
    app = App("demo", Settings())
    first = app.topic("t", value=TaskRequested, partitions=3)
    assert app.topic("t", value=TaskRequested, partitions=3) == first
    with pytest.raises(ConfigError, match="declared twice"):
        app.topic("t", value=TaskCompleted, partitions=3)


def test_producer_is_idempotent_and_secrets_stay_hidden() -> None:
    settings = Settings(kafka_sasl_password="hunter2", kafka_sasl_username="u")  # type: ignore[arg-type]
    conf = settings.producer_config()
    assert conf["enable.idempotence"] is True
    assert conf["acks"] == "all"
    assert conf["sasl.password"] == "hunter2"
    assert "hunter2" not in repr(settings)
    consumer = settings.consumer_config("g")
    assert consumer["enable.auto.commit"] is False
    assert consumer["isolation.level"] == "read_committed"


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "10.0.0.1:9092")
    monkeypatch.setenv("SCHEMA_REGISTRY_URL", "http://reg:8081")
    settings = Settings()
    assert settings.producer_config()["bootstrap.servers"] == "10.0.0.1:9092"
    assert settings.registry_config() == {"url": "http://reg:8081"}
