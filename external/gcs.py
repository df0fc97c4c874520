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
    """Writes Pipes messages to GCS. `client`: a `google.cloud.storage.Client`, made from the
    environment (application default credentials, `STORAGE_EMULATOR_HOST`) on first use when
    not given. Options and their defaults: see `PipesChunkedMessageWriter`.
    """

    def __init__(self, client: Any | None = None, **options: Unpack[WriterOptions]) -> None:
        super().__init__(_gcs_stores(client), **options)


class PipesGCSContextLoader(PipesBlobStoreContextLoader):
    """Loads the Pipes context inline from the event, or from GCS (`{"bucket", "key"}`).
    `client`: a `google.cloud.storage.Client`, made from the environment on first use.
    """

    def __init__(self, client: Any | None = None) -> None:
        super().__init__(_gcs_stores(client))
