"""GCS bindings of the reader and the blob context injector."""

from __future__ import annotations

from typing import Any

from typing_extensions import Unpack

from dagster_pipes_cloud.adapters.gcs import GCSBlobStore
from dagster_pipes_cloud.orchestration.injectors import PipesBlobStoreContextInjector
from dagster_pipes_cloud.orchestration.reader import PipesChunkedMessageReader, ReaderOptions


class PipesGCSMessageReader(PipesChunkedMessageReader):
    """Reads Pipes messages from `bucket` (under `key_prefix`, optional). `client`: a
    `google.cloud.storage.Client`; by default one from the environment (application default
    credentials, `STORAGE_EMULATOR_HOST`), made on first use. Other options and their defaults:
    see `PipesChunkedMessageReader`.
    """

    def __init__(
        self, *, bucket: str, client: Any | None = None, **options: Unpack[ReaderOptions]
    ) -> None:
        super().__init__(GCSBlobStore(bucket, client), **options)


class PipesGCSContextInjector(PipesBlobStoreContextInjector):
    """Writes the Pipes context to `bucket` (under `key_prefix`) and passes its key."""

    def __init__(
        self, *, bucket: str, client: Any | None = None, key_prefix: str | None = None
    ) -> None:
        super().__init__(GCSBlobStore(bucket, client), key_prefix=key_prefix)
