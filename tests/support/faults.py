"""`FaultProxy`: a reverse proxy on 127.0.0.1 that answers some requests with an error itself.

Put in front of any HTTP emulator (gcp-storage-emulator, Azurite, moto) so that an SDK's own HTTP
stack, retry policy and error parsing meet real failures. Every request is forwarded to the
upstream unless a fault is due: then the proxy reads the request's body and answers with the
fault's status, headers and body instead, without forwarding (or, for a fault with `landed=True`,
after forwarding it and throwing the upstream's answer away: a request that took effect whose
answer was lost). Faults come from a script (the next
requests, in order) and then from `probability`, drawn from a seeded generator, so a run is
deterministic for a given order of requests. `where` limits which requests may be faulted.

Headers and bodies pass through unchanged, apart from hop-by-hop headers; chunked request bodies
are forwarded whole, responses without a length are streamed back chunked, and client
connections are kept alive. The `Host` header is forwarded as the client sent it, so URLs the
upstream builds from it (resumable uploads, media links) point back at the proxy.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import random
import socket
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

from dagster_pipes_cloud.local._process import LocalService

if TYPE_CHECKING:
    from typing_extensions import Self

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
_NOT_FORWARDED = HOP_BY_HOP | {"content-length", "expect"}
_COPY_BLOCK = 64 * 1024


@dataclass(frozen=True)
class Fault:
    """What the proxy answers instead of forwarding: `status`, `headers` and `body`.

    `drop=True` closes the client's connection without any answer (a reset, as a crashed front end
    would), ignoring the rest. `landed=True` forwards the request first, so it takes effect
    upstream, and throws the upstream's answer away: the client gets the fault instead.
    """

    status: int = 503
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    drop: bool = False
    landed: bool = False


def gcs_error(status: int = 503, message: str | None = None, reason: str = "backendError") -> Fault:
    """A fault shaped like a GCS JSON API error (`{"error": {"code", "message", "errors"}}`)."""
    text = message if message is not None else HTTPStatus(status).phrase
    error = {"code": status, "message": text, "errors": [{"message": text, "reason": reason}]}
    return Fault(
        status,
        json.dumps({"error": error}).encode(),
        {"Content-Type": "application/json; charset=UTF-8"},
    )


def azure_error(status: int = 503, code: str = "ServerBusy", message: str | None = None) -> Fault:
    """A fault shaped like an Azure Storage error: the `x-ms-error-code` header and an XML
    `<Error><Code>..</Code><Message>..</Message></Error>` body."""
    text = escape(message if message is not None else HTTPStatus(status).phrase)
    body = (
        '<?xml version="1.0" encoding="utf-8"?>'
        f"<Error><Code>{escape(code)}</Code><Message>{text}</Message></Error>"
    )
    return Fault(
        status, body.encode(), {"Content-Type": "application/xml", "x-ms-error-code": code}
    )


def s3_error(status: int = 503, code: str = "ServiceUnavailable", message: str = "") -> Fault:
    """A fault shaped like an S3 REST error: an XML `<Error><Code>..</Code>..</Error>` body."""
    text = escape(message or HTTPStatus(status).phrase)
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"<Error><Code>{escape(code)}</Code><Message>{text}</Message></Error>"
    )
    return Fault(status, body.encode(), {"Content-Type": "application/xml"})


DROP = Fault(drop=True)
LOST_ANSWER = Fault(drop=True, landed=True)
"""The request reaches the upstream and takes effect; the client's connection is then closed
without an answer, as when a response is lost on the way back."""

RequestFilter = Callable[[str, str], bool]
"""Called with a request's method and path (with query); True if the request may be faulted."""


@dataclass(frozen=True)
class ProxiedRequest:
    """One request the proxy saw: method, path, the status answered, and whether it was a fault."""

    method: str
    path: str
    status: int
    injected: bool


