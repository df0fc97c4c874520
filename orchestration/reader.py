"""The chunked message reader, written once against `BlobStore`."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Literal, TypedDict

from dagster import PipesMessageHandler, PipesMessageReader
from dagster._core.errors import DagsterPipesExecutionError
from dagster_pipes import (
    PIPES_PROTOCOL_VERSION,
    PipesBlobStoreMessageWriter,
    PipesParams,
)

from dagster_pipes_cloud.adapters import (
    CANCEL_MARKER,
    BlobStore,
    PipesCloudError,
    RemoteError,
    TransientError,
)
from dagster_pipes_cloud.orchestration._keys import session_prefix
from dagster_pipes_cloud.orchestration.injectors import PipesBlobStoreContextInjector

INCLUDE_STDIO_KEY = PipesBlobStoreMessageWriter.INCLUDE_STDIO_IN_MESSAGES_KEY

_IDLE_BACKOFF = 2.0
"""How much longer each idle wait is than the last, once chunks have come."""
_STARTING_BACKOFF = 1.5
"""The same before the first chunk, while the function may still be starting."""

SessionProblem = Literal["read_failed", "never_opened", "not_closed", "remote_error"]


class PipesSessionError(DagsterPipesExecutionError):
    """A session that did not end well, as the reader saw it after draining.

    `problem` says what went wrong; `remote_error` is the function's own exception from its
    "closed" message (problem "remote_error"); `chunks_read` how many chunks arrived. Clients
    catch it to combine what the reader saw with what the platform answered.
    """

    def __init__(
        self,
        message: str,
        *,
        problem: SessionProblem,
        remote_error: RemoteError | None = None,
        chunks_read: int = 0,
    ) -> None:
        super().__init__(message)
        self.problem: SessionProblem = problem
        self.remote_error = remote_error
        self.chunks_read = chunks_read


class ReaderOptions(TypedDict, total=False):
    """The options every binding of `PipesChunkedMessageReader` passes through unchanged."""

    key_prefix: str | None
    first_read_delay: float
    interval: float
    max_interval: float
    drain_timeout: float
    include_stdio_in_messages: bool
    cleanup: bool


class PipesChunkedMessageReader(PipesMessageReader):
    """Reads the numbered chunks a Pipes writer puts under a fresh key prefix of `store`.

    Each session gets `<key_prefix>/messages-<random>`. Chunks are read by index (`1.json`,
    `2.json`, ... until one is not there: one storage call per idle poll), every available chunk
    per pass. The first read comes `first_read_delay` seconds after the session opens (default
    0.5: our writer's first chunk comes no sooner unless the function ends first, and a
    synchronous invocation that ends starts the drain at once); then it polls every `interval`
    seconds while data flows (default 0.1) and backs off to `max_interval` (default 2: 30 calls
    a minute, beside the function's 30 looks for a stop request) when idle, doubling each wait
    (growing it by half only, until the first chunk comes, while the function may still be
    starting). When the session ends (the invocation returned), the reader drains at once: it
    reads up to the "closed" message, waiting at most `drain_timeout` seconds (default 10) for
    it, and then fails the step if it never came. A line that is not JSON is reported with its
    chunk key and line number; the other messages are kept. The bucket is checked before the
    session opens, so a missing bucket or denied credentials fail first.

    With `cleanup` (default True) a session's chunks are deleted (in one request where the
    service allows) once it has been read to its "closed" message (the function's exception, if
    any, is in Dagster by then); the function's claim of the session is kept, so a late second
    delivery is still refused; a session that did not end that way is kept for a look; the
    bucket's lifecycle rule ends what is kept. A failed delete is a warning in the step's log,
    never a failed step.
    """

    def __init__(
        self,
        store: BlobStore,
        *,
        key_prefix: str | None = None,
        first_read_delay: float = 0.5,
        interval: float = 0.1,
        max_interval: float = 2.0,
        drain_timeout: float = 10.0,
        include_stdio_in_messages: bool = True,
        cleanup: bool = True,
    ) -> None:
        self._store = store
        self._key_prefix = key_prefix
        self.first_read_delay = first_read_delay
        self.interval = interval
        self.max_interval = max_interval
        self.drain_timeout = drain_timeout
        self.include_stdio_in_messages = include_stdio_in_messages
        self.cleanup = cleanup
        self._pollers: dict[str, _ChunkPoller] = {}
        self._pollers_lock = threading.Lock()

    @property
    def store(self) -> BlobStore:
        return self._store

    @property
    def expected_writer_count(self) -> int:
        """One writer per session (the function). Declared here so that Dagster's handler does
        not read the base class's preview property, which warns on every run."""
        return 1

    def blob_context_injector(self) -> PipesBlobStoreContextInjector:
        """An injector that puts the context in this reader's bucket (the event injector's
        fallback for a context too large for the event)."""
        return PipesBlobStoreContextInjector(self._store, key_prefix=self._key_prefix)

    @contextmanager
    def read_messages(self, handler: PipesMessageHandler) -> Iterator[PipesParams]:
        try:
            self._store.check()
        except PipesCloudError as exc:
            raise DagsterPipesExecutionError(f"cannot read Pipes messages: {exc}") from exc
        poller = _ChunkPoller(self, session_prefix(self._key_prefix, "messages"), handler)
        with self._pollers_lock:
            self._pollers[poller.prefix] = poller
        poller.start()
        try:
            yield {
                "bucket": self._store.bucket,
                "key_prefix": poller.prefix,
                INCLUDE_STDIO_KEY: self.include_stdio_in_messages,
            }
        except BaseException:
            poller.finish(failing=True)
            raise
        else:
            poller.finish(failing=False)
        finally:
            with self._pollers_lock:
                self._pollers.pop(poller.prefix, None)
            if self.cleanup and poller.read_to_the_end:
                poller.delete_session()

    def request_cancel(self, params: PipesParams, reason: str, *, run_id: str) -> str:
        """Ask the function of the session opened with `params` to stop: write the cancel
        marker `<session prefix>/cancel.json` (`reason`, `run_id`, `requested_at`), which its
        writer sees within its `cancel_check_interval`. Returns the marker's address; raises
        `PipesCloudError` if it cannot be written. The marker stays with the session (cleanup
        deletes only sessions that closed); the bucket's lifecycle rule ends it."""
        prefix = params.get("key_prefix")
        if not isinstance(prefix, str) or not prefix:
            raise PipesCloudError(f"no session key prefix in the messages params {params!r}")
        key = f"{prefix}/{CANCEL_MARKER}"
        marker = {
            "reason": reason,
            "run_id": run_id,
            "requested_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        self._store.put(key, json.dumps(marker).encode())
        return self._store.url(key)

    def limit_drain(self, params: PipesParams, seconds: float) -> None:
        """Wait at most `seconds` for the "closed" message of the session opened with `params`
        when it ends: its function is known to have ended (it failed, timed out or died, so
        nothing more will come), or never to have run (0)."""
        poller = self._poller_of(params)
        if poller is not None:
            poller.drain_limit = min(poller.drain_limit, max(0.0, seconds))

    def is_reading(self, params: PipesParams) -> bool:
        """Whether the session opened with `params` is still being read: False once its
        "closed" message arrived or reading failed (a client waiting on it can stop)."""
        poller = self._poller_of(params)
        return poller is not None and poller.is_alive()

    def _poller_of(self, params: PipesParams) -> _ChunkPoller | None:
        with self._pollers_lock:
            return self._pollers.get(params.get("key_prefix", ""))

    def no_messages_debug_text(self) -> str:
        return (
            f"Read messages from {self._store.url('')}. The function must write them with a"
            " dagster_pipes_cloud entrypoint decorator or a matching Pipes message writer."
        )


class _ChunkPoller:
    """One session's reading thread and what it learned."""

    def __init__(self, reader: PipesChunkedMessageReader, prefix: str, handler: Any) -> None:
        self._reader = reader
        self._store = reader.store
        self.prefix = prefix
        self._handler: PipesMessageHandler = handler
        self._next_index = 1
        self._ended = threading.Event()
        self._drain_deadline = float("inf")
        self.drain_limit = reader.drain_timeout
        self._closed = False
        self._closed_exception: Mapping[str, Any] | None = None
        self._error: PipesCloudError | None = None
        self._warned_transient = False
        self._thread = threading.Thread(target=self._run, name="pipes-chunk-reader", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def read_to_the_end(self) -> bool:
        """Whether every message of the session, up to "closed", has been read."""
        return self._closed and self._error is None

    def delete_session(self) -> None:
        """Delete the chunks read (the whole session, since it was read to "closed") in one
        request where the service allows; a failure is a warning in the step's log."""
        try:
            self._store.delete([self._chunk_key(i) for i in range(1, self._next_index)])
        except PipesCloudError as exc:
            # after "closed" a Pipes message would be reported as unexpected: log to the step
            context = self._handler._context
            context.log.warning(f"[pipes] could not delete the read session's messages: {exc}")

    def finish(self, *, failing: bool) -> None:
        """Drain, then raise `PipesSessionError` if the session did not end well (unless the
        block is failing already: then drain briefly and leave the error to it)."""
        drain = min(self.drain_limit, 2.0) if failing else self.drain_limit
        self._drain_deadline = time.monotonic() + drain
        self._ended.set()
        self._thread.join()
        if failing:
            return
        where = self._store.url(f"{self.prefix}/")
        chunks = self._next_index - 1
        if self._error is not None:
            raise PipesSessionError(
                f"reading Pipes messages failed: {self._error}",
                problem="read_failed",
                chunks_read=chunks,
            )
        if not self._handler.received_opened_message:
            raise PipesSessionError(
                f"the function never opened Dagster Pipes: nothing arrived at {where}"
                f" {_within(drain)} after it returned. Is its entrypoint wrapped by a"
                " dagster_pipes_cloud decorator, and can it write to that bucket?",
                problem="never_opened",
            )
        if not self._closed:
            raise PipesSessionError(
                f"the function did not close Dagster Pipes: no 'closed' message at {where}"
                f" {_within(drain)} after it returned ({chunks} chunk(s) read).",
                problem="not_closed",
                chunks_read=chunks,
            )
        if self._closed_exception is not None:
            remote = remote_error_from_pipes(self._closed_exception)
            raise PipesSessionError(
                f"the function failed: {remote}",
                problem="remote_error",
                remote_error=remote,
                chunks_read=chunks,
            )

    def _run(self) -> None:
        self._ended.wait(self._reader.first_read_delay)
        delay = self._reader.interval
        while True:
            ended = self._ended.is_set()
            try:
                progressed = self._read_available()
            except TransientError as exc:
                progressed = False
                if not self._warned_transient:
                    self._warned_transient = True
                    self._log("warning", f"retrying after a transient storage error: {exc}")
            except PipesCloudError as exc:
                self._error = exc
                return
            except Exception as exc:  # never let the reading thread end silently
                self._error = PipesCloudError(f"{type(exc).__name__}: {exc}")
                return
            if self._closed:
                return
            if ended:
                if time.monotonic() >= self._drain_deadline:
                    return
                time.sleep(min(self._reader.interval, 0.05))
                continue
            if progressed:
                delay = self._reader.interval
            else:
                # before the first chunk the function may still be starting: back off gently
                growth = _IDLE_BACKOFF if self._next_index > 1 else _STARTING_BACKOFF
                delay = min(delay * growth, self._reader.max_interval)
            self._ended.wait(delay)

    def _read_available(self) -> bool:
        progressed = False
        while not self._closed:
            key = self._chunk_key(self._next_index)
            body = self._store.get(key)
            if body is None:
                break
            self._next_index += 1
            progressed = True
            self._handle_chunk(key, body)
        return progressed

    def _chunk_key(self, index: int) -> str:
        return f"{self.prefix}/{index}.json"

    def _handle_chunk(self, key: str, body: bytes) -> None:
        text = body.decode("utf-8", errors="replace")
        for number, line in enumerate(text.split("\n"), start=1):
            if not line.strip():
                continue
            try:
                message = json.loads(line)
            except ValueError:
                self._log(
                    "warning",
                    f"line {number} of {self._store.url(key)} is not JSON and was skipped:"
                    f" {line[:200]!r}",
                )
                continue
            if not isinstance(message, dict) or "method" not in message:
                where = self._store.url(key)
                self._log("warning", f"line {number} of {where} is not a Pipes message: {line!r}")
                continue
            self._handle_message(message)
            if message["method"] == "closed":
                self._closed = True
                params = message.get("params") or {}
                self._closed_exception = params.get("exception")
                return

    def _handle_message(self, message: dict[str, Any]) -> None:
        try:
            self._handler.handle_message(message)  # type: ignore[arg-type]
        except Exception:
            self._handler.report_pipes_framework_exception(
                f"PipesChunkedMessageReader handling {message.get('method')!r}", sys.exc_info()
            )

    def _log(self, level: str, text: str) -> None:
        self._handler.handle_message(
            {
                "__dagster_pipes_version": PIPES_PROTOCOL_VERSION,  # the TypedDict's own key
                "method": "log",
                "params": {"message": f"[pipes] {text}", "level": level.upper()},
            }
        )


def _within(seconds: float) -> str:
    return f"within {seconds:g}s" if seconds > 0 else "by the time"


def remote_error_from_pipes(exception: Mapping[str, Any]) -> RemoteError:
    """The exception a function sent in its "closed" message, as a `RemoteError`.

    dagster_pipes sends `name`, `message` (Python's own "Type: text" line) and `stack`; the
    type is not repeated in the message kept here.
    """
    name = str(exception.get("name") or "Exception")
    message = str(exception.get("message") or "").strip()
    # Python's own line names the type, qualified outside builtins ("module.Error: text")
    head, colon, rest = message.partition(": ")
    if head.split(".")[-1] == name and colon:
        message = rest.strip()
    elif message.split(".")[-1] == name:
        message = ""
    stack = exception.get("stack") or []
    trace = [str(line) for line in stack] if isinstance(stack, list) else [str(stack)]
    return RemoteError(type=name, message=message, trace=trace)
