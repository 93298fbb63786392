"""The HTTP endpoint of a worker process: ``/metrics`` (Prometheus text format), ``/health`` and ``/ready``.

Standard library only, served from daemon threads so a stuck scrape can never keep the process alive
or block the workers' loop. It owns the socket and nothing else: what it serves comes from a metrics
registry and a readiness function handed to it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from streams.errors import ConfigError
from streams.telemetry.health import Readiness

log = logging.getLogger("streams.telemetry")

_TEXT = "text/plain; charset=utf-8"


class TelemetryServer:
    """Binds on construction (so a taken port fails at once), serves after :meth:`start`."""

    def __init__(
        self,
        registry: CollectorRegistry,
        readiness: Callable[[], Readiness],
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        handler = _handler_class(registry, readiness)
        try:
            self._server = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            raise ConfigError(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}") from exc
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="telemetry-http", daemon=True)

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        """The bound port (the one picked, when asked for port 0)."""
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        self._thread.start()
        log.info("serving metrics on %s/metrics (health: /health, readiness: /ready)", self.url)

    def close(self) -> None:
        """Stop serving and release the port; requests in progress finish on their own threads."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()


def _handler_class(
    registry: CollectorRegistry, readiness: Callable[[], Readiness]
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            try:
                status, body, content_type = _respond(self.path.split("?", 1)[0], registry, readiness)
            except Exception as exc:  # a broken collector must not leave the scraper without an answer
                log.exception("telemetry endpoint %s failed", self.path)
                status, body, content_type = 500, f"{type(exc).__name__}: {exc}\n".encode(), _TEXT
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("%s %s", self.address_string(), format % args)

    return Handler


def _respond(
    path: str, registry: CollectorRegistry, readiness: Callable[[], Readiness]
) -> tuple[int, bytes, str]:
    if path == "/metrics":
        return 200, generate_latest(registry), CONTENT_TYPE_LATEST
    if path == "/health":
        return 200, b"ok\n", _TEXT
    if path == "/ready":
        state = readiness()
        return (200 if state.ready else 503), f"{state.reason}\n".encode(), _TEXT
    return 404, b"not found: try /metrics, /health or /ready\n", _TEXT
