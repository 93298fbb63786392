"""Pools' loads from the heartbeat topic, for least-load routing (:mod:`streams.routing`).

Follows the heartbeat topic on a thread of its own, from a few beats back, and keeps each worker's
latest beat. A pool (a consumer group) is in rotation while one of its workers is live: it beat
within three of its own intervals and did not say STOPPED. Its load is the messages its live workers
hold in flight plus their lag, as of the newest of those beats. Clocks of the workers and the
routing process are taken to agree (as for deadlines).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from confluent_kafka import Message

from streams.app import App
from streams.config import Settings
from streams.errors import StreamsError
from streams.events import AgentHeartbeat, WorkerState
from streams.routing import PoolLoad
from streams.serde.codec import RecordDecoder
from streams.serde.registry import SchemaRegistry
from streams.timestamps import epoch_millis
from streams.transport.follower import TopicFollower

log = logging.getLogger("streams.telemetry")

_MISSED_BEATS = 3  # a worker silent for this many of its intervals is taken for gone
_DEFAULT_INTERVAL_MS = 10_000  # for beats that do not say theirs


class BeatTable:
    """Each worker's latest heartbeat, and what they add up to per pool (no Kafka, no clock)."""

    def __init__(self) -> None:
        self._beats: dict[str, dict[str, AgentHeartbeat]] = {}  # group -> worker -> latest beat
        self._lock = threading.Lock()  # beats arrive on the follower's thread

    def add(self, beat: AgentHeartbeat) -> None:
        with self._lock:
            workers = self._beats.setdefault(beat.agent, {})
            before = workers.get(beat.worker_id)
            if before is None or before.sent_at <= beat.sent_at:
                workers[beat.worker_id] = beat

    def load(self, group_id: str, now_ms: int) -> PoolLoad | None:
        with self._lock:
            beats = list(self._beats.get(group_id, {}).values())
        if not beats:
            return None
        live = [beat for beat in beats if _live(beat, now_ms)]
        if not live:
            return PoolLoad(live=False, load=0)
        return PoolLoad(
            live=True,
            load=sum(beat.in_flight + beat.lag for beat in live),
            as_of_ms=max(epoch_millis(beat.sent_at) for beat in live),
        )


class HeartbeatLoads:
    """A :class:`~streams.routing.LoadSource` fed by the heartbeat topic ``topic``."""

    def __init__(self, settings: Settings, registry: SchemaRegistry, topic: str) -> None:
        self._decode = RecordDecoder(registry, AgentHeartbeat)
        self._follower = TopicFollower(settings, topic, self._on_record)
        self.beats = BeatTable()

    def start(self, history_ms: int = _MISSED_BEATS * _DEFAULT_INTERVAL_MS) -> None:
        """Blocking: read the beats of the last ``history_ms``, then follow new ones."""
        self._follower.start(since_ms=int(time.time() * 1000) - history_ms)

    def stop(self) -> None:
        self._follower.stop()

    def load(self, group_id: str) -> PoolLoad | None:
        return self.beats.load(group_id, int(time.time() * 1000))

    def _on_record(self, message: Message) -> None:
        try:
            beat: AgentHeartbeat = self._decode(message.value())
        except StreamsError as exc:
            log.warning("unreadable heartbeat skipped: %s", exc)
            return
        self.beats.add(beat)


def _live(beat: AgentHeartbeat, now_ms: int) -> bool:
    if beat.state is WorkerState.STOPPED:
        return False
    interval = beat.interval_ms or _DEFAULT_INTERVAL_MS
    return now_ms - epoch_millis(beat.sent_at) <= _MISSED_BEATS * interval


def follow_loads(
    app: App, settings: Settings, registry: SchemaRegistry, topic: str
) -> Callable[[], None] | None:
    """Start feeding ``app.routing`` from the heartbeat topic ``topic`` if the app routes between
    pools and nothing feeds it yet (blocking). Returns what stops it, or None if nothing started."""
    routes = any(len(specialist.pools) > 1 for specialist in app.specialists.values())
    if not routes or app.routing.source is not None:
        return None
    loads = HeartbeatLoads(settings, registry, topic)
    try:
        loads.start()
    except StreamsError as exc:
        log.warning("routing without loads (%s): requests are spread evenly over the pools", exc)
        return None
    app.routing.source = loads

    def stop() -> None:
        if app.routing.source is loads:
            app.routing.source = None
        loads.stop()

    return stop
