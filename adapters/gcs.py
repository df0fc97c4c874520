"""`GCSBlobStore`: the `BlobStore` protocol over google-cloud-storage."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from dagster_pipes_cloud.adapters._given import used_as_it_is
from dagster_pipes_cloud.adapters._google import (
    sdk_retry,
    status_of,
    storage_module,
    translate,
)
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
    """`google.cloud.storage.Client()` from the environment (application default credentials).

    With `STORAGE_EMULATOR_HOST` set, google-cloud-storage itself talks to that endpoint with
    anonymous credentials and needs no project, so an emulator needs nothing more.

    Its bucket metadata cache is turned off: since google-cloud-storage 3.11 it sends a background
    bucket GET (`storage.buckets.get`, which object-only roles lack) on a bucket's first use and
    another after each 404, so every idle poll for a chunk not yet written would cost two requests
    (googleapis/google-cloud-python#17650). It only feeds OpenTelemetry span attributes. A client
    passed in is used as it is (`DISABLE_GCS_PYTHON_CLIENT_OTEL_BUCKET_METADATA=true` turns the
    cache off for every client of a process).
    """
    client = storage_module().Client()
    if getattr(client, "_bucket_metadata_cache", None) is not None:
        client._bucket_metadata_cache = None
    return client


class GCSBlobStore:
    """One GCS bucket. `client` (a `google.cloud.storage.Client`) defaults to
    `default_gcs_client()`, made on first use.

    Retries: every call, with the default client or a given one, passes the SDK an explicit
    policy (`sdk_retry`: 408, 429, 5xx, dropped connections and timeouts; backoff from 0.1 s
    doubling to 1 s, full jitter; given up `retry_deadline` seconds after the first attempt,
    default 10) and a per-request timeout of `REQUEST_TIMEOUT`. Uploads get the policy too: the
    SDK on its own does not retry an upload without a generation precondition; rewriting the
    same bytes under one key is safe here. A failure that outlives the policy is a
    `TransientError`, for the caller's next pass; a call lasts at most about `retry_deadline`
    plus one request's timeout. A given client that is not a `google.cloud.storage.Client` (a
    test double) is used as it is, with a `GivenClientWarning`: whether it honours those
    settings is its own affair.

    `create` is one upload with `ifGenerationMatch=0`: GCS's 412 (the object exists) is
    `AlreadyExistsError`, also when the policy sent it again after a lost answer and met its
    own object. gcp-storage-emulator ignores that precondition; `GCSEmulator` makes it honour it.

    `get` is one download; a missing blob is None. Where a missing bucket also answers 404 without
    saying so (gcp-storage-emulator does on download, listing and upload), `get` cannot tell it
    from a missing blob: `check()` is where a missing bucket is found. `check()` lists at most one
    blob, so it needs only `storage.objects.list` (which reading needs anyway), not
    `storage.buckets.get`, which `roles/storage.objectAdmin` lacks.
    """

    def __init__(
        self, bucket: str, client: Any | None = None, *, retry_deadline: float = RETRY_DEADLINE
    ) -> None:
        self._bucket_name = bucket
        self._client = client
        self._retry_deadline = retry_deadline
        self._handle: Any = None
        self._retry: Retry | None = None
        self._lock = threading.Lock()

    @property
    def bucket(self) -> str:
        return self._bucket_name

    def url(self, key: str) -> str:
        return f"gs://{self._bucket_name}/{key}"

    def _bucket(self) -> Any:
        """The SDK's bucket handle; the default client and the retry policy are made on first use.

        A missing SDK raises `MissingDependencyError`; a client that cannot be made (no
        application default credentials) raises our error for the bucket.
        """
        with self._lock:
            if self._handle is None:
                storage = storage_module()
                self._retry = sdk_retry(self._retry_deadline)
                if self._client is None:
                    try:
                        self._client = default_gcs_client()
                    except Exception as exc:
                        raise self._error(exc) from exc
                elif not isinstance(self._client, storage.Client):
                    what = f"GCS bucket {self._bucket_name!r}"
                    used_as_it_is(self._client, "a google.cloud.storage.Client", what)
                self._handle = self._client.bucket(self._bucket_name)
            return self._handle

    def _options(self) -> dict[str, Any]:
        return {"retry": self._retry, "timeout": REQUEST_TIMEOUT}

    def _error(self, exc: Exception, key: str | None = None) -> PipesCloudError:
        """Our error for `exc`; any 404 that reaches here means the bucket is missing."""
        name = f"GCS bucket {self._bucket_name!r}"
        if status_of(exc) == 404:
            during = "" if key is None else f"{self.url(key)}; "
            detail = f"{type(exc).__name__}: {exc}"
            return ResourceNotFoundError(f"{name} does not exist ({during}{detail})")
        return translate(exc, name if key is None else self.url(key))

    def check(self) -> None:
        bucket = self._bucket()
        try:
            next(iter(bucket.list_blobs(max_results=1, **self._options())), None)
        except Exception as exc:
            raise self._error(exc) from exc

    def put(self, key: str, data: bytes) -> None:
        blob = self._bucket().blob(key)
        try:
            blob.upload_from_string(data, content_type="application/json", **self._options())
        except Exception as exc:
            raise self._error(exc, key) from exc

    def create(self, key: str, data: bytes) -> None:
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
        blob = self._bucket().blob(key)
        try:
            data: bytes = blob.download_as_bytes(**self._options())
        except Exception as exc:
            if status_of(exc) == 404 and _MISSING_BUCKET_TEXT not in str(exc):
                return None
            raise self._error(exc, key) from exc
        return data

    def list(self, prefix: str) -> list[str]:
        bucket = self._bucket()
        try:
            return [blob.name for blob in bucket.list_blobs(prefix=prefix, **self._options())]
        except Exception as exc:
            raise self._error(exc, prefix) from exc

    def delete(self, keys: Sequence[str]) -> None:
        """One key: one delete, with the retry policy. More: one batch request per 100 keys
        (GCS's own limit), sent once (a failed batch is the caller's to try again). A 404 is no
        error: the blob is gone (or, on the emulator, the bucket)."""
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
