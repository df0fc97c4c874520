"""`GCSBlobStore`: the `BlobStore` protocol over google-cloud-storage."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from dagster_pipes_cloud.adapters._given import used_as_it_is
from dagster_pipes_cloud.adapters._google import (
    sdk_retry,
    status_of,
    storage_module,
    translate,
)
from dagster_pipes_cloud.adapters._lazy import Lazy
from dagster_pipes_cloud.adapters._pools import SizedSession, pooled_adapter
from dagster_pipes_cloud.adapters.errors import (
    AlreadyExistsError,
    PipesCloudError,
    ResourceNotFoundError,
)

if TYPE_CHECKING:
    from google.api_core.retry import Retry

REQUEST_TIMEOUT = (5.0, 30.0)
"""Seconds to connect and to wait for each read of one HTTP request."""

RETRY_DEADLINE = 10.0
"""Seconds after a call's first attempt when the SDK stops retrying it."""

_MISSING_BUCKET_TEXT = "bucket does not exist"
_DELETE_BATCH = 100  # the most requests GCS takes in one batch


def default_gcs_client() -> Any:
    """`google.cloud.storage.Client()` from the environment, without its bucket metadata cache.

    Application default credentials, or `STORAGE_EMULATOR_HOST` (anonymous, no project needed).
    The cache would cost an idle poll two requests (docs/behaviour.md, "GCS").
    """
    client = storage_module().Client()
    if getattr(client, "_bucket_metadata_cache", None) is not None:
        client._bucket_metadata_cache = None
    return client


