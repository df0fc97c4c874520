"""`FrontEnd`: the platform's front end before the server process of a local HTTP function host.

Each request goes through it to the instance (the server process the host keeps running) and the
instance's answer comes back unchanged. Where the instance cannot answer, the front end answers as
the platform's own front end does:
- `lost`: the instance's process ended (it exited or was killed) with the request in it;
- `timed_out`: the request ran past the platform's request timeout (only where one is given);
- `unavailable`: no instance listened within `startup_timeout` seconds;
- `throttled`: `capacity` requests were in the instances already and none left within
  `queue_timeout` seconds (where a capacity is given).
A request that finds no instance listening (it is being started again), or that an ending
instance reset unread, waits for the next one, as a platform holds a request while it starts an
instance and resends only what never reached one.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from dagster_pipes_cloud.local._http import LocalHTTPServer, RequestHandler
from dagster_pipes_cloud.local._process import LOCALHOST

_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",  # set again for the body as it is forwarded
    }
)
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
_NO_BODY_STATUSES = frozenset({204, 304})
_CONNECT_TIMEOUT = 5.0
_WAIT_STEP = 0.05


@dataclass(frozen=True)
class PlatformAnswer:
    """A response the platform's front end sends itself: status, headers and body."""

    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class PlatformAnswers:
    """What a platform's front end answers when its instance cannot: see the module docstring."""

    lost: PlatformAnswer
    unavailable: PlatformAnswer
    timed_out: PlatformAnswer | None = None
    too_large: PlatformAnswer | None = None
    """The answer to a request declaring a body over `max_request_bytes`, sent unread."""
    max_request_bytes: int | None = None
    throttled: PlatformAnswer | None = None
    """The answer to a request that found every instance full past the front end's wait."""


@dataclass(frozen=True)
class _Forwarded:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


class FrontEnd:
    """A threaded HTTP server on 127.0.0.1:`port` (default 0: a free one) forwarding to
    `instance_port()`.

    `answers` are the platform's own; `request_timeout` (seconds, None for none) bounds each
    request once sent to the instance; `startup_timeout` bounds the wait for an instance to listen.
    `capacity` (None for no bound) is how many requests the instances take at once: one more waits
    up to `queue_timeout` seconds for one of them to end, then gets `answers.throttled`.
    """

    def __init__(
        self,
        instance_port: Callable[[], int | None],
        answers: PlatformAnswers,
        *,
        request_timeout: float | None,
        startup_timeout: float,
        capacity: int | None = None,
        queue_timeout: float = 0.0,
        port: int = 0,
    ) -> None:
        if capacity is not None and answers.throttled is None:
            raise ValueError("a front end with a capacity needs the platform's throttled answer")
        self.instance_port = instance_port
        self.answers = answers
        self.request_timeout = request_timeout
        self.startup_timeout = startup_timeout
        self.capacity = capacity
        self.queue_timeout = queue_timeout
        self.requested_port = port
        self._slots = threading.BoundedSemaphore(capacity) if capacity is not None else None
        self._stopping = threading.Event()
        self._server: _FrontEndServer | None = None

    @property
    def port(self) -> int:
        """The port the front end listens on, known once started."""
        if self._server is None:
            raise RuntimeError("the front end has not been started")
        return self._server.port

    def start(self) -> None:
        """Listen on `port` (or a free one) and serve in a background thread; OSError when
        the port is taken."""
        self._stopping.clear()
        self._server = _FrontEndServer(self)
        self._server.start()

    def stop(self) -> None:
        """Stop serving and close every connection. Idempotent."""
        self._stopping.set()
        if self._server is not None:
            self._server.stop()
            self._server = None

    def answer(
        self, method: str, path: str, headers: list[tuple[str, str]], body: bytes
    ) -> _Forwarded | PlatformAnswer:
        """The instance's answer to one request once a slot is free, or the platform's own."""
        if self._slots is None:
            return self.forward(method, path, headers, body)
        if not self._slots.acquire(timeout=self.queue_timeout):
            assert self.answers.throttled is not None
            return self.answers.throttled
        try:
            return self.forward(method, path, headers, body)
        finally:
            self._slots.release()

    def forward(
        self, method: str, path: str, headers: list[tuple[str, str]], body: bytes
    ) -> _Forwarded | PlatformAnswer:
        """The instance's answer to one request, or the platform's own where it has none."""
        deadline = time.monotonic() + self.startup_timeout
        while True:
            connection = self._connect(deadline)
            if connection is None:
                return self.answers.unavailable
            try:
                return self._exchange(connection, method, path, headers, body)
            except _NotRead:
                continue  # the instance is being replaced: the next one gets it
            finally:
                connection.close()

    def _exchange(
        self,
        connection: http.client.HTTPConnection,
        method: str,
        path: str,
        headers: list[tuple[str, str]],
        body: bytes,
    ) -> _Forwarded | PlatformAnswer:
        """Send the request on `connection` and read the answer.

        Raises `_NotRead` when the instance reset the connection before answering: its process
        ended, or its listener closed, with the request still unread in the connection (a
        process that ends after reading a request closes the connection instead, and the
        request is lost).
        """
        try:
            connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for name, value in headers:
                if name.lower() not in _HOP_BY_HOP:
                    connection.putheader(name, value)
            if body or method not in ("GET", "HEAD", "DELETE", "OPTIONS"):
                connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body or None)
            assert connection.sock is not None
            connection.sock.settimeout(self.request_timeout)
            response = connection.getresponse()
        except TimeoutError:
            return self.answers.timed_out or self.answers.lost
        except http.client.RemoteDisconnected:  # closed after reading: the request is lost
            return self.answers.lost
        except (ConnectionResetError, BrokenPipeError) as error:
            raise _NotRead from error
        except (http.client.HTTPException, OSError):
            return self.answers.lost
        try:
            data = response.read()
        except TimeoutError:
            return self.answers.timed_out or self.answers.lost
        except (http.client.HTTPException, OSError):
            return self.answers.lost
        return _Forwarded(response.status, response.getheaders(), data)

    def _connect(self, deadline: float) -> http.client.HTTPConnection | None:
        """A connection to the instance, waiting while none listens; None past `deadline`."""
        while not self._stopping.is_set():
            port = self.instance_port()
            if port is not None:
                connection = http.client.HTTPConnection(LOCALHOST, port, timeout=_CONNECT_TIMEOUT)
                try:
                    connection.connect()
                    return connection
                except OSError:
                    connection.close()
            if time.monotonic() > deadline:
                return None
            time.sleep(_WAIT_STEP)
        return None