class FaultProxy(LocalService):
    """A threaded reverse proxy to `upstream` (`http://host:port`) on a free 127.0.0.1 port.

    `fault` (default: a GCS-shaped 503) is answered with `probability` (default 0) to requests that
    `where` accepts (default: all), drawn from `random.Random(seed)`. `fail_next` and `script` queue
    faults for the next accepted requests, ahead of the probability. `counts` and `injected` count
    requests by method; `requests` records each one. A context manager: leaving it stops the server
    and closes its connections.
    """

    def __init__(
        self,
        upstream: str,
        *,
        fault: Fault | None = None,
        probability: float = 0.0,
        seed: int = 0,
        where: RequestFilter | None = None,
        upstream_timeout: float = 60.0,
    ) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream must be an http://host:port URL, not {upstream!r}")
        self.upstream_host = parts.hostname
        self.upstream_port = parts.port or 80
        self.upstream_timeout = upstream_timeout
        self.fault = fault if fault is not None else gcs_error(503)
        self.probability = probability
        self.where = where
        self._random = random.Random(seed)
        self._script: list[Fault | None] = []
        self._lock = threading.Lock()
        self.connections = 0
        """Client connections accepted (each kept alive for its requests), since `reset`."""
        self.counts: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()
        self.requests: list[ProxiedRequest] = []
        self._server: _ProxyServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT`, where clients send what the upstream should get."""
        if self._server is None:
            raise RuntimeError("FaultProxy has not been started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def fail_next(self, count: int = 1, fault: Fault | None = None) -> None:
        """Answer the next `count` accepted requests with `fault` (default: the proxy's own)."""
        self.script([fault or self.fault] * count)

    def script(self, steps: Iterable[Fault | None]) -> None:
        """Queue one step per accepted request: a fault to answer, or None to forward it."""
        with self._lock:
            self._script.extend(steps)

    def reset(self) -> None:
        """Forget the counts, the record and any faults still queued."""
        with self._lock:
            self._script.clear()
            self.counts.clear()
            self.injected.clear()
            self.requests.clear()
            self.connections = 0

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError("FaultProxy was already started")
        self._server = _ProxyServer(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="fault-proxy", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close every open connection and wait for the server thread. Idempotent."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.close_all()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = self._thread = None

    def _decide(self, method: str, path: str) -> Fault | None:
        with self._lock:
            self.counts[method] += 1
            if self.where is not None and not self.where(method, path):
                return None
            if self._script:
                return self._script.pop(0)
            if self.probability > 0 and self._random.random() < self.probability:
                return self.fault
            return None

    def _record(self, method: str, path: str, status: int, injected: bool) -> None:
        with self._lock:
            self.requests.append(ProxiedRequest(method, path, status, injected))
            if injected:
                self.injected[method] += 1


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, proxy: FaultProxy) -> None:
        self.proxy = proxy
        self._open: set[BaseHTTPRequestHandler] = set()
        self._open_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _ProxyHandler)

    def track(self, handler: BaseHTTPRequestHandler, is_open: bool) -> None:
        with self._open_lock:
            (self._open.add if is_open else self._open.discard)(handler)
            self.proxy.connections += is_open

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet about clients that hang up (as they may); report anything else."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def close_all(self) -> None:
        """Shut down client connections still kept alive, so their threads end."""
        with self._open_lock:
            handlers = list(self._open)
        for handler in handlers:
            with contextlib.suppress(OSError):
                handler.connection.shutdown(socket.SHUT_RDWR)


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ProxyServer

    _upstream: http.client.HTTPConnection | None = None

    def setup(self) -> None:
        super().setup()
        # headers and body go out in separate writes: without this, Nagle's algorithm holds the
        # body back until the client's delayed ACK, 40 ms a response
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self, True)

    def finish(self) -> None:
        self.server.track(self, False)
        if self._upstream is not None:
            self._upstream.close()
        super().finish()

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _handle(self) -> None:
        proxy = self.server.proxy
        body = self._read_body()
        fault = proxy._decide(self.command, self.path)
        if fault is not None and fault.landed:
            self._send_upstream(body).read()  # it lands; its answer goes no further
        # each request is recorded before the client gets its answer, so a client that has its
        # answer finds it in `requests`
        if fault is not None and fault.drop:
            proxy._record(self.command, self.path, 0, True)
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        elif fault is not None:
            proxy._record(self.command, self.path, fault.status, True)
            self._answer_fault(fault)
        else:
            self._forward(body)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _handle

    def _read_body(self) -> bytes | None:
        length = self.headers.get("Content-Length")
        if length is not None:
            return self.rfile.read(int(length))
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        return None

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            parts.append(self.rfile.read(size))
            self.rfile.readline()

    def _answer_fault(self, fault: Fault) -> None:
        self.send_response(fault.status)
        for name, value in fault.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(fault.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(fault.body)

    def _forward(self, body: bytes | None) -> None:
        proxy = self.server.proxy
        try:
            response = self._send_upstream(body)
        except OSError as error:
            proxy._record(self.command, self.path, HTTPStatus.BAD_GATEWAY, False)
            message = f"fault proxy: upstream unreachable: {error}".encode()
            self._answer_fault(
                Fault(HTTPStatus.BAD_GATEWAY, message, {"Content-Type": "text/plain"})
            )
            return
        proxy._record(self.command, self.path, response.status, False)
        try:
            self._relay(response)
        finally:
            response.close()

    def _send_upstream(self, body: bytes | None) -> http.client.HTTPResponse:
        """Send the request on this connection's upstream connection, reconnecting once if the
        upstream closed a kept-alive connection meanwhile."""
        for attempt in (1, 2):
            reused = self._upstream is not None and self._upstream.sock is not None
            if self._upstream is None:
                proxy = self.server.proxy
                self._upstream = http.client.HTTPConnection(
                    proxy.upstream_host, proxy.upstream_port, timeout=proxy.upstream_timeout
                )
            try:
                self._upstream.putrequest(
                    self.command, self.path, skip_host=True, skip_accept_encoding=True
                )
                for name, value in self.headers.items():
                    if name.lower() not in _NOT_FORWARDED:
                        self._upstream.putheader(name, value)
                if body is not None:
                    self._upstream.putheader("Content-Length", str(len(body)))
                self._upstream.endheaders(body)
                return self._upstream.getresponse()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self._upstream.close()
                self._upstream = None
                if not reused or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _relay(self, response: http.client.HTTPResponse) -> None:
        self.send_response_only(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        bodiless = self.command == "HEAD" or response.status in (204, 304) or response.status < 200
        length = response.getheader("Content-Length")
        if bodiless or length is not None:
            self.end_headers()
            if not bodiless:
                self._copy(response)
            return
        if self.request_version == "HTTP/1.1":
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self._copy(response, chunked=True)
        else:
            self.close_connection = True
            self.end_headers()
            self._copy(response)

    def _copy(self, response: http.client.HTTPResponse, chunked: bool = False) -> None:
        while block := response.read(_COPY_BLOCK):
            if chunked:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(block), block))
            else:
                self.wfile.write(block)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")
