"""Azure Blob Storage bindings of the reader and the blob context injector."""

from __future__ import annotations

from typing import TYPE_CHECKING

from typing_extensions import Unpack

from dagster_pipes_cloud.adapters.azure_blob import AzureBlobStore
from dagster_pipes_cloud.orchestration._keys import DEFAULT_KEY_PREFIX, prefix_or_default
from dagster_pipes_cloud.orchestration.injectors import PipesBlobStoreContextInjector
from dagster_pipes_cloud.orchestration.reader import PipesChunkedMessageReader, ReaderOptions

if TYPE_CHECKING:
    from dagster_pipes_cloud.adapters.azure_blob import BlobServiceClient

__all__ = [
    "DEFAULT_KEY_PREFIX",
    "PipesAzureBlobStorageContextInjector",
    "PipesAzureBlobStorageMessageReader",
]


class PipesAzureBlobStorageMessageReader(PipesChunkedMessageReader):
    """Reads Pipes messages from an Azure Blob Storage container.

    Args:
        container: The container the function writes its messages to.
        client: A `BlobServiceClient`, which says where and as whom; our retry policy and
            timeouts still apply to its calls. Default: one from the environment
            (`AZURE_STORAGE_CONNECTION_STRING`, or the account URL with
            `DefaultAzureCredential`), made on first use.
        **options: `key_prefix` (where sessions go; default (None) `"dagster-pipes"`, the
            prefix infra/azure grants; `""` for the container's root) and the other options of
            `PipesChunkedMessageReader`, with its defaults.
    """

    def __init__(
        self,
        *,
        container: str,
        client: BlobServiceClient | None = None,
        **options: Unpack[ReaderOptions],
    ) -> None:
        options["key_prefix"] = prefix_or_default(options.get("key_prefix"))
        super().__init__(AzureBlobStore(container, client), **options)


class PipesAzureBlobStorageContextInjector(PipesBlobStoreContextInjector):
    """Writes the Pipes context to an Azure Blob Storage container and passes the function its key.

    Args:
        container: The container the context is written to.
        client: A `BlobServiceClient`, as `PipesAzureBlobStorageMessageReader` takes it
            (default: made from the environment on first use).
        key_prefix: Where context blobs go (default (None) `"dagster-pipes"`, as the reader;
            `""` for the container's root); each gets a random suffix.
    """

    def __init__(
        self,
        *,
        container: str,
        client: BlobServiceClient | None = None,
        key_prefix: str | None = None,
    ) -> None:
        super().__init__(
            AzureBlobStore(container, client), key_prefix=prefix_or_default(key_prefix)
        )
