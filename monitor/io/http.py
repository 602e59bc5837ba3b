"""HTTP edge: /metrics (Prometheus), /healthz, /readyz, the dashboard (/) and its JSON API.

A thread of the standard library's ``ThreadingHTTPServer``; every handler only reads the engine views
the consume loop publishes (never the engines, never under the service lock). JSON routes other than
/api/status are passed in as ``api`` (path -> function of the query parameters); the dashboard's static
files come from ``monitor.dashboard``. Basic auth (if configured) protects everything except the probes.
"""

from __future__ import annotations

import base64
import hmac
import ssl
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from monitor.dashboard import static_file
from monitor.errors import ConfigError

ApiRoute = Callable[[dict[str, list[str]]], Any]

# The loop polls at least every batch_max_ms; a stalled loop for this long is unhealthy.
STALL_SECONDS = 60.0


class MonitorHTTPServer:
    """Serves the registry and health of one monitor process on ``host:port`` (port 0 picks a free one)."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        host: str,
        port: int,
        ready: Callable[[], bool],
        last_poll: Callable[[], float],
        status: Callable[[], dict[str, Any]],
        tls_cert_file: str = "",
        tls_key_file: str = "",
        basic_auth: tuple[str, str] | None = None,
        api: dict[str, ApiRoute] | None = None,
    ) -> None:
        self.registry = registry
        self.api = dict(api or {})
        self._expected_auth = (
            "Basic " + base64.b64encode(f"{basic_auth[0]}:{basic_auth[1]}".encode()).decode() if basic_auth else None
        )
        self.ready = ready
        self.last_poll = last_poll
        self.status = status
        context: ssl.SSLContext | None = None
        if tls_cert_file:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            try:
                context.load_cert_chain(tls_cert_file, tls_key_file)
            except (ssl.SSLError, OSError) as exc:
                raise ConfigError("http.tls_cert_file", f"cannot load the certificate and key: {exc}") from None
        try:
            self.httpd = ThreadingHTTPServer((host, port), self._handler())
        except OSError as exc:
            problem = f"cannot listen on {host}:{port}: {exc.strerror or exc} (choose another port, or 0 for any)"
            raise ConfigError("http.port", problem) from None
        self.httpd.daemon_threads = True
        if context is not None:
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = int(self.httpd.server_address[1])
        self._thread: threading.Thread | None = None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            head = False  # a HEAD request: the same status and headers as GET, no body

            def _send(self, code: int, body: bytes, content_type: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                if not self.head:
                    self.wfile.write(body)

            def _authorized(self) -> bool:
                expected = server._expected_auth
                if expected is None:
                    return True
                given = self.headers.get("Authorization", "")
                return hmac.compare_digest(given.encode(), expected.encode())

            def do_HEAD(self) -> None:
                self.head = True
                self.do_GET()

            def do_GET(self) -> None:
                path, _, query = self.path.partition("?")
                if path not in ("/healthz", "/readyz") and not self._authorized():
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="model-monitor"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if path == "/metrics":
                    self._send(200, generate_latest(server.registry), CONTENT_TYPE_LATEST)
                elif path == "/healthz":
                    stalled = server.last_poll() and time.time() - server.last_poll() > STALL_SECONDS
                    self._send(503 if stalled else 200, b"stalled\n" if stalled else b"ok\n", "text/plain")
                elif path == "/readyz":
                    ok = server.ready()
                    self._send(200 if ok else 503, b"ready\n" if ok else b"not ready\n", "text/plain")
                elif path == "/api/status":
                    self._send(200, orjson.dumps(server.status()), "application/json")
                elif path in server.api:
                    try:
                        doc = server.api[path](parse_qs(query))
                    except ValueError as exc:
                        self._send(400, orjson.dumps({"error": str(exc)}), "application/json")
                        return
                    self._send(200, orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY), "application/json")
                elif (page := static_file(path)) is not None:
                    self._send(200, page[0], page[1])
                else:
                    self._send(404, b"not found\n", "text/plain")

        return Handler

    def start(self) -> MonitorHTTPServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="monitor-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