class _NotRead(Exception):
    """The instance reset the connection before it read the request."""


class _FrontEndServer(LocalHTTPServer):
    def __init__(self, front_end: FrontEnd) -> None:
        super().__init__(_FrontEndHandler, front_end.requested_port)
        self.front_end = front_end


class _FrontEndHandler(RequestHandler):
    server: _FrontEndServer

    def _handle(self) -> None:
        answers = self.server.front_end.answers
        limit, too_large = answers.max_request_bytes, answers.too_large
        declared = int(self.headers.get("Content-Length") or 0)
        if limit is not None and too_large is not None and declared > limit:
            self.close_connection = True  # the body is not read
            self._send(too_large.status, list(too_large.headers), too_large.body)
            return
        body = self.read_body()
        answer = self.server.front_end.answer(
            self.command, self.path, list(self.headers.items()), body
        )
        if isinstance(answer, PlatformAnswer):
            headers = [("Date", self.date_time_string()), *answer.headers]
            self._send(answer.status, headers, answer.body)
        else:
            self._send(answer.status, answer.headers, answer.body)

    def _send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        """The answer as it is: no `Server` or `Date` header of this server's own; a HEAD
        answer keeps the instance's `Content-Length`."""
        length = str(len(body))
        if self.command == "HEAD":
            given = [value for name, value in headers if name.lower() == "content-length"]
            length = given[0] if given else length
        try:
            self.log_request(status)
            self.send_response_only(status)
            for name, value in headers:
                if name.lower() not in _HOP_BY_HOP:
                    self.send_header(name, value)
            if status not in _NO_BODY_STATUSES:
                self.send_header("Content-Length", length)
            self.end_headers()
            if body and self.command != "HEAD" and status not in _NO_BODY_STATUSES:
                self.wfile.write(body)
            self.wfile.flush()
        except OSError:
            self.close_connection = True


for _method in _METHODS:
    setattr(_FrontEndHandler, f"do_{_method}", _FrontEndHandler._handle)
