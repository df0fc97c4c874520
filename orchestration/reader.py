"""The chunked message reader, written once against `BlobStore`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import TypedDict

from dagster import PipesContextInjector, PipesMessageHandler, PipesMessageReader
from dagster._core.errors import DagsterPipesExecutionError
from dagster_pipes import PipesBlobStoreMessageWriter, PipesParams

from dagster_pipes_cloud.adapters import CANCEL_MARKER, BlobStore, PipesCloudError
from dagster_pipes_cloud.orchestration._keys import session_prefix
from dagster_pipes_cloud.orchestration.injectors import PipesBlobStoreContextInjector
from dagster_pipes_cloud.orchestration.session import (
    ChunkedReadingSession,
    PipesSessionError,
    PollSettings,
    ReadingSession,
    StepLog,
    remote_error_from_pipes,
    step_log_of,
)

INCLUDE_STDIO_KEY = PipesBlobStoreMessageWriter.INCLUDE_STDIO_IN_MESSAGES_KEY

__all__ = [
    "PipesChunkedMessageReader",
    "PipesSessionError",
    "ReaderOptions",
    "ReadingSession",
    "fallback_context_injector",
    "read_session",
    "remote_error_from_pipes",
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
        self.settings = PollSettings(first_read_delay, interval, max_interval, drain_timeout)
        self.include_stdio_in_messages = include_stdio_in_messages
        self.cleanup = cleanup

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
        with self.reading(handler) as session:
            yield session.params

    @contextmanager
    def reading(
        self, handler: PipesMessageHandler, *, step_log: StepLog | None = None
    ) -> Iterator[ChunkedReadingSession]:
        """Read one session for `handler`, and hand its handle to the block (the client's way in;
        `read_messages` is Dagster's). `step_log` writes a warning to the step's log."""
        try:
            self._store.check()
        except PipesCloudError as exc:
            raise DagsterPipesExecutionError(f"cannot read Pipes messages: {exc}") from exc
        params = {
            "bucket": self._store.bucket,
            "key_prefix": session_prefix(self._key_prefix, "messages"),
            INCLUDE_STDIO_KEY: self.include_stdio_in_messages,
        }
        session = ChunkedReadingSession(
            self._store,
            params,
            handler,
            self.settings,
            request_cancel=self._write_cancel,
            step_log=step_log or step_log_of(handler),
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
        """Ask the function of the session opened with `params` to stop: write the cancel
        marker `<session prefix>/cancel.json` (`reason`, `run_id`, `requested_at`), which its
        writer sees within its `cancel_check_interval`. Returns the marker's address; raises
        `PipesCloudError` if it cannot be written. The marker stays with the session (cleanup
        deletes only sessions that closed); the bucket's lifecycle rule ends it."""
        prefix = params.get("key_prefix")
        if not isinstance(prefix, str) or not prefix:
            raise PipesCloudError(f"no session key prefix in the messages params {params!r}")
        return self._write_cancel(prefix, reason, run_id)

    def _write_cancel(self, prefix: str, reason: str, run_id: str) -> str:
        key = f"{prefix}/{CANCEL_MARKER}"
        marker = {
            "reason": reason,
            "run_id": run_id,
            "requested_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        self._store.put(key, json.dumps(marker).encode())
        return self._store.url(key)

    def no_messages_debug_text(self) -> str:
        return (
            f"Read messages from {self._store.url('')}. The function must write them with a"
            " dagster_pipes_cloud entrypoint decorator or a matching Pipes message writer."
        )


@contextmanager
def read_session(
    reader: PipesMessageReader, handler: PipesMessageHandler, *, step_log: StepLog
) -> Iterator[ReadingSession]:
    """Read one session with `reader`, handing the block the session's handle: ours drains on
    request, bounds its drain and asks the function to stop; any other reader's only carries
    its params. `step_log` writes a warning to the step's log."""
    if isinstance(reader, PipesChunkedMessageReader):
        with reader.reading(handler, step_log=step_log) as session:
            yield session
    else:
        with reader.read_messages(handler) as params:
            yield ReadingSession(params)


def fallback_context_injector(reader: PipesMessageReader) -> PipesContextInjector | None:
    """Where a context too large for the event goes: `reader`'s bucket if it is one of ours."""
    if isinstance(reader, PipesChunkedMessageReader):
        return reader.blob_context_injector()
    return None
