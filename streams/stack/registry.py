"""Apicurio Registry 3.0.x (Quarkus legacy jar) with Kafka-backed ``kafkasql`` storage.

Schemas live in the ``kafkasql-journal`` topic of the stack's own Kafka, so they survive restarts and a
wiped registry process loses nothing. Clients talk to it through the Confluent-compatible API
(``/apis/ccompat/v7``). Everything is configured with system properties, which outrank both the jar's
``application.properties`` and any ``APICURIO_*``/``QUARKUS_*`` variables in the caller's environment.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

from streams.errors import StackError
from streams.stack.layout import CCOMPAT_PATH, LOOPBACK, REGISTRY, StackPaths

DEFAULT_COMPATIBILITY = "BACKWARD"


def registry_properties(paths: StackPaths) -> dict[str, str]:
    """The Quarkus/Apicurio settings that differ from the app's defaults."""
    topology = paths.topology
    data = paths.data / REGISTRY
    return {
        "quarkus.http.host": LOOPBACK,
        "quarkus.http.port": str(topology.registry_port),
        "apicurio.storage.kind": "kafkasql",
        "apicurio.kafkasql.bootstrap.servers": topology.bootstrap_servers,
        # `apicurio.kafkasql.topic.*` become configs of the topics the registry creates. The journal IS the
        # registry's database: the broker's default 7-day retention would silently drop old schemas.
        "apicurio.kafkasql.topic.retention.ms": "-1",
        # Startup polls the (usually empty) snapshots topic once for this long before serving; 5 s by
        # default. Loopback needs far less, and a snapshot missed here only means replaying the journal.
        "apicurio.kafkasql.consumer.poll.timeout": "2000",
        # Log to a capped file, not the console (stdout is only captured for JVM crashes).
        "quarkus.log.console.enable": "false",
        "quarkus.log.file.enable": "true",
        "quarkus.log.file.path": str(paths.log_file(REGISTRY)),
        # The app bundles quarkus-logging-json, which makes the file JSON by default; keep it readable.
        "quarkus.log.file.json": "false",
        "quarkus.log.file.format": "%d{yyyy-MM-dd HH:mm:ss,SSS} %-5p [%c{3.}] (%t) %s%e%n",
        "quarkus.log.file.rotation.max-file-size": "20M",
        "quarkus.log.file.rotation.max-backup-index": "3",
        # One line per readiness poll and per request is noise for a dev registry.
        "quarkus.http.access-log.enabled": "false",
        # The app defaults both to /tmp; keep the stack's files inside .stack/.
        "apicurio.storage.snapshot.location": str(data / "snapshots"),
        "apicurio.import.work-dir": str(data / "import"),
    }


def server_command(java: Path, paths: StackPaths, runner: Path) -> list[str]:
    props = [f"-D{key}={value}" for key, value in registry_properties(paths).items()]
    return [
        str(java),
        paths.marker(REGISTRY),
        "-Xms128m",
        "-Xmx512m",
        # C1 only: on a small machine full JIT compilation competes with Quarkus boot for CPU, and the
        # registry serves a few requests per schema (clients cache), so peak throughput does not matter.
        "-XX:TieredStopAtLevel=1",
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        *props,
        "-jar",
        str(runner),
    ]


def _request(method: str, url: str, body: dict[str, str] | None = None, timeout: float = 2.0) -> int:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url,
        data=data,
        method=method,
        headers={"Content-Type": "application/vnd.schemaregistry.v1+json"} if data else {},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return 0


def is_ready(base_url: str) -> bool:
    """The ccompat API answers, which means storage (the Kafka journal) has been loaded."""
    return _request("GET", base_url + CCOMPAT_PATH + "/subjects") == 200


def _get_json(url: str) -> dict[str, str]:
    try:
        with urllib.request.urlopen(url, timeout=2.0) as response:
            body = json.load(response)
    except (urllib.error.URLError, OSError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


def set_global_compatibility(
    base_url: str,
    level: str = DEFAULT_COMPATIBILITY,
    *,
    settle_seconds: float = 30.0,
    request_timeout: float = 10.0,
) -> None:
    """Make every subject default to ``level`` (Apicurio's own default is no rule at all).

    On a restart the registry answers before it has replayed its journal: it then takes the PUT for a
    creation of a rule the journal already holds and refuses it (409), or holds it unanswered until
    the replay is done (no answer within ``request_timeout``). Once the replay catches up the rule
    reads back, or the PUT succeeds as an update; until ``settle_seconds`` pass, try again."""
    url = base_url + CCOMPAT_PATH + "/config"
    deadline = time.monotonic() + settle_seconds
    while True:
        status = _request("PUT", url, {"compatibility": level}, timeout=request_timeout)
        if status == 200:
            return
        if status in (0, 409) and _get_json(url).get("compatibilityLevel") == level:
            return
        if status not in (0, 409) or time.monotonic() >= deadline:
            raise StackError(
                f"registry refused to set global compatibility {level} (HTTP {status or 'error'})"
            )
        time.sleep(0.5)
