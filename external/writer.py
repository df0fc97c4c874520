"""The chunked message writer, written once against `BlobStore`.

Messages are buffered and uploaded as numbered chunks `<session_prefix>/<i>.json` (from 1, no gaps),
one JSON message a line: the wire format of dagster_pipes' blob store writers, so the official
readers read it too.
"""

from __future__ import annotations

import contextvars
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from typing import TypedDict

from dagster_pipes import (
    PIPES_PROTOCOL_VERSION,
    PIPES_PROTOCOL_VERSION_FIELD,
    DagsterPipesError,
    PipesExtras,
    PipesMessage,
    PipesMessageWriter,
    PipesMessageWriterChannel,
    PipesParams,
)

from dagster_pipes_cloud.adapters import (
    AccessDeniedError,
    BlobStore,
    PipesCloudError,
    TransientError,
)
from dagster_pipes_cloud.adapters.blob_store import create_or_match
from dagster_pipes_cloud.adapters.wire import (
    BUCKET_PARAM,
    INCLUDE_STDIO_PARAM,
    SESSION_PREFIX_PARAM,
    cancel_key,
    chunk_key,
)
from dagster_pipes_cloud.external.claim import claim_session
from dagster_pipes_cloud.external.errors import PipesCancelledError, PipesSessionConflictError
from dagster_pipes_cloud.external.stdio import Stream, capture_stdio, write_to_platform_log

DEFAULT_INTERVAL = 0.5
DEFAULT_MAX_CHUNK_BYTES = 256 * 1024
DEFAULT_FLUSH_TIMEOUT = 30.0
DEFAULT_CANCEL_CHECK_INTERVAL = 2.0
MIN_CANCEL_CHECK_INTERVAL = 1.0
"""At most 60 storage calls a minute for an idle function watching for the cancel marker."""
WRITER_ID_EXTRA = "dagster_pipes_cloud_writer"
"""The "opened" message's extra naming the invocation that writes the session: it makes the
first chunk of each invocation its own, so a second delivery of the same event differs there."""


class WriterOptions(TypedDict, total=False):
    """The options every binding of `PipesChunkedMessageWriter` passes through unchanged."""

    interval: float
    max_chunk_bytes: int
    flush_timeout: float
    cancel_check_interval: float | None


