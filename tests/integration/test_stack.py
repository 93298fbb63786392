"""The launcher against real Java processes: the session's single-node stack, and the 3-node cluster."""

from __future__ import annotations

import json
import os
import urllib.request
import uuid

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from streams.config import Settings
from streams.stack import LocalStack

pytestmark = pytest.mark.integration

external = pytest.mark.skipif(
    bool(os.environ.get("KAFKA_BOOTSTRAP_SERVERS")), reason="an external cluster is configured"
)


@external
def test_session_stack_is_reported_running_and_up_is_idempotent(settings: Settings) -> None:
    stack = LocalStack()
    statuses = {s.name: s for s in stack.status()}
    assert statuses["kafka"].running and statuses["kafka"].pid is not None
    assert statuses["registry"].running and statuses["registry"].address == settings.schema_registry_url
    lines: list[str] = []
    assert stack.up(progress=lines.append) is False
    assert lines and lines[0].startswith("already running")
    assert {s.pid for s in stack.status()} == {s.pid for s in statuses.values()}


@external
def test_registry_defaults_to_backward_and_keeps_its_journal_forever(settings: Settings) -> None:
    with urllib.request.urlopen(settings.schema_registry_url + "/config", timeout=10) as response:
        assert json.load(response)["compatibilityLevel"] == "BACKWARD"
    admin = AdminClient(settings.admin_config())
    journal = ConfigResource("topic", "kafkasql-journal")
    configs = admin.describe_configs([journal])[journal].result(timeout=10)
    assert configs["retention.ms"].value == "-1"


def _exercise_cluster(bootstrap_servers: str) -> None:
    # A function of its own so every client is gone before the cluster stops: a live client would
    # keep reconnecting (and logging) while the brokers shut down.
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    cluster = admin.describe_cluster(request_timeout=10).result(timeout=15)
    assert sorted(node.id for node in cluster.nodes) == [1, 2, 3]
    topic = f"test.stack.cluster.{uuid.uuid4().hex[:8]}"
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=3)])[topic].result(30)
    metadata = admin.list_topics(topic, timeout=10).topics[topic]
    assert all(len(p.replicas) == 3 for p in metadata.partitions.values())
    producer = Producer({"bootstrap.servers": bootstrap_servers, "acks": "all"})
    producer.produce(topic, key=b"k", value=b"v")
    assert producer.flush(15) == 0
    consumer = Consumer(
        {"bootstrap.servers": bootstrap_servers, "group.id": f"g-{topic}", "auto.offset.reset": "earliest"}
    )
    try:
        consumer.subscribe([topic])
        message = None
        for _ in range(30):
            message = consumer.poll(1.0)
            if message is not None and message.error() is None:
                break
        assert message is not None and message.value() == b"v"
    finally:
        consumer.close()
    admin.delete_topics([topic])[topic].result(30)


@external
def test_three_node_cluster(settings: Settings) -> None:
    stack = LocalStack(cluster=True)
    started = stack.up(timeout=240.0, progress=lambda line: print(f"[cluster] {line}", flush=True))
    try:
        _exercise_cluster(stack.bootstrap_servers)
        # The single-node stack is independent and still up.
        assert all(s.running for s in LocalStack().status())
    finally:
        if started:
            assert set(stack.down()) == {"registry", "kafka-1", "kafka-2", "kafka-3"}
            assert not any(s.running for s in stack.status())
