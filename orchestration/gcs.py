"""GCS bindings of the reader and the blob context injector."""

from __future__ import annotations

from typing import Any

from typing_extensions import Unpack

from dagster_pipes_cloud.adapters.gcs import GCSBlobStore
from dagster_pipes_cloud.orchestration._keys import prefix_or_default
from dagster_pipes_cloud.orchestration.injectors import PipesBlobStoreContextInjector
from dagster_pipes_cloud.orchestration.reader import PipesChunkedMessageReader, ReaderOptions


class PipesGCSMessageReader(PipesChunkedMessageReader):
    """Reads Pipes messages from a GCS bucket.

    Args:
        bucket: The bucket the function writes its messages to.
        client: A `google.cloud.storage.Client`; our retry policy and timeouts still apply.
            Default: one from the environment (application default credentials,
            `STORAGE_EMULATOR_HOST`), made on first use.
        **options: `key_prefix` (where sessions go; default (None) `"dagster-pipes"`, the
            prefix infra/gcp grants; `""` for the bucket's root) and the other options of
            `PipesChunkedMessageReader`, with its defaults.
    """

    def __init__(
        self, *, bucket: str, client: Any | None = None, **options: Unpack[ReaderOptions]
    ) -> None:
        options["key_prefix"] = prefix_or_default(options.get("key_prefix"))
        super().__init__(GCSBlobStore(bucket, client), **options)


class PipesGCSContextInjector(PipesBlobStoreContextInjector):
    """Writes the Pipes context to a GCS bucket and passes the function its key.

    Args:
        bucket: The bucket the context is written to.
        client: A `google.cloud.storage.Client`, as `PipesGCSMessageReader` takes it (default:
            made from the environment on first use).
        key_prefix: Where context blobs go (default (None) `"dagster-pipes"`, as the reader;
            `""` for the bucket's root); each gets a random suffix.
    """

    def __init__(
        self, *, bucket: str, client: Any | None = None, key_prefix: str | None = None
    ) -> None:
        super().__init__(GCSBlobStore(bucket, client), key_prefix=prefix_or_default(key_prefix))
