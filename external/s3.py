"""S3 bindings of the writer and loader: drop-ins for dagster_pipes' classes of the same name."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dagster_pipes_cloud.adapters.s3 import S3BlobStore
from dagster_pipes_cloud.external._stores import BucketStores
from dagster_pipes_cloud.external.loader import PipesBlobStoreContextLoader
from dagster_pipes_cloud.external.writer import PipesChunkedMessageWriter, WriterOptions

if TYPE_CHECKING:
    from typing_extensions import Unpack


def _s3_stores(client: Any | None) -> BucketStores[S3BlobStore]:
    return BucketStores(S3BlobStore, client)


class PipesS3MessageWriter(PipesChunkedMessageWriter):
    """Writes Pipes messages to S3, as dagster_pipes' class of the same name does.

    Args:
        client: A boto3 S3 client (default: one from boto3's configuration,
            `AWS_ENDPOINT_URL_S3` included, made on first use).
        **options: The options of `PipesChunkedMessageWriter` (`interval`, `max_chunk_bytes`,
            `flush_timeout`, `cancel_check_interval`), with its defaults.
    """

    def __init__(self, client: Any | None = None, **options: Unpack[WriterOptions]) -> None:
        super().__init__(_s3_stores(client), **options)


class PipesS3ContextLoader(PipesBlobStoreContextLoader):
    """Loads the Pipes context inline from the event, or from S3 (`{"bucket", "key"}`).

    Args:
        client: A boto3 S3 client (default: one from boto3's configuration, made on first use).
    """

    def __init__(self, client: Any | None = None) -> None:
        super().__init__(_s3_stores(client))
