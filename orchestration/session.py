"""The reader's handle on one session it reads, and the reading of one chunked session."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from dagster import PipesMessageHandler
from dagster._core.errors import DagsterPipesExecutionError
from dagster_pipes import PIPES_PROTOCOL_VERSION, PIPES_PROTOCOL_VERSION_FIELD, PipesParams

from dagster_pipes_cloud.adapters import BlobStore, PipesCloudError, RemoteError, TransientError
from dagster_pipes_cloud.adapters.blob_store import bucket_noun
from dagster_pipes_cloud.adapters.wire import SESSION_PREFIX_PARAM, chunk_key

if TYPE_CHECKING:
    from dagster_pipes_cloud.orchestration.poller import SessionPoller

_IDLE_BACKOFF = 2.0
"""How much longer each idle wait is than the last, once chunks have come."""
_STARTING_BACKOFF = 1.5
"""The same before the first chunk, while the function may still be starting."""
_FAILING_DRAIN_SECONDS = 2.0
"""The longest drain of a session whose step is failing already."""
_DRAIN_WAIT = 0.05
"""The longest wait between reads while draining."""

SessionProblem = Literal["read_failed", "never_opened", "not_closed", "remote_error"]
StepLog = Callable[[str], None]
"""Writes one warning to the step's log."""


