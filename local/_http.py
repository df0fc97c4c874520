"""A small threaded HTTP server for the local hosts, bound to 127.0.0.1 and stoppable at once.

`LocalHTTPServer` serves in a background thread; `stop` ends the loop and also closes the
keep-alive connections still open, so no handler thread or client socket lingers. `RequestHandler`
adds body reading and one-call responses over HTTP/1.1 to `BaseHTTPRequestHandler`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from dagster_pipes_cloud.local._process import LOCALHOST

logger = logging.getLogger(__name__)


class LocalHTTPServer(ThreadingHTTPServer):
    """A `ThreadingHTTPServer` on 127.0.0.1 (`port` 0: any free port) run by `start` in a thread."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 1024
    """Connections waiting to be accepted (socketserver's default, 5, resets a burst of
    connections such as a fan-out of 100 invocations opens at once)."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], port: int = 0) -> None:
        super().__init__((LOCALHOST, port), handler)
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port the server listens on."""
        port: int = self.server_address[1]
        return port

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT`."""
        return f"http://{LOCALHOST}:{self.port}"

    def start(self) -> None:
        """Serve in a daemon thread until `stop`."""
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving, close the listening socket and every open connection. Idempotent."""
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
            self._thread = None
        self.server_close()
        with self._connections_lock:
            connections = list(self._connections)
            self._connections.clear()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                connection.close()

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        # Small responses go out at once (no Nagle wait for the client's delayed ACK).
        with contextlib.suppress(OSError):
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._connections_lock:
            self._connections.add(connection)
        return connection, address

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("error while serving %s", client_address, exc_info=True)


class RequestHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 handler base: `read_body` and `respond`/`respond_json` write a whole response."""

    protocol_version = "HTTP/1.1"

    def read_body(self) -> bytes:
        """The whole request body, by Content-Length or chunked (empty when there is none)."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():  # trailers, up to the blank line
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def respond(
        self,
        status: int,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> None:
        """Send a status, headers and body; a client that went away is ignored."""
        try:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if status != 204:
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if body and status != 204:
                self.wfile.write(body)
            self.wfile.flush()
        except OSError:
            self.close_connection = True

    def respond_json(
        self, status: int, value: object, headers: Mapping[str, str] | None = None
    ) -> None:
        """Send `value` as a JSON body."""
        self.respond(status, json.dumps(value).encode(), headers)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)
