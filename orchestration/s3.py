"""S3 bindings of the reader and the blob context injector."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from typing_extensions import Unpack

from dagster_pipes_cloud.adapters.s3 import S3BlobStore
from dagster_pipes_cloud.orchestration.injectors import PipesBlobStoreContextInjector
from dagster_pipes_cloud.orchestration.reader import PipesChunkedMessageReader, ReaderOptions

if TYPE_CHECKING:
    from dagster_pipes_cloud.adapters.s3 import S3Client


class PipesS3MessageReader(PipesChunkedMessageReader):
    """Reads Pipes messages from `bucket` (under `key_prefix`, optional). `client`: a boto3 S3
    client; by default one from the environment (`AWS_ENDPOINT_URL_S3` included), made on first
    use. Other options and their defaults: see `PipesChunkedMessageReader`.
    """

    def __init__(
        self,
        *,
        bucket: str,
        client: S3Client | Any | None = None,
        **options: Unpack[ReaderOptions],
    ) -> None:
        super().__init__(S3BlobStore(bucket, client), **options)


class PipesS3ContextInjector(PipesBlobStoreContextInjector):
    """Writes the Pipes context to `bucket` (under `key_prefix`) and passes its key."""

    def __init__(
        self,
        *,
        bucket: str,
        client: S3Client | Any | None = None,
        key_prefix: str | None = None,
    ) -> None:
        super().__init__(S3BlobStore(bucket, client), key_prefix=key_prefix)
