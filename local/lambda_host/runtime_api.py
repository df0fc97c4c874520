"""The Lambda Runtime API (2018-06-01) served to one worker process, that process and its log.

A `Worker` is one process (awslambdaric or our stdlib stand-in) plus the Runtime API server it
polls through `AWS_LAMBDA_RUNTIME_API`, and its own log file. Each process gets its own server, so
a request left over from a dead process can never take the next process's invocation. An
`Invocation` is handed out on `GET .../invocation/next` and finished by `POST .../response`,
`.../error` or `init/error`, or by whoever gives up on it first (timeout, exit): the first
outcome wins. A response over `RESPONSE_LIMIT` is refused with 413, as Lambda's Runtime API
refuses it (the runtime then exits), and the invocation ends in `Function.ResponseSizeTooLarge`.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from dagster_pipes_cloud.adapters.lambda_ import RESPONSE_LIMIT
from dagster_pipes_cloud.local._http import LocalHTTPServer, RequestHandler
from dagster_pipes_cloud.local._process import LOCALHOST, ManagedProcess

UNHANDLED = "Unhandled"

_NEXT_PATH = "/2018-06-01/runtime/invocation/next"
_INIT_ERROR_PATH = "/2018-06-01/runtime/init/error"
_ANSWER_PATH = re.compile(r"/2018-06-01/runtime/invocation/(?P<id>[^/]+)/(?P<kind>response|error)")


class Invocation:
    """One invocation's state, shared by the waiting caller and the Runtime API threads."""

    def __init__(
        self, request_id: str, event: bytes, client_context: str | None, invoked_function_arn: str
    ) -> None:
        self.request_id = request_id
        self.event = event
        self.client_context = client_context
        self.invoked_function_arn = invoked_function_arn
        self.taken_at: float | None = None
        """`time.monotonic()` when the worker took it (None while it waits for the worker)."""
        self.deadline_ms = 0
        self.payload = b""
        self.content_type = "application/json"
        self.function_error: str | None = None
        self.status: str | None = None
        """How it failed, for the REPORT line (`error`, `timeout`); None if the runtime answered."""
        self._done = threading.Event()
        self._lock = threading.Lock()

    def finish(
        self,
        payload: bytes,
        *,
        content_type: str = "application/json",
        function_error: str | None = None,
        status: str | None = None,
    ) -> bool:
        """Record the outcome; the first call wins (a response after a timeout is dropped)."""
        with self._lock:
            if self._done.is_set():
                return False
            self.payload, self.content_type = payload, content_type
            self.function_error, self.status = function_error, status
            self._done.set()
            return True

    def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the outcome; whether there is one."""
        return self._done.wait(timeout)


class Worker:
    """One worker process, the Runtime API server it polls and its log.

    `command` runs with `env` plus `AWS_LAMBDA_RUNTIME_API`, its output appended to `log_path`,
    where the worker also writes Lambda's START line as it takes an invocation. `timeout` sets
    each invocation's deadline.
    """

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        env: Mapping[str, str],
        *,
        log_path: Path,
        timeout: float,
    ) -> None:
        self._timeout = timeout
        self.log_path = log_path
        self._cond = threading.Condition()
        self._offered: Invocation | None = None
        self._current: Invocation | None = None
        self._closing = False
        self.exiting = False
        """Whether it failed in a way the runtime exits after (an init error, an oversized
        response): it must not be offered anything."""
        self.server = _RuntimeAPIServer(self)
        self.process = ManagedProcess(
            command,
            name=f"lambda worker {name}",
            env={**env, "AWS_LAMBDA_RUNTIME_API": f"{LOCALHOST}:{self.server.port}"},
            log_path=log_path,
            stop_timeout=1.0,
        )
        self.started_at = 0.0

    @property
    def usable(self) -> bool:
        """Whether it can take another invocation (running, and not about to exit)."""
        return self.process.running and not self.exiting

    def start(self) -> None:
        """Serve its Runtime API and start the process (it loads the handler, then polls)."""
        self.server.start()
        self.started_at = time.monotonic()
        try:
            self.process.start()
        except BaseException:
            self.server.stop()
            raise

    def offer(self, invocation: Invocation) -> None:
        """Make `invocation` the answer to the worker's (next) `invocation/next` poll."""
        with self._cond:
            self._offered = invocation
            self._cond.notify_all()

    def take(self) -> Invocation | None:
        """Block until an invocation is offered (None when closing), then hand it out."""
        with self._cond:
            while self._offered is None and not self._closing:
                self._cond.wait()
            invocation, self._offered = self._offered, None
            if invocation is None:
                return None
            invocation.taken_at = time.monotonic()
            invocation.deadline_ms = int((time.time() + self._timeout) * 1000)
            self._current = invocation
        self.log_start(invocation)
        return invocation

    def answer(self, request_id: str, payload: bytes, content_type: str, *, is_error: bool) -> bool:
        """Finish the current invocation with the runtime's response or error; False if unknown."""
        invocation = self._take_current(request_id)
        if invocation is None:
            return False
        invocation.finish(
            payload, content_type=content_type, function_error=UNHANDLED if is_error else None
        )
        return True

    def refuse_oversized(self, request_id: str) -> bool:
        """Finish the current invocation with Lambda's `Function.ResponseSizeTooLarge` error.

        The runtime exits after its response is refused, so the worker is not used again.
        False if `request_id` is not the current invocation.
        """
        invocation = self._take_current(request_id)
        if invocation is None:
            return False
        self.exiting = True
        message = (
            f"Response payload size exceeded maximum allowed payload size ({RESPONSE_LIMIT} bytes)."
        )
        error = {"errorMessage": message, "errorType": "Function.ResponseSizeTooLarge"}
        invocation.finish(json.dumps(error).encode(), function_error=UNHANDLED, status="error")
        return True

    def _take_current(self, request_id: str) -> Invocation | None:
        with self._cond:
            invocation = self._current
            if invocation is None or invocation.request_id != request_id:
                return None
            self._current = None
            return invocation

    def init_error(self, payload: bytes) -> None:
        """Finish the waiting invocation with the init error (the handler did not load)."""
        with self._cond:
            self.exiting = True
            invocation = self._current or self._offered
            self._current = self._offered = None
        if invocation is not None:
            invocation.finish(payload, function_error=UNHANDLED, status="error")

    def log_start(self, invocation: Invocation) -> None:
        """Write Lambda's START line of `invocation`."""
        self.append_log(f"START RequestId: {invocation.request_id} Version: $LATEST")

    def append_log(self, *lines: str) -> None:
        """Append lines to the worker's log file."""
        with open(self.log_path, "ab") as log:
            log.write("".join(f"{line}\n" for line in lines).encode())

    def log_size(self) -> int:
        """The size of the worker's log file (0 before it has one)."""
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def read_log(self, start: int, max_bytes: int) -> bytes:
        """At most the last `max_bytes` of the log written since offset `start`."""
        with open(self.log_path, "rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(start, log.tell() - max_bytes))
            return log.read()

    def kill(self) -> None:
        """Kill the process at once (a timeout)."""
        self.process.kill()

    def close(self) -> None:
        """Stop the process (SIGTERM, SIGKILL after 1 s) and its server. Once only: idempotent."""
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._cond.notify_all()
        self.process.stop()
        self.server.stop()


class _RuntimeAPIServer(LocalHTTPServer):
    def __init__(self, worker: Worker) -> None:
        super().__init__(_RuntimeAPIHandler)
        self.worker = worker


class _RuntimeAPIHandler(RequestHandler):
    """The Runtime API calls awslambdaric makes: next, response, error, init/error."""

    server: _RuntimeAPIServer

    def do_GET(self) -> None:
        if self.path != _NEXT_PATH:
            self.respond_json(404, {"errorMessage": f"unknown path {self.path}"})
            return
        invocation = self.server.worker.take()
        if invocation is None:  # the worker is being stopped
            self.close_connection = True
            return
        headers = {
            "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
            "Lambda-Runtime-Deadline-Ms": str(invocation.deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": invocation.invoked_function_arn,
            "Lambda-Runtime-Trace-Id": _trace_id(),
        }
        if invocation.client_context is not None:
            headers["Lambda-Runtime-Client-Context"] = invocation.client_context
        self.respond(200, invocation.event, headers)

    def do_POST(self) -> None:
        body = self.read_body()
        worker = self.server.worker
        if self.path == _INIT_ERROR_PATH:
            worker.init_error(body)
            self.respond_json(202, {"status": "OK"})
            return
        match = _ANSWER_PATH.fullmatch(self.path)
        if match is None:
            self.respond_json(404, {"errorMessage": f"unknown path {self.path}"})
            return
        request_id, is_error = match["id"], match["kind"] == "error"
        oversized = not is_error and len(body) > RESPONSE_LIMIT
        if oversized and worker.refuse_oversized(request_id):
            message = f"Exceeded maximum allowed payload size ({RESPONSE_LIMIT} bytes)."
            self.respond_json(413, {"errorMessage": message, "errorType": "RequestEntityTooLarge"})
            return
        content_type = self.headers.get("Content-Type") or "application/json"
        if worker.answer(request_id, body, content_type, is_error=is_error):
            self.respond_json(202, {"status": "OK"})
        else:
            error = {
                "errorMessage": f"Invalid request ID: {match['id']}",
                "errorType": "InvalidRequestID",
            }
            self.respond_json(400, error)


def _trace_id() -> str:
    return f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)};Sampled=0"
