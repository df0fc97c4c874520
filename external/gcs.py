"""GCS bindings of the writer and loader: drop-ins for dagster_pipes' classes of the same name."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dagster_pipes_cloud.adapters.gcs import GCSBlobStore
from dagster_pipes_cloud.external._stores import BucketStores
from dagster_pipes_cloud.external.loader import PipesBlobStoreContextLoader
from dagster_pipes_cloud.external.writer import PipesChunkedMessageWriter, WriterOptions

if TYPE_CHECKING:
    from typing_extensions import Unpack


def _gcs_stores(client: Any | None) -> BucketStores[GCSBlobStore]:
    return BucketStores(GCSBlobStore, client)


class PipesGCSMessageWriter(PipesChunkedMessageWriter):
    """Writes Pipes messages to GCS, as dagster_pipes' class of the same name does.

    Args:
        client: A `google.cloud.storage.Client` (default: one from the environment, application
            default credentials or `STORAGE_EMULATOR_HOST`, made on first use).
        **options: The options of `PipesChunkedMessageWriter` (`interval`, `max_chunk_bytes`,
            `flush_timeout`, `cancel_check_interval`), with its defaults.
    """

    def __init__(self, client: Any | None = None, **options: Unpack[WriterOptions]) -> None:
        super().__init__(_gcs_stores(client), **options)


class PipesGCSContextLoader(PipesBlobStoreContextLoader):
    """Loads the Pipes context inline from the event, or from GCS (`{"bucket", "key"}`).

    Args:
        client: A `google.cloud.storage.Client` (default: one from the environment, made on
            first use).
    """

    def __init__(self, client: Any | None = None) -> None:
        super().__init__(_gcs_stores(client))
