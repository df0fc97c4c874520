"""Azure Blob Storage bindings of the writer and loader: drop-ins for dagster_pipes' classes of
the same name."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dagster_pipes_cloud.adapters.azure_blob import AzureBlobStore
from dagster_pipes_cloud.external._stores import BucketStores
from dagster_pipes_cloud.external.loader import PipesBlobStoreContextLoader
from dagster_pipes_cloud.external.writer import PipesChunkedMessageWriter, WriterOptions

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from dagster_pipes_cloud.adapters.azure_blob import BlobServiceClient


def _azure_blob_stores(client: BlobServiceClient | None) -> BucketStores[AzureBlobStore]:
    return BucketStores(AzureBlobStore, client)


class PipesAzureBlobStorageMessageWriter(PipesChunkedMessageWriter):
    """Writes Pipes messages to the Azure Blob Storage container the reader names.

    The container travels in the Pipes params as `{"bucket": container, "key_prefix": ...}`.

    Args:
        client: A `BlobServiceClient` (default: one from the environment,
            `AZURE_STORAGE_CONNECTION_STRING` or the account URL with `DefaultAzureCredential`,
            made on first use).
        **options: The options of `PipesChunkedMessageWriter` (`interval`, `max_chunk_bytes`,
            `flush_timeout`, `cancel_check_interval`), with its defaults.
    """

    def __init__(
        self, client: BlobServiceClient | None = None, **options: Unpack[WriterOptions]
    ) -> None:
        super().__init__(_azure_blob_stores(client), **options)


class PipesAzureBlobStorageContextLoader(PipesBlobStoreContextLoader):
    """Loads the Pipes context inline from the event, or from Azure Blob Storage.

    A context in a blob comes as `{"bucket": container, "key"}`.

    Args:
        client: A `BlobServiceClient` (default: one from the environment, made on first use).
    """

    def __init__(self, client: BlobServiceClient | None = None) -> None:
        super().__init__(_azure_blob_stores(client))
