"""docker-compose.yml describes the same stack as the launcher: checked structurally, without Docker."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.config import LOCAL_BOOTSTRAP_SERVERS, LOCAL_REGISTRY_URL
from streams.stack.fetch import read_versions

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    result: dict[str, Any] = compose["services"]
    return result


def env(service: dict[str, Any]) -> dict[str, str]:
    """Environment as a dict, whichever of the two compose spellings (map or KEY=VALUE list) is used."""
    raw = service.get("environment", {})
    if isinstance(raw, list):
        return dict(item.split("=", 1) for item in raw)
    return {key: str(value) for key, value in raw.items()}


def published(service: dict[str, Any]) -> dict[int, tuple[str, int]]:
    """container port -> (host ip, host port) for every "ip:host:container" entry."""
    result = {}
    for entry in service.get("ports", []):
        host_ip, host_port, container = str(entry).rsplit(":", 2)
        result[int(container)] = (host_ip, int(host_port))
    return result


def test_services_present(services: dict[str, Any]) -> None:
    assert set(services) >= {"kafka", "registry", "jaeger"}


def test_images_are_pinned_to_the_launcher_versions(services: dict[str, Any]) -> None:
    versions = read_versions(REPO / "infra" / "pom.xml")
    assert services["kafka"]["image"] == f"apache/kafka:{versions.kafka}"
    assert services["registry"]["image"] == f"apicurio/apicurio-registry:{versions.apicurio}"
    image, _, tag = services["jaeger"]["image"].partition(":")
    assert image == "jaegertracing/all-in-one"
    assert tag and tag != "latest"


def test_kafka_is_a_single_kraft_node(services: dict[str, Any]) -> None:
    kafka = env(services["kafka"])
    assert kafka["KAFKA_PROCESS_ROLES"] == "broker,controller"
    node_id = kafka["KAFKA_NODE_ID"]
    assert kafka["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{node_id}@kafka:")
    assert "CONTROLLER" in kafka["KAFKA_LISTENERS"]
    assert len(kafka["CLUSTER_ID"]) == 22
    assert kafka["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert kafka["KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"] == "0"
    for key in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ):
        assert kafka[key] == "1", key


def test_kafka_is_reachable_where_settings_expect_it(services: dict[str, Any]) -> None:
    kafka = env(services["kafka"])
    advertised = dict(entry.split("://", 1)[::-1] for entry in kafka["KAFKA_ADVERTISED_LISTENERS"].split(","))
    host_listener = advertised[LOCAL_BOOTSTRAP_SERVERS]
    _, _, port = LOCAL_BOOTSTRAP_SERVERS.rpartition(":")
    assert f"{host_listener}://:{port}" in kafka["KAFKA_LISTENERS"].split(",")
    assert published(services["kafka"])[int(port)] == ("127.0.0.1", int(port))


def test_registry_uses_kafkasql_on_the_kafka_service(services: dict[str, Any]) -> None:
    registry = env(services["registry"])
    kafka = env(services["kafka"])
    assert registry["APICURIO_STORAGE_KIND"] == "kafkasql"
    bootstrap = registry["APICURIO_KAFKASQL_BOOTSTRAP_SERVERS"]
    host, _, port = bootstrap.partition(":")
    assert host == "kafka"
    # It must be a listener the broker advertises under the service name, or the registry cannot connect.
    assert any(entry.endswith(f"://{bootstrap}") for entry in kafka["KAFKA_ADVERTISED_LISTENERS"].split(","))
    assert f":{port}" in kafka["KAFKA_LISTENERS"]
    assert "-Dapicurio.kafkasql.topic.retention.ms=-1" in registry["JAVA_OPTS_APPEND"].split()


def test_registry_is_published_where_settings_expect_it(services: dict[str, Any]) -> None:
    port = int(LOCAL_REGISTRY_URL.split("//", 1)[1].split("/", 1)[0].rpartition(":")[2])
    assert published(services["registry"])[8080] == ("127.0.0.1", port)


def test_ports_are_published_on_loopback_only(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for host_ip, _port in published(service).values():
            assert host_ip == "127.0.0.1", name
        assert len(published(service)) == len(service.get("ports", [])), f"{name}: unparsed port entry"


def test_jaeger_takes_otlp_and_serves_its_ui(services: dict[str, Any]) -> None:
    ports = published(services["jaeger"])
    assert {4317, 4318, 16686} <= set(ports)
    assert env(services["jaeger"]).get("COLLECTOR_OTLP_ENABLED") == "true"


def test_the_documented_otlp_settings_reach_jaeger_over_http(services: dict[str, Any]) -> None:
    # The exporter streams[otlp] installs speaks OTLP over HTTP/protobuf (test_tracing_export.py):
    # Jaeger's port 4318, so the endpoint users are told to set must be that port as published here.
    ports = published(services["jaeger"])
    for document in ("docker-compose.yml", "docs/telemetry.md"):
        text = (REPO / document).read_text()
        endpoints = set(re.findall(r"OTEL_EXPORTER_OTLP_ENDPOINT=(\S+)", text))
        assert endpoints == {f"http://127.0.0.1:{ports[4318][1]}"}, document
        assert "OTEL_TRACES_EXPORTER=otlp" in text, document


def test_registry_waits_for_a_healthy_kafka(services: dict[str, Any]) -> None:
    assert services["registry"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    for name in ("kafka", "registry"):
        check = services[name]["healthcheck"]
        assert check["test"][0] in {"CMD", "CMD-SHELL"}
        assert check["retries"] >= 1
    assert "9092" in services["kafka"]["healthcheck"]["test"][1]
    assert "/apis/ccompat/v7" in services["registry"]["healthcheck"]["test"][1]