class GCSBlobStore:
    """A `BlobStore` over one GCS bucket, through google-cloud-storage.

    Every call, uploads included, passes the SDK our retry policy (408, 429, 5xx, dropped
    connections; from 0.1 s doubling to 1 s) and `REQUEST_TIMEOUT`, so a call lasts at most about
    `retry_deadline` plus one request's timeout. The rest (`create`'s precondition, the emulator's
    404s, batched deletes): docs/behaviour.md, "GCS".

    Args:
        bucket: The bucket's name.
        client: A `google.cloud.storage.Client`; our retry policy and timeouts apply to its
            calls. One that is not is used as it is, with a `GivenClientWarning`. Default:
            `default_gcs_client()`, made on first use.
        retry_deadline: Seconds after a call's first attempt when the SDK stops retrying it
            (default 10).
    """

    def __init__(
        self, bucket: str, client: Any | None = None, *, retry_deadline: float = RETRY_DEADLINE
    ) -> None:
        self._bucket_name = bucket
        self._retry: Lazy[Retry] = Lazy(lambda: sdk_retry(retry_deadline))
        self._sized = SizedSession(_session_adapter)  # the default client's session
        self._handle = Lazy(lambda: self._bucket_handle(client))

    def reserve_connections(self, count: int) -> None:
        """Keep up to `count` connections open for calls made at once (a fan-out's
        `max_concurrency`): the default client's pool grows to it (requests keeps 10
        otherwise); a given client's session is its own.

        Args:
            count: How many calls may be under way at once.
        """
        self._sized.reserve(count)

    @property
    def bucket(self) -> str:
        """The bucket's name."""
        return self._bucket_name

    def url(self, key: str) -> str:
        """`gs://bucket/key` (see `BlobStore.url`)."""
        return f"gs://{self._bucket_name}/{key}"

    def _bucket(self) -> Any:
        """The SDK's bucket handle; the default client and the retry policy are made on first use.

        A missing SDK raises `MissingDependencyError`; a client that cannot be made (no
        application default credentials) raises our error for the bucket.
        """
        return self._handle.get()

    def _bucket_handle(self, client: Any | None) -> Any:
        storage = storage_module()
        self._retry.get()
        if client is None:
            try:
                client = default_gcs_client()
            except Exception as exc:
                raise self._error(exc) from exc
            self._sized.fit(client._http)  # the authorized requests session the SDK sends with
        elif not isinstance(client, storage.Client):
            what = f"GCS bucket {self._bucket_name!r}"
            used_as_it_is(client, "a google.cloud.storage.Client", what)
        return client.bucket(self._bucket_name)

    def _options(self) -> dict[str, Any]:
        """The retry policy and timeout every SDK call is given."""
        return {"retry": self._retry.get(), "timeout": REQUEST_TIMEOUT}

    def _error(self, exc: Exception, key: str | None = None) -> PipesCloudError:
        """Our error for `exc`; any 404 that reaches here means the bucket is missing."""
        name = f"GCS bucket {self._bucket_name!r}"
        if status_of(exc) == 404:
            during = "" if key is None else f"{self.url(key)}; "
            detail = f"{type(exc).__name__}: {exc}"
            return ResourceNotFoundError(f"{name} does not exist ({during}{detail})")
        return translate(exc, name if key is None else self.url(key))

    def check(self) -> None:
        """List at most one blob: `storage.objects.list` is all it needs (see `BlobStore.check`)."""
        bucket = self._bucket()
        try:
            next(iter(bucket.list_blobs(max_results=1, **self._options())), None)
        except Exception as exc:
            raise self._error(exc) from exc

    def put(self, key: str, data: bytes) -> None:
        """One upload as JSON (see `BlobStore.put`)."""
        blob = self._bucket().blob(key)
        try:
            blob.upload_from_string(data, content_type="application/json", **self._options())
        except Exception as exc:
            raise self._error(exc, key) from exc

    def create(self, key: str, data: bytes) -> None:
        """One upload with `ifGenerationMatch=0` (see `BlobStore.create`).

        Raises:
            AlreadyExistsError: 412, the object exists (also after a resend met its own object).
        """
        blob = self._bucket().blob(key)
        try:
            blob.upload_from_string(
                data, content_type="application/json", if_generation_match=0, **self._options()
            )
        except Exception as exc:
            if status_of(exc) == 412:
                raise AlreadyExistsError(f"{self.url(key)} exists already") from exc
            raise self._error(exc, key) from exc

    def get(self, key: str) -> bytes | None:
        """One download; None for a missing blob (see `BlobStore.get`)."""
        blob = self._bucket().blob(key)
        try:
            data: bytes = blob.download_as_bytes(**self._options())
        except Exception as exc:
            if status_of(exc) == 404 and _MISSING_BUCKET_TEXT not in str(exc):
                return None
            raise self._error(exc, key) from exc
        return data

    def list(self, prefix: str) -> list[str]:
        """The names of the blobs under `prefix` (see `BlobStore.list`)."""
        bucket = self._bucket()
        try:
            return [blob.name for blob in bucket.list_blobs(prefix=prefix, **self._options())]
        except Exception as exc:
            raise self._error(exc, prefix) from exc

    def delete(self, keys: Sequence[str]) -> None:
        """One delete for one key, else one batch per 100 keys, sent once (see `BlobStore.delete`).

        A 404 is no error: the blob is gone (or, on the emulator, the bucket).
        """
        bucket = self._bucket()
        if len(keys) == 1:
            try:
                bucket.blob(keys[0]).delete(**self._options())
            except Exception as exc:
                if status_of(exc) != 404:
                    raise self._error(exc, keys[0]) from exc
            return
        for start in range(0, len(keys), _DELETE_BATCH):
            group = keys[start : start + _DELETE_BATCH]
            try:
                # the batch raises the last of its requests' errors, if any
                with bucket.client.batch():
                    for key in group:
                        bucket.blob(key).delete(timeout=REQUEST_TIMEOUT)
            except Exception as exc:
                if status_of(exc) != 404:
                    raise self._error(exc, group[0]) from exc


def _session_adapter(connections: int) -> Any:
    """The default client's session adapter: no resends (the SDK's retry policy resends), up to
    `connections` connections kept."""
    return pooled_adapter(connections, 0, "gcp")
