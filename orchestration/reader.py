"""The chunked message reader, written once against `BlobStore`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import TypedDict

from dagster import PipesContextInjector, PipesMessageHandler, PipesMessageReader
from dagster._core.errors import DagsterPipesExecutionError
from dagster_pipes import PipesParams

from dagster_pipes_cloud.adapters import BlobStore, PipesCloudError
from dagster_pipes_cloud.adapters.wire import (
    BUCKET_PARAM,
    INCLUDE_STDIO_PARAM,
    SESSION_PREFIX_PARAM,
    SESSIONS_KIND,
    cancel_key,
)
from dagster_pipes_cloud.orchestration._keys import new_session_prefix
from dagster_pipes_cloud.orchestration.injectors import PipesBlobStoreContextInjector
from dagster_pipes_cloud.orchestration.poller import SessionPoller
from dagster_pipes_cloud.orchestration.session import (
    ChunkedReadingSession,
    PipesSessionError,
    PollSettings,
    ReadingSession,
    StepLog,
    remote_error_from_pipes,
    step_log_of,
)

__all__ = [
    "PipesChunkedMessageReader",
    "PipesSessionError",
    "ReaderOptions",
    "ReadingSession",
    "fallback_context_injector",
    "read_session",
    "remote_error_from_pipes",
    "reserve_connections",
]


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
    """Reads the numbered chunks a Pipes writer puts under a fresh key prefix of a `BlobStore`.

    Each session gets `<key_prefix>/messages-<random>`; chunks are read by index, every one
    available per pass, and drained up to "closed" as soon as the invocation returns. One thread
    polls every session the reader has open, and lists the sessions under `key_prefix` once per
    pass where several are due rather than reading each. The bucket
    is checked before the session opens, so a missing bucket or denied credentials fail first.
    Polling, draining and cleanup at length: [How it behaves](behaviour.md#reading-messages).

    Args:
        store: The bucket the function writes its messages to.
        key_prefix: Where sessions go (default: the bucket's root); each gets a random suffix.
        first_read_delay: Seconds from the session's opening to its first read (default 0.5).
        interval: Seconds between polls while data flows (default 0.1).
        max_interval: The longest wait between idle polls, in seconds (default 2).
        drain_timeout: Seconds to wait for "closed" once the invocation has returned, before
            failing the step (default 10).
        include_stdio_in_messages: Ask the function's writer to send what it prints (default
            True).
        cleanup: Delete a session's chunks once it has been read to its "closed" message
            (default True); the function's claim of the session is kept, so a late second
            delivery is still refused, and a session that did not close is kept for a look.
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
        self.settings = PollSettings(first_read_delay, interval, max_interval, drain_timeout)
        self.include_stdio_in_messages = include_stdio_in_messages
        self.cleanup = cleanup
        base = (key_prefix or "").strip("/")
        sessions = f"{SESSIONS_KIND}-"  # the claims beside them are not listed
        self._poller = SessionPoller(store, f"{base}/{sessions}" if base else sessions)

    @property
    def store(self) -> BlobStore:
        """The bucket this reader reads."""
        return self._store

    @property
    def expected_writer_count(self) -> int:
        """One writer per session (the function). Declared here so that Dagster's handler does
        not read the base class's preview property, which warns on every run."""
        return 1

    def blob_context_injector(self) -> PipesBlobStoreContextInjector:
        """An injector that puts the context in this reader's bucket, under its `key_prefix`.

        The event injector's fallback for a context too large for the event.
        """
        return PipesBlobStoreContextInjector(self._store, key_prefix=self._key_prefix)

    @contextmanager
    def read_messages(self, handler: PipesMessageHandler) -> Iterator[PipesParams]:
        """Read one session for `handler`, yielding its messages params (Dagster's way in).

        Args:
            handler: Dagster's handler, which turns each message into events.
        """
        with self.reading(handler) as session:
            yield session.params

    @contextmanager
    def reading(
        self,
        handler: PipesMessageHandler,
        *,
        step_log: StepLog | None = None,
        check_store: bool = True,
    ) -> Iterator[ChunkedReadingSession]:
        """Read one session for `handler`, handing its handle to the block (a client's way in).

        Args:
            handler: Dagster's handler, which turns each message into events.
            step_log: Writes a warning to the step's log (default: the handler's step log).
            check_store: Check the bucket first (default True; the sessions of a fan-out
                after its first one do not).

        Raises:
            DagsterPipesExecutionError: The bucket is missing or may not be used.
            PipesSessionError: The session did not end well (unless the block is failing).
        """
        try:
            if check_store:
                self._store.check()
        except PipesCloudError as exc:
            raise DagsterPipesExecutionError(f"cannot read Pipes messages: {exc}") from exc
        params = {
            BUCKET_PARAM: self._store.bucket,
            SESSION_PREFIX_PARAM: new_session_prefix(self._key_prefix, SESSIONS_KIND),
            INCLUDE_STDIO_PARAM: self.include_stdio_in_messages,
        }
        session = ChunkedReadingSession(
            self._store,
            params,
            handler,
            self.settings,
            request_cancel=self._write_cancel,
            step_log=step_log or step_log_of(handler),
            poller=self._poller,
        )
        session.start()
        try:
            yield session
        except BaseException:
            session.finish(failing=True)
            raise
        else:
            session.finish(failing=False)
        finally:
            if self.cleanup and session.read_to_the_end:
                session.delete_read()

    def request_cancel(self, params: PipesParams, reason: str, *, run_id: str) -> str:
        """Ask the function of a session to stop, with a cancel marker its writer watches for.

        The marker is `<session prefix>/cancel.json`, with the reason, the run id and when it
        was asked; the writer sees it within its `cancel_check_interval`.

        Args:
            params: The messages params the session was opened with.
            reason: Why, for the function's `PipesCancelledError`.
            run_id: The Dagster run asking.

        Returns:
            The marker's address.

        Raises:
            PipesCloudError: The params name no session, or the marker cannot be written.
        """
        prefix = params.get(SESSION_PREFIX_PARAM)
        if not isinstance(prefix, str) or not prefix:
            raise PipesCloudError(f"no session prefix in the messages params {params!r}")
        return self._write_cancel(prefix, reason, run_id)

    def _write_cancel(self, prefix: str, reason: str, run_id: str) -> str:
        key = cancel_key(prefix)
        marker = {
            "reason": reason,
            "run_id": run_id,
            "requested_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        self._store.put(key, json.dumps(marker).encode())
        return self._store.url(key)

    def no_messages_debug_text(self) -> str:
        """Where messages were read from, for Dagster's message when nothing arrived."""
        return (
            f"Read messages from {self._store.url('')}. The function must write them with a"
            " dagster_pipes_cloud entrypoint decorator or a matching Pipes message writer."
        )


@contextmanager
def read_session(
    reader: PipesMessageReader,
    handler: PipesMessageHandler,
    *,
    step_log: StepLog,
    check_store: bool = True,
) -> Iterator[ReadingSession]:
    """Read one session with `reader`, handing the block the session's handle.

    Ours drains on request, bounds its drain and asks the function to stop; any other reader's
    only carries its params. `step_log` writes a warning to the step's log; `check_store`
    checks our reader's bucket first.
    """
    if isinstance(reader, PipesChunkedMessageReader):
        with reader.reading(handler, step_log=step_log, check_store=check_store) as session:
            yield session
    else:
        with reader.read_messages(handler) as params:
            yield ReadingSession(params)


def reserve_connections(reader: PipesMessageReader, count: int) -> None:
    """Have `reader`'s store keep up to `count` connections open, where the reader is one of
    ours and its store sizes its pool (the stores of `adapters` do, for the clients they make).
    """
    if isinstance(reader, PipesChunkedMessageReader):
        reserve = getattr(reader.store, "reserve_connections", None)  # not in BlobStore
        if reserve is not None:
            reserve(count)


def fallback_context_injector(reader: PipesMessageReader) -> PipesContextInjector | None:
    """Where a context too large for the event goes: `reader`'s bucket if it is one of ours."""
    if isinstance(reader, PipesChunkedMessageReader):
        return reader.blob_context_injector()
    return None