class PipesChunkedMessageWriter(PipesMessageWriter["PipesChunkedMessageWriterChannel"]):
    """Writes Pipes messages as numbered chunks to the bucket and session Dagster names.

    Opening claims the session first, so a second delivery of the same event is refused before
    the user's code runs; chunks are created only where absent and retried in order, and the
    writer watches for Dagster's request to stop. Uploads, retries and the watch at length:
    [How it behaves](behaviour.md#writing-messages).

    Args:
        store_for_bucket: Gives the `BlobStore` for a bucket name.
        interval: Seconds between uploads while messages flow (default 0.5); the first chunk,
            with "opened", goes one interval in.
        max_chunk_bytes: Upload as soon as this many bytes are buffered (default 256 KiB).
        flush_timeout: Seconds to go on trying a transiently failing upload at the end of the
            block, or the claim when opening (default 30).
        cancel_check_interval: Seconds between looks for Dagster's cancel marker (default 2, at
            least 1); None turns the watching off.

    Raises:
        ValueError: `cancel_check_interval` is less than 1 second.
    """

    def __init__(
        self,
        store_for_bucket: Callable[[str], BlobStore],
        *,
        interval: float = DEFAULT_INTERVAL,
        max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES,
        flush_timeout: float = DEFAULT_FLUSH_TIMEOUT,
        cancel_check_interval: float | None = DEFAULT_CANCEL_CHECK_INTERVAL,
    ) -> None:
        if cancel_check_interval is not None and cancel_check_interval < MIN_CANCEL_CHECK_INTERVAL:
            raise ValueError(
                f"cancel_check_interval must be at least {MIN_CANCEL_CHECK_INTERVAL:g}s (or None"
                f" to not watch), not {cancel_check_interval!r}"
            )
        self._store_for_bucket = store_for_bucket
        self.interval = interval
        self.max_chunk_bytes = max_chunk_bytes
        self.flush_timeout = flush_timeout
        self.cancel_check_interval = cancel_check_interval

    def get_opened_extras(self) -> PipesExtras:
        """A random id of this invocation's writing (see `WRITER_ID_EXTRA`)."""
        return {WRITER_ID_EXTRA: secrets.token_hex(16)}

    @contextmanager
    def open(self, params: PipesParams) -> Iterator[PipesChunkedMessageWriterChannel]:
        """Claim the session, then upload the messages written while the block runs.

        Args:
            params: The messages params from Dagster: `bucket`, `key_prefix` (the session; none:
                chunks at the bucket's root, nothing claimed) and `include_stdio_in_messages`.

        Raises:
            PipesSessionClaimedError: An earlier delivery of this invocation claimed the session.
            PipesCloudError: The claim or a chunk could not be written.
        """
        bucket = params.get(BUCKET_PARAM)
        session_prefix = params.get(SESSION_PREFIX_PARAM)
        if not isinstance(bucket, str) or not bucket:
            raise DagsterPipesError(
                f"{type(self).__name__} needs a '{BUCKET_PARAM}' in the messages params,"
                f" got {params!r}"
            )
        if session_prefix is not None and not isinstance(session_prefix, str):
            raise DagsterPipesError(
                f"'{SESSION_PREFIX_PARAM}' must be a string, got {session_prefix!r}"
            )
        store = self._store_for_bucket(bucket)
        if session_prefix:
            claim_session(store, session_prefix, retry_for=self.flush_timeout)
        channel = PipesChunkedMessageWriterChannel(
            store,
            session_prefix,
            interval=self.interval,
            max_chunk_bytes=self.max_chunk_bytes,
            flush_timeout=self.flush_timeout,
            cancel_check_interval=self.cancel_check_interval,
        )
        capture = capture_stdio(channel.write_text) if params.get(INCLUDE_STDIO_PARAM) else None
        with channel.uploading(), capture or nullcontext():
            yield channel