class PipesSessionError(DagsterPipesExecutionError):
    """A session that did not end well, as the reader saw it after draining.

    Args:
        message: What went wrong, for the step's failure.
        problem: Which way it went wrong.
        remote_error: The function's own exception from its "closed" message (problem
            "remote_error").
        chunks_read: How many chunks arrived.
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


class ReadingSession:
    """A client's handle on the reading of one Pipes session.

    This base serves a reader that is not ours: it carries the reader's params and can do
    nothing else (its reading ends when the session's block does). `PipesChunkedMessageReader`
    gives a handle that drains on request, bounds the drain, says whether it still reads and asks
    the function to stop.

    Args:
        params: The messages params the reader gave the session.
    """

    def __init__(self, params: PipesParams) -> None:
        self.params = params

    @property
    def session_prefix(self) -> str | None:
        """The prefix the function writes its messages under, where the reader has one."""
        prefix = self.params.get(SESSION_PREFIX_PARAM)
        return prefix if isinstance(prefix, str) and prefix else None

    @property
    def is_reading(self) -> bool:
        """False once the reading has stopped ("closed" arrived, or reading failed)."""
        return True

    def end(self) -> None:
        """The function has ended: read what it wrote up to "closed" now, not at the next poll."""

    def limit_drain(self, seconds: float) -> None:
        """Wait at most `seconds` for "closed" once the session ends.

        Args:
            seconds: The drain's new bound: the function is known to have ended without more to
                send, or never to have run (0).
        """

    def request_cancel(self, reason: str, *, run_id: str) -> str | None:
        """Ask the function to stop.

        Args:
            reason: Why, for the function's `PipesCancelledError`.
            run_id: The Dagster run asking.

        Returns:
            Where the request was written; None where this reader has no way to ask.

        Raises:
            PipesCloudError: The request cannot be written.
        """
        return None


@dataclass(frozen=True)
class PollSettings:
    """How a chunked session is polled; `PipesChunkedMessageReader` documents each field."""

    first_read_delay: float = 0.5
    interval: float = 0.1
    max_interval: float = 2.0
    drain_timeout: float = 10.0


class ChunkedReadingSession(ReadingSession):
    """The reading of one session's numbered chunks, its schedule stepped by the reader's poller.

    Args:
        store: The bucket the function writes to.
        params: The messages params the function gets (`key_prefix` is the session prefix).
        handler: Dagster's handler, which turns each message into events.
        settings: How to poll.
        request_cancel: Writes the cancel marker of a session prefix, given the reason and the
            run id (the reader's).
        step_log: Writes a warning to the step's log (used once "closed" has been handled).
        poller: The reader's poller, which reads every session of the reader.
    """

    def __init__(
        self,
        store: BlobStore,
        params: PipesParams,
        handler: PipesMessageHandler,
        settings: PollSettings,
        *,
        request_cancel: Callable[[str, str, str], str],
        step_log: StepLog,
        poller: SessionPoller,
    ) -> None:
        super().__init__(params)
        self._store = store
        self._session_prefix: str = params[SESSION_PREFIX_PARAM]
        self._handler = handler
        self._settings = settings
        self._request_cancel = request_cancel
        self._step_log = step_log
        self._poller = poller
        self._next_index = 1
        self._schedule = threading.Lock()
        self._reading = threading.Lock()  # one thread reads the session at a time
        self._drained_by_owner = False
        self._ended = False
        self._due_at = float("inf")
        self._wait = settings.interval
        self._read_once = False
        self._started = False
        self._stopped = threading.Event()
        self._drain_deadline = float("inf")
        self._drain_limit = settings.drain_timeout
        self._closed = False
        self._closed_exception: Mapping[str, Any] | None = None
        self._error: PipesCloudError | None = None
        self._warned_transient = False

    @property
    def session_prefix(self) -> str:
        """The prefix the function writes its messages under."""
        return self._session_prefix

    @property
    def is_reading(self) -> bool:
        """Whether the session has started and not yet stopped reading."""
        return self._started and not self._stopped.is_set()

    @property
    def due_at(self) -> float:
        """When (`time.monotonic`) the next read is due; never, for the poller, once the thread
        finishing the session drains it itself."""
        return float("inf") if self._drained_by_owner else self._due_at

    @property
    def may_join_at(self) -> float:
        """The earliest the next read may come, to share a pass with another session: half an
        idle wait early, never before the first read is due."""
        if not self._read_once or self._ended:
            return self._due_at
        return self._due_at - self._wait / 2

    @property
    def read_to_the_end(self) -> bool:
        """Whether every message of the session, up to "closed", has been read."""
        return self._closed and self._error is None

    def start(self) -> None:
        """Start reading: the first read comes `first_read_delay` from now."""
        self._due_at = time.monotonic() + self._settings.first_read_delay
        self._started = True
        self._poller.add(self)

    def end(self) -> None:
        """The function has ended: drain up to "closed" now, within the drain's bound."""
        if self._mark_ended():
            self._poller.wake()

    def _mark_ended(self) -> bool:
        """Start the drain (its deadline from now); False if it had started already."""
        with self._schedule:
            if self._ended:
                return False
            now = time.monotonic()
            self._drain_deadline = now + self._drain_limit
            self._ended = True
            self._due_at = now
            return True

    def limit_drain(self, seconds: float) -> None:
        """Wait at most `seconds` for "closed" (see `ReadingSession.limit_drain`)."""
        with self._schedule:
            self._drain_limit = min(self._drain_limit, max(0.0, seconds))
            if self._ended:
                self._drain_deadline = min(self._drain_deadline, time.monotonic() + seconds)

    def request_cancel(self, reason: str, *, run_id: str) -> str:
        """Write the session's cancel marker (see `ReadingSession.request_cancel`)."""
        return self._request_cancel(self._session_prefix, reason, run_id)

    def chunk_keys(self) -> list[str]:
        """The keys of every chunk read so far."""
        return [chunk_key(self._session_prefix, index) for index in range(1, self._next_index)]

    def delete_read(self) -> None:
        """Delete the chunks read (the whole session, once read to "closed") in one request
        where the service allows; a failure is a warning in the step's log."""
        try:
            self._store.delete(self.chunk_keys())
        except PipesCloudError as exc:
            self._step_log(f"[pipes] could not delete the read session's messages: {exc}")

    def finish(self, *, failing: bool) -> None:
        """Drain, then raise `PipesSessionError` if the session did not end well.

        Args:
            failing: The block is failing already: drain for at most 2 s and leave the error
                to it.
        """
        if failing:
            self.limit_drain(_FAILING_DRAIN_SECONDS)
        drain = self._drain_limit
        self._mark_ended()
        if self._started:
            self._drain_here()
        if not failing:
            self._raise_if_ended_badly(drain)

    def _drain_here(self) -> None:
        """Drain the ended session in the calling thread, which waits for it anyway: it does
        not queue behind the poller's other sessions, and holds no thread of the poller's. A
        read the poller has begun ends first; from then on the poller leaves the session alone.
        """
        with self._schedule:
            self._drained_by_owner = True
        while not self._stopped.is_set():
            with self._reading:
                if not self._stopped.is_set():
                    self._step(time.monotonic(), None)
            self._stopped.wait(max(0.0, self._due_at - time.monotonic()))
        self._poller.wake()  # to let the session go

    def _raise_if_ended_badly(self, drain: float) -> None:
        where = self._store.url(f"{self._session_prefix}/")
        chunks = self._next_index - 1
        if self._error is not None:
            raise PipesSessionError(
                f"reading Pipes messages failed: {self._error}",
                problem="read_failed",
                chunks_read=chunks,
            )
        if not self._handler.received_opened_message:
            noun = bucket_noun(self._store)
            raise PipesSessionError(
                f"the function never opened Dagster Pipes: nothing arrived at {where}"
                f" {_within(drain)} after it returned. Is its entrypoint wrapped by a"
                f" dagster_pipes_cloud decorator, and can it write to that {noun}?",
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

    def poll(self, now: float, listed: Container[str] | None) -> None:
        """Read what has come and set when the next read is due (see `PolledSession.poll`); not
        while the session's own thread drains it.

        A draining session reads by index whatever `listed` says: its function has ended.
        """
        if not self._reading.acquire(blocking=False):
            return
        try:
            if not self._stopped.is_set():
                self._step(now, listed)
        finally:
            self._reading.release()

    def _step(self, now: float, listed: Container[str] | None) -> None:
        settings = self._settings
        ended = self._ended
        try:
            progressed = self._read_available(None if ended else listed)
        except TransientError as exc:
            progressed = False
            if not self._warned_transient:
                self._warned_transient = True
                self._log("warning", f"retrying after a transient storage error: {exc}")
        except PipesCloudError as exc:
            self._stop(exc)
            return
        except Exception as exc:  # never let the reading end silently
            self.fail(exc)
            return
        self._read_once = True
        if self._closed:
            self._stop(None)
            return
        if ended:
            if time.monotonic() >= self._drain_deadline:
                self._stop(None)
                return
            self._set_due(ended, time.monotonic() + min(settings.interval, _DRAIN_WAIT))
            return
        if progressed:
            self._wait = settings.interval
        else:
            # before the first chunk the function may still be starting: back off gently
            growth = _IDLE_BACKOFF if self._next_index > 1 else _STARTING_BACKOFF
            self._wait = min(self._wait * growth, settings.max_interval)
        # a shared pass schedules from its start, so that the sessions in it stay together
        self._set_due(ended, (now if listed is not None else time.monotonic()) + self._wait)

    def fail(self, error: Exception) -> None:
        """Stop reading because of `error`, which the step's failure will name."""
        self._stop(PipesCloudError(f"{type(error).__name__}: {error}"))

    def _set_due(self, was_ended: bool, at: float) -> None:
        with self._schedule:
            # an end() during the read asks for the drain at once
            self._due_at = self._due_at if self._ended and not was_ended else at

    def _stop(self, error: PipesCloudError | None) -> None:
        if error is not None:
            self._error = error
        self._stopped.set()

    def _read_available(self, listed: Container[str] | None) -> bool:
        """Read every chunk there is, by index; where a listing is given, nothing unless it
        holds the next chunk."""
        key = chunk_key(self._session_prefix, self._next_index)
        if listed is not None and key not in listed:
            return False
        progressed = False
        while not self._closed:
            key = chunk_key(self._session_prefix, self._next_index)
            body = self._store.get(key)
            if body is None:
                break
            self._next_index += 1
            progressed = True
            self._handle_chunk(key, body)
        return progressed

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
                PIPES_PROTOCOL_VERSION_FIELD: PIPES_PROTOCOL_VERSION,  # type: ignore[misc]
                "method": "log",
                "params": {"message": f"[pipes] {text}", "level": level.upper()},
            }
        )


def step_log_of(handler: PipesMessageHandler) -> StepLog:
    """A warning writer to the step's log of `handler`, for a session opened by Dagster itself
    (`read_messages`): Dagster's handler has no public way to its step context, so this is the
    one place that reads its `_context`. A client opening a session gives its own context's log.
    """
    context = handler._context
    return lambda text: context.log.warning(text)


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
