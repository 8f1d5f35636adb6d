"""A worker process's HTTP port: Prometheus metrics and a liveness check.

Served from a thread, like prometheus_client's own server, so ``/metrics``
answers even when the event loop does not; ``/healthz`` asks the process,
whose answer (read from timestamps the loop keeps) then says so.
"""

from __future__ import annotations

import errno
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = logging.getLogger("studio.probes")

# Why the process should be restarted, or None while it is alive.
Liveness = Callable[[], str | None]


class ProbeServer:
    def __init__(
        self, port: int, registry: CollectorRegistry, liveness: Liveness, host: str = "0.0.0.0"
    ) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/healthz":
                    problem = liveness()
                    status = 200 if problem is None else 503
                    body = (problem or "ok").encode()
                    content_type = "text/plain; charset=utf-8"
                elif path == "/metrics":
                    status, body, content_type = 200, generate_latest(registry), CONTENT_TYPE_LATEST
                else:
                    status, body, content_type = 404, b"not found", "text/plain; charset=utf-8"
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                """Probes every few seconds are not worth a log line."""

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.address = (str(self._server.server_address[0]), int(self._server.server_address[1]))
        self.port = self.address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="worker-probes", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def serve_probes(
    port: int, host: str, registry: CollectorRegistry, liveness: Liveness
) -> ProbeServer | None:
    """The probe port, or a free one when it is taken (a second worker on one
    machine, logged); None when ``port`` is 0."""
    if not port:
        return None
    try:
        server = ProbeServer(port, registry, liveness, host=host)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        server = ProbeServer(0, registry, liveness, host=host)
        log.warning(
            "probe port in use; serving on a free one", extra={"wanted": port, "port": server.port}
        )
    log.info("metrics and liveness", extra={"url": f"http://{host}:{server.port}/metrics"})
    return server
