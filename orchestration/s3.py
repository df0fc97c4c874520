"""S3 bindings of the reader and the blob context injector."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from typing_extensions import Unpack

from dagster_pipes_cloud.adapters.s3 import S3BlobStore
from dagster_pipes_cloud.orchestration._keys import prefix_or_default
from dagster_pipes_cloud.orchestration.injectors import PipesBlobStoreContextInjector
from dagster_pipes_cloud.orchestration.reader import PipesChunkedMessageReader, ReaderOptions

if TYPE_CHECKING:
    from dagster_pipes_cloud.adapters.s3 import S3Client


class PipesS3MessageReader(PipesChunkedMessageReader):
    """Reads Pipes messages from an S3 bucket.

    Args:
        bucket: The bucket the function writes its messages to.
        client: A boto3 S3 client, which says where and as whom; our timeouts and retries still
            apply. Default: one from boto3's configuration (`AWS_ENDPOINT_URL_S3` included),
            made on first use.
        **options: `key_prefix` (where sessions go; default (None) `"dagster-pipes"`, the
            prefix infra/aws grants; `""` for the bucket's root) and the other options of
            `PipesChunkedMessageReader`, with its defaults.
    """

    def __init__(
        self,
        *,
        bucket: str,
        client: S3Client | Any | None = None,
        **options: Unpack[ReaderOptions],
    ) -> None:
        options["key_prefix"] = prefix_or_default(options.get("key_prefix"))
        super().__init__(S3BlobStore(bucket, client), **options)


class PipesS3ContextInjector(PipesBlobStoreContextInjector):
    """Writes the Pipes context to an S3 bucket and passes the function its key.

    Args:
        bucket: The bucket the context is written to.
        client: A boto3 S3 client, as `PipesS3MessageReader` takes it (default: made from the
            environment on first use).
        key_prefix: Where context blobs go (default (None) `"dagster-pipes"`, as the reader;
            `""` for the bucket's root); each gets a random suffix.
    """

    def __init__(
        self,
        *,
        bucket: str,
        client: S3Client | Any | None = None,
        key_prefix: str | None = None,
    ) -> None:
        super().__init__(S3BlobStore(bucket, client), key_prefix=prefix_or_default(key_prefix))
