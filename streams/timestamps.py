"""Moments as Kafka keeps them: whole milliseconds since the epoch, UTC."""

from __future__ import annotations

from datetime import UTC, datetime


def epoch_millis(moment: datetime) -> int:
    """``moment`` in epoch milliseconds; a naive datetime is taken as UTC, as Avro's
    ``timestamp-millis`` does."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def iso(millis: int) -> str:
    """Epoch milliseconds as an ISO 8601 UTC moment, for messages."""
    return datetime.fromtimestamp(millis / 1000, UTC).isoformat(timespec="milliseconds")
