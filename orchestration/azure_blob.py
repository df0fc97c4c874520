"""Azure Blob Storage bindings of the reader and the blob context injector."""

from __future__ import annotations

from typing import TYPE_CHECKING

from typing_extensions import Unpack

from dagster_pipes_cloud.adapters.azure_blob import AzureBlobStore
from dagster_pipes_cloud.orchestration.injectors import PipesBlobStoreContextInjector
from dagster_pipes_cloud.orchestration.reader import PipesChunkedMessageReader, ReaderOptions

if TYPE_CHECKING:
    from dagster_pipes_cloud.adapters.azure_blob import BlobServiceClient


class PipesAzureBlobStorageMessageReader(PipesChunkedMessageReader):
    """Reads Pipes messages from `container` (under `key_prefix`, optional). `client`: a
    `BlobServiceClient`; by default one from the environment (`AZURE_STORAGE_CONNECTION_STRING`,
    or the account URL with `DefaultAzureCredential`: see `default_azure_blob_client`), made on
    first use. A client passed in says where and as whom; our retry policy and timeouts still
    apply to its calls (see `AzureBlobStore`). Other options and their defaults: see
    `PipesChunkedMessageReader`.
    """

    def __init__(
        self,
        *,
        container: str,
        client: BlobServiceClient | None = None,
        **options: Unpack[ReaderOptions],
    ) -> None:
        super().__init__(AzureBlobStore(container, client), **options)


class PipesAzureBlobStorageContextInjector(PipesBlobStoreContextInjector):
    """Writes the Pipes context to `container` (under `key_prefix`) and passes its key."""

    def __init__(
        self,
        *,
        container: str,
        client: BlobServiceClient | None = None,
        key_prefix: str | None = None,
    ) -> None:
        super().__init__(AzureBlobStore(container, client), key_prefix=key_prefix)
