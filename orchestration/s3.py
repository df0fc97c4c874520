"""S3 bindings of the reader and the blob context injector."""

from __future__ import annotations

from typing import Any

from dagster_pipes_cloud.adapters.s3 import S3BlobStore
from dagster_pipes_cloud.orchestration.injectors import PipesBlobStoreContextInjector
from dagster_pipes_cloud.orchestration.reader import PipesChunkedMessageReader


class PipesS3MessageReader(PipesChunkedMessageReader):
    """Reads Pipes messages from `bucket` under `key_prefix` (optional). `client`: a boto3 S3
    client (default: one from the environment). Other options: see `PipesChunkedMessageReader`.
    """

    def __init__(
        self,
        *,
        bucket: str,
        client: Any | None = None,
        key_prefix: str | None = None,
        interval: float = 0.1,
        max_interval: float = 1.0,
        drain_timeout: float = 10.0,
        include_stdio_in_messages: bool = True,
    ) -> None:
        super().__init__(
            S3BlobStore(bucket, client),
            key_prefix=key_prefix,
            interval=interval,
            max_interval=max_interval,
            drain_timeout=drain_timeout,
            include_stdio_in_messages=include_stdio_in_messages,
        )


class PipesS3ContextInjector(PipesBlobStoreContextInjector):
    """Writes the Pipes context to `bucket` (under `key_prefix`) and passes its key."""

    def __init__(
        self, *, bucket: str, client: Any | None = None, key_prefix: str | None = None
    ) -> None:
        super().__init__(S3BlobStore(bucket, client), key_prefix=key_prefix)
