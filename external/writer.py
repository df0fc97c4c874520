"""The chunked message writer, written once against `BlobStore`.

Messages are buffered and uploaded as numbered chunks `<key_prefix>/<i>.json` (from 1, no gaps),
one JSON message a line: the wire format of dagster_pipes' blob store writers, so the official
readers read it too.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import TypedDict

from dagster_pipes import (
    PIPES_PROTOCOL_VERSION,
    PIPES_PROTOCOL_VERSION_FIELD,
    DagsterPipesError,
    PipesBlobStoreMessageWriter,
    PipesExtras,
    PipesMessage,
    PipesMessageWriter,
    PipesMessageWriterChannel,
    PipesParams,
)

from dagster_pipes_cloud.adapters import (
    AlreadyExistsError,
    BlobStore,
    PipesCloudError,
    TransientError,
)
from dagster_pipes_cloud.external.errors import PipesSessionConflictError
from dagster_pipes_cloud.external.stdio import Stream, capture_stdio

INCLUDE_STDIO_KEY = PipesBlobStoreMessageWriter.INCLUDE_STDIO_IN_MESSAGES_KEY

DEFAULT_INTERVAL = 0.5
DEFAULT_MAX_CHUNK_BYTES = 256 * 1024
DEFAULT_FLUSH_TIMEOUT = 30.0
WRITER_ID_EXTRA = "dagster_pipes_cloud_writer"
"""The "opened" message's extra naming the invocation that writes the session: it makes the
first chunk of each invocation its own, so a second delivery of the same event differs there."""


class WriterOptions(TypedDict, total=False):
    """The options every binding of `PipesChunkedMessageWriter` passes through unchanged."""

    interval: float
    max_chunk_bytes: int
    flush_timeout: float


class PipesChunkedMessageWriter(PipesMessageWriter["PipesChunkedMessageWriterChannel"]):
    """Writes Pipes messages to the bucket and key prefix the orchestration side asks for.

    `store_for_bucket` gives the `BlobStore` for a bucket name. A chunk is uploaded when the
    "opened" message is written, every `interval` seconds while messages flow (default 0.5), as
    soon as `max_chunk_bytes` are buffered (default 256 KiB), and always before the block ends.
    Chunks are created only where absent (`BlobStore.create`), so a second invocation of the
    same session (an event delivered twice) is refused with `PipesSessionConflictError` at its
    first chunk, and the first one's messages stand. Each upload is retried by the store's own
    SDK policy; a `TransientError` that survives
    it is tried again on the next pass, in order, at the same index with the same bytes, and at
    the end of the block for up to `flush_timeout` seconds (default 30). Any other failure (a
    denied or missing bucket) makes the next message written raise `PipesCloudError`, and the
    end of the block raise it. When the
    reader asks for it (`include_stdio_in_messages`), what the invocation prints is sent too,
    before the "closed" message.
    """

    def __init__(
        self,
        store_for_bucket: Callable[[str], BlobStore],
        *,
        interval: float = DEFAULT_INTERVAL,
        max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES,
        flush_timeout: float = DEFAULT_FLUSH_TIMEOUT,
    ) -> None:
        self._store_for_bucket = store_for_bucket
        self.interval = interval
        self.max_chunk_bytes = max_chunk_bytes
        self.flush_timeout = flush_timeout

    def get_opened_extras(self) -> PipesExtras:
        """A random id of this invocation's writing (see `WRITER_ID_EXTRA`)."""
        return {WRITER_ID_EXTRA: secrets.token_hex(16)}

    @contextmanager
    def open(self, params: PipesParams) -> Iterator[PipesChunkedMessageWriterChannel]:
        bucket = params.get("bucket")
        key_prefix = params.get("key_prefix")
        if not isinstance(bucket, str) or not bucket:
            raise DagsterPipesError(
                f"{type(self).__name__} needs a 'bucket' in the messages params, got {params!r}"
            )
        if key_prefix is not None and not isinstance(key_prefix, str):
            raise DagsterPipesError(f"'key_prefix' must be a string, got {key_prefix!r}")
        channel = PipesChunkedMessageWriterChannel(
            self._store_for_bucket(bucket),
            key_prefix,
            interval=self.interval,
            max_chunk_bytes=self.max_chunk_bytes,
            flush_timeout=self.flush_timeout,
        )
        capture = capture_stdio(channel.write_text) if params.get(INCLUDE_STDIO_KEY) else None
        with channel.uploading(), capture or nullcontext():
            yield channel


class PipesChunkedMessageWriterChannel(PipesMessageWriterChannel):
    """Buffers messages and uploads them in numbered chunks; see `PipesChunkedMessageWriter`.

    The "opened" message is uploaded at once; the "closed" message is held back and written
    last, after the captured output.
    """

    def __init__(
        self,
        store: BlobStore,
        key_prefix: str | None,
        *,
        interval: float = DEFAULT_INTERVAL,
        max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES,
        flush_timeout: float = DEFAULT_FLUSH_TIMEOUT,
    ) -> None:
        self._store = store
        self._key_prefix = key_prefix
        self._interval = interval
        self._max_chunk_bytes = max_chunk_bytes
        self._flush_timeout = flush_timeout
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
        return f"{self._key_prefix}/{index}.json" if self._key_prefix else f"{index}.json"

    def write_message(self, message: PipesMessage) -> None:
        """Buffer `message`. Raises `PipesCloudError` once a chunk has failed for good (denied,
        a missing bucket, or transient errors past every attempt): the run cannot be reported,
        so the function learns it at its next Pipes call instead of at the end."""
        line = json.dumps(message)
        with self._lock:
            if message.get("method") == "closed":
                self._closed_line = line
                return
            if self._failure is not None:
                raise self._failure
            self._seal_text()
            self._lines.append(line)
            self._add_bytes(len(line) + 1)
        if message.get("method") == "opened":
            self._wake.set()  # Dagster hears "opened" at once, and a denied bucket shows early

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
        """Upload in the background while the block runs; upload the rest when it ends."""
        stop = threading.Event()
        thread = threading.Thread(
            target=self._upload_loop, args=(stop,), name="pipes-chunk-writer", daemon=True
        )
        thread.start()
        try:
            yield
        finally:
            stop.set()
            self._wake.set()
            thread.join()
            self._final_flush()

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
        try:
            self._store.create(key, chunk)
        except AlreadyExistsError:
            if self._store.get(key) != chunk:
                raise PipesSessionConflictError(
                    f"{self._store.url(key)} was written by another invocation of this Pipes"
                    " session (an event delivered twice, or sent again): its messages stand,"
                    " and this invocation's are not delivered"
                ) from None

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
