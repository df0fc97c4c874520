"""S3 bindings of the writer and loader: drop-ins for dagster_pipes' classes of the same name."""

from __future__ import annotations

import threading
from typing import Any

from dagster_pipes_cloud.adapters.s3 import S3BlobStore, default_s3_client
from dagster_pipes_cloud.external.loader import PipesBlobStoreContextLoader
from dagster_pipes_cloud.external.writer import (
    DEFAULT_INTERVAL,
    DEFAULT_MAX_CHUNK_BYTES,
    DEFAULT_UPLOAD_ATTEMPTS,
    PipesChunkedMessageWriter,
)


class _S3Stores:
    """The S3 store of a bucket, with the client made on first use (not at import)."""

    def __init__(self, client: Any | None) -> None:
        self._client = client
        self._lock = threading.Lock()

    def __call__(self, bucket: str) -> S3BlobStore:
        with self._lock:
            if self._client is None:
                self._client = default_s3_client()
        return S3BlobStore(bucket, self._client)


class PipesS3MessageWriter(PipesChunkedMessageWriter):
    """Writes Pipes messages to S3. `client`: a boto3 S3 client, made from the environment
    (`AWS_ENDPOINT_URL_S3` included) on first use when not given. Flushes every `interval`
    seconds (default 0.5) while messages flow; see `PipesChunkedMessageWriter`.
    """

    def __init__(
        self,
        client: Any | None = None,
        *,
        interval: float = DEFAULT_INTERVAL,
        max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES,
        upload_attempts: int = DEFAULT_UPLOAD_ATTEMPTS,
    ) -> None:
        super().__init__(
            _S3Stores(client),
            interval=interval,
            max_chunk_bytes=max_chunk_bytes,
            upload_attempts=upload_attempts,
        )


class PipesS3ContextLoader(PipesBlobStoreContextLoader):
    """Loads the Pipes context inline from the event, or from S3 (`{"bucket", "key"}`).
    `client`: a boto3 S3 client, made from the environment on first use when not given.
    """

    def __init__(self, client: Any | None = None) -> None:
        super().__init__(_S3Stores(client))
