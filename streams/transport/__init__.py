"""Kafka client layer: the only place that calls confluent-kafka's Producer and Consumer."""