class PipesChunkedMessageWriterChannel(PipesMessageWriterChannel):
    """Buffers one session's messages and uploads them in numbered chunks.

    The "opened" message goes with the first interval's chunk; the "closed" message is held
    back and written last, after the captured output. `cancellation` is the
    `PipesCancelledError` of a stop request once one is seen (None until then).

    Args:
        store: The bucket to write to.
        session_prefix: The session's prefix, under which chunk `i` is `<i>.json`; None puts
            chunks at the bucket's root and watches for no stop request.
        interval: Seconds between uploads while messages flow (default 0.5).
        max_chunk_bytes: Upload as soon as this many bytes are buffered (default 256 KiB).
        flush_timeout: Seconds to go on trying a transiently failing upload at the end
            (default 30).
        cancel_check_interval: Seconds between looks for the cancel marker (default 2); None
            turns the watching off.
    """

    def __init__(
        self,
        store: BlobStore,
        session_prefix: str | None,
        *,
        interval: float = DEFAULT_INTERVAL,
        max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES,
        flush_timeout: float = DEFAULT_FLUSH_TIMEOUT,
        cancel_check_interval: float | None = DEFAULT_CANCEL_CHECK_INTERVAL,
    ) -> None:
        self._store = store
        self._session_prefix = session_prefix
        self._interval = interval
        self._max_chunk_bytes = max_chunk_bytes
        self._flush_timeout = flush_timeout
        self._cancel_check_interval = cancel_check_interval if session_prefix else None
        self.cancellation: PipesCancelledError | None = None
        self._lock = threading.Lock()
        self._upload_lock = threading.Lock()
        self._wake = threading.Event()
        self._lines: list[str] = []
        self._buffered_bytes = 0
        self._text: tuple[Stream, list[str]] | None = None
        self._closed_line: str | None = None
        self._unsent: list[tuple[int, bytes]] = []  # chunks whose index and bytes are fixed
        self._next_index = 1
        self._failure: PipesCloudError | None = None
        self._transient: TransientError | None = None

    def chunk_key(self, index: int) -> str:
        """The key of this session's chunk `index` (`wire.chunk_key`)."""
        return chunk_key(self._session_prefix, index)

    def write_message(self, message: PipesMessage) -> None:
        """Buffer `message`. Raises `PipesCloudError` once a chunk has failed for good (denied,
        a missing bucket, or transient errors past every attempt): the run cannot be reported,
        so the function learns it at its next Pipes call instead of at the end. Raises
        `PipesCancelledError` once Dagster asked the function to stop ("opened" and "closed"
        pass: the session still opens and closes, with the error in "closed")."""
        line = json.dumps(message)
        method = message.get("method")
        with self._lock:
            if method == "closed":
                self._closed_line = line
                return
            if self.cancellation is not None and method != "opened":
                raise self.cancellation
            if self._failure is not None:
                raise self._failure
            self._seal_text()
            self._lines.append(line)
            self._add_bytes(len(line) + 1)

    def write_text(self, stream: Stream, text: str) -> None:
        """Buffer printed text; consecutive writes to one stream become one message."""
        with self._lock:
            if self._text is None or self._text[0] != stream:
                self._seal_text()
                self._text = (stream, [])
            self._text[1].append(text)
            self._add_bytes(len(text))

    def _add_bytes(self, size: int) -> None:
        self._buffered_bytes += size
        if self._buffered_bytes >= self._max_chunk_bytes:
            self._wake.set()

    def _seal_text(self) -> None:
        if self._text is not None:
            stream, parts = self._text
            message = {
                PIPES_PROTOCOL_VERSION_FIELD: PIPES_PROTOCOL_VERSION,
                "method": "log_external_stream",
                "params": {"stream": stream, "text": "".join(parts), "extras": {}},
            }
            self._lines.append(json.dumps(message))
            self._text = None

    @contextmanager
    def uploading(self) -> Iterator[None]:
        """Upload (and watch for a stop request) in the background while the block runs; upload
        the rest when it ends."""
        stop = threading.Event()
        # each thread in a copy of the invocation's context: its platform log lines name the run
        threads = [
            threading.Thread(
                target=contextvars.copy_context().run,
                args=(self._upload_loop, stop),
                name="pipes-chunk-writer",
                daemon=True,
            )
        ]
        if self._cancel_check_interval is not None:
            # a thread of its own: an upload retrying for seconds must not delay the next look
            watch = threading.Thread(
                target=contextvars.copy_context().run,
                args=(self._watch_for_cancel, stop, self._cancel_check_interval),
                name="pipes-cancel-watch",
                daemon=True,
            )
            threads.append(watch)
        for thread in threads:
            thread.start()
        try:
            yield
        finally:
            stop.set()
            self._wake.set()
            for thread in threads:
                thread.join()
            self._final_flush()

    def cancel_key(self) -> str:
        """The key of this session's cancel marker (`wire.cancel_key`)."""
        return cancel_key(self._session_prefix or "")

    def _watch_for_cancel(self, stop: threading.Event, interval: float) -> None:
        """Look for the cancel marker every `interval` s until it is seen or the block ends (not
        at once: a function shorter than `interval` costs no look); stop looking (one line in
        the platform's log) where the bucket is missing."""
        key = self.cancel_key()
        said_denied = False
        while not stop.wait(interval):
            try:
                body = self._store.get(key)
            except TransientError:
                body = None  # look again next time
            except AccessDeniedError as exc:
                # S3 answers 403, not 404, for an absent key to a role without s3:ListBucket:
                # "denied" may mean "not there yet", so keep looking (one line, once)
                body = None
                if not said_denied:
                    said_denied = True
                    write_to_platform_log(
                        f"[dagster-pipes] reading {self._store.url(key)} (Dagster's stop request)"
                        f" was refused; taken as absent, still watching: {exc}"
                    )
            except Exception as exc:  # a missing bucket: cancellation is off, not the run
                write_to_platform_log(
                    f"[dagster-pipes] not watching {self._store.url(key)} for a stop request"
                    f" from Dagster: {type(exc).__name__}: {exc}"
                )
                return
            if body is not None:
                self.cancellation = PipesCancelledError(cancel_reason(body))
                write_to_platform_log(f"[dagster-pipes] {self.cancellation}")
                return

    def _final_flush(self) -> None:
        """Upload everything left, trying transient failures again for `flush_timeout` s."""
        self._failure = None  # a failed chunk gets one more full round
        deadline = time.monotonic() + self._flush_timeout
        delay = 0.1
        self._flush(final=True)
        while self._failure is None and self._unsent:
            unsent = len(self._unsent)
            if time.monotonic() >= deadline:
                self._failure = self._undelivered(
                    f" within {self._flush_timeout:g}s: {self._transient}"
                )
                break
            time.sleep(delay)
            self._flush(final=True)
            delay = 0.1 if len(self._unsent) < unsent else min(delay * 2, 1.0)
        if self._failure is not None:
            raise self._failure

    def _undelivered(self, why: str) -> PipesCloudError:
        """The error for the chunks still unsent, naming the first; `why` ends the message."""
        where = self._store.url(self.chunk_key(self._unsent[0][0]))
        return PipesCloudError(
            f"could not write Pipes messages chunk {where}"
            f" ({len(self._unsent)} chunk(s) not delivered){why}"
        )

    def _upload_loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            if stop.is_set():
                return
            self._flush(final=False)
            if self._failure is not None:
                return  # keep the chunk; the final flush tries it again

    def _flush(self, *, final: bool) -> None:
        with self._upload_lock:
            with self._lock:
                self._seal_text()
                lines, self._lines, self._buffered_bytes = self._lines, [], 0
                if final and self._closed_line is not None:
                    lines.append(self._closed_line)
                    self._closed_line = None
            for chunk in self._split(lines):
                self._unsent.append((self._next_index, chunk))
                self._next_index += 1
            while self._unsent:
                index, chunk = self._unsent[0]
                try:
                    self._create(self.chunk_key(index), chunk)
                except TransientError as exc:
                    self._transient = exc  # the next pass tries the same chunk again
                    return
                except PipesSessionConflictError as exc:
                    self._failure = exc
                    return
                except PipesCloudError as exc:
                    self._failure = self._undelivered(f": {exc}")
                    return
                self._unsent.pop(0)

    def _create(self, key: str, chunk: bytes) -> None:
        """Create chunk `key`, never overwriting one: where it exists, it is this writer's own
        if it holds the same bytes (an earlier try landed and its answer was lost); else
        another invocation writes this session, and `PipesSessionConflictError` says so."""
        if not create_or_match(self._store, key, chunk):
            raise PipesSessionConflictError(
                f"{self._store.url(key)} was written by another invocation of this Pipes"
                " session (an event delivered twice, or sent again): its messages stand,"
                " and this invocation's are not delivered"
            )

    def _split(self, lines: list[str]) -> Iterator[bytes]:
        chunk: list[str] = []
        size = 0
        for line in lines:
            if chunk and size + len(line) + 1 > self._max_chunk_bytes:
                yield "\n".join(chunk).encode()
                chunk, size = [], 0
            chunk.append(line)
            size += len(line) + 1
        if chunk:
            yield "\n".join(chunk).encode()


def cancel_reason(marker: bytes) -> str:
    """The `PipesCancelledError` text for a cancel marker's body (`reason`, `run_id`,
    `requested_at`; any other body still asks the function to stop)."""
    try:
        fields = json.loads(marker)
    except ValueError:
        fields = None
    if not isinstance(fields, Mapping):
        fields = {}
    reason = str(fields.get("reason") or "the run was terminated")
    text = f"Dagster asked this function to stop: {reason}"
    details = [
        f"{label} {fields[key]}"
        for key, label in (("run_id", "run"), ("requested_at", "requested at"))
        if fields.get(key)
    ]
    return f"{text} ({', '.join(details)})" if details else text
