"""`AzureBlobStore`: the `BlobStore` protocol over azure-storage-blob."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from dagster_pipes_cloud.adapters._azure import (
    ACCOUNT_HINT,
    BLOB_EXISTS,
    BLOB_NOT_FOUND,
    CONTAINER_NOT_FOUND,
    RETRY_TOTAL,
    blob_module,
    blob_retry_policy,
    describe,
    error_code,
    identity_module,
    translate,
    with_retry_policy,
)
from dagster_pipes_cloud.adapters._imports import require
from dagster_pipes_cloud.adapters._lazy import Lazy
from dagster_pipes_cloud.adapters._pools import SizedSession, pooled_adapter
from dagster_pipes_cloud.adapters.errors import (
    AccessDeniedError,
    AlreadyExistsError,
    PipesCloudError,
    ResourceNotFoundError,
)

if TYPE_CHECKING:
    import requests
    from azure.storage.blob import BlobServiceClient as BlobServiceClient
    from azure.storage.blob import ContainerClient

__all__ = ["AzureBlobStore", "blob_retry_policy", "default_azure_blob_client"]

REQUEST_TIMEOUT: Mapping[str, Any] = {"connection_timeout": 5.0, "read_timeout": 30.0}
"""Seconds to connect and to wait for each read of one HTTP request, given with every call."""

CONNECTION_STRING_ENV = "AZURE_STORAGE_CONNECTION_STRING"
ACCOUNT_URL_ENV = "AZURE_STORAGE_ACCOUNT_URL"
ACCOUNT_NAME_ENV = "AZURE_STORAGE_ACCOUNT_NAME"
_DELETE_BATCH = 256  # the most sub-requests one blob batch takes
_ONE_BY_ONE = 3
"""Keys up to which a delete sends one Delete Blob each rather than a batch: the SDK prepares a
batch's sub-requests and parses their answers on two thread pools it starts for each batch, which
costs more than the two or three plain requests a short session's chunks take."""


def default_azure_blob_client(session: requests.Session | None = None) -> BlobServiceClient:
    """A `BlobServiceClient` from the environment, with `blob_retry_policy()`.

    From `AZURE_STORAGE_CONNECTION_STRING` (Azurite's too) if set; else for the account URL in
    `AZURE_STORAGE_ACCOUNT_URL`, or `https://{AZURE_STORAGE_ACCOUNT_NAME}.blob.core.windows.net`,
    with `azure.identity.DefaultAzureCredential` (which asks for no token until the first call).

    Args:
        session: The `requests.Session` azure-core's transport sends with (default: one of the
            transport's own, keeping 10 connections).

    Raises:
        AccessDeniedError: None of those variables is set; the message names them.
        PipesCloudError: The connection string is not usable.
    """
    blob = blob_module()
    policy = blob_retry_policy()
    transport: dict[str, Any] = {}
    if session is not None:
        from azure.core.pipeline.transport import RequestsTransport

        transport["transport"] = RequestsTransport(session=session)
    connection_string = os.environ.get(CONNECTION_STRING_ENV, "").strip()
    if connection_string:
        try:
            client: BlobServiceClient = blob.BlobServiceClient.from_connection_string(
                connection_string, retry_policy=policy, **transport
            )
        except ValueError as exc:  # the SDK's message does not repeat the key
            raise PipesCloudError(f"{CONNECTION_STRING_ENV} is not usable: {exc}") from exc
        return client
    account_url = os.environ.get(ACCOUNT_URL_ENV, "").strip()
    account_name = os.environ.get(ACCOUNT_NAME_ENV, "").strip()
    if not account_url and account_name:
        account_url = f"https://{account_name}.blob.core.windows.net"
    if not account_url:
        raise AccessDeniedError(f"no Azure Blob Storage account configured: {ACCOUNT_HINT}")
    credential = identity_module().DefaultAzureCredential()
    client = blob.BlobServiceClient(
        account_url, credential=credential, retry_policy=policy, **transport
    )
    return client


def _transport_adapter(connections: int) -> Any:
    """The transport session's adapter: no resends (the retry policy resends), up to
    `connections` connections kept."""
    retry = require("urllib3.util.retry", "azure").Retry(
        total=False, redirect=False, raise_on_status=False
    )
    return pooled_adapter(connections, retry, "azure")


class AzureBlobStore:
    """A `BlobStore` over one Azure Blob Storage container, through azure-storage-blob.

    Every call goes through the SDK with `blob_retry_policy` (from up to 0.1 s, doubling to 1 s,
    in place of the SDK's own first wait of about 18 s) and `REQUEST_TIMEOUT` (5 s to connect,
    30 s per read). The rest (conditional writes, missing containers, batched deletes):
    docs/behaviour.md, "Azure Blob Storage".

    Args:
        container: The container's name.
        client: A `BlobServiceClient`, which says where and as whom: its pipeline (endpoint,
            credential, transport, hooks) is used with our policy, and the client itself is left
            as it was. One that is not is used as it is, with a `GivenClientWarning`. Default:
            `default_azure_blob_client()`, made on first use.
        retry_total: How many times the policy retries one call (default 12).
    """

    bucket_noun = "container"
    """What messages call the bucket of this store."""

    def __init__(
        self,
        container: str,
        client: BlobServiceClient | Any | None = None,
        *,
        retry_total: int = RETRY_TOTAL,
    ) -> None:
        self._container_name = container
        self._sized = SizedSession(_transport_adapter)  # the default client's session
        self._handle = Lazy(lambda: self._container_client(client, retry_total))

    def reserve_connections(self, count: int) -> None:
        """Keep up to `count` connections open for calls made at once (a fan-out's
        `max_concurrency`): the default client's pool grows to it (azure-core keeps 10
        otherwise); a given client's transport is its own.

        Args:
            count: How many calls may be under way at once.
        """
        self._sized.reserve(count)

    @property
    def bucket(self) -> str:
        """The container's name."""
        return self._container_name

    def url(self, key: str) -> str:
        """The blob's URL, never with a SAS token; `azure://container/key` without a client.

        `https://account.blob.core.windows.net/container/key`; for Azurite
        `http://127.0.0.1:PORT/devstoreaccount1/container/key`.

        Args:
            key: The blob's name in the container.
        """
        plain = f"azure://{self._container_name}/{key}"
        try:
            container = self._container()
        except PipesCloudError:
            return plain
        scheme = getattr(container, "scheme", None)  # a test double may have neither
        host = getattr(container, "primary_hostname", None)
        if not (isinstance(scheme, str) and isinstance(host, str)):
            return plain
        return f"{scheme}://{host}/{self._container_name}/{key}"

    def _container(self) -> ContainerClient:
        """The SDK's container client, with our retry policy; the default client is made on first
        use."""
        return self._handle.get()

    def _container_client(self, client: Any | None, retry_total: int) -> ContainerClient:
        blob_module()
        what = f"Azure container {self._container_name!r}"
        if client is None:
            try:
                # a plain session, as azure-core's transport makes its own
                session = self._sized.fit(require("requests", "azure").Session())
                client = default_azure_blob_client(session)
            except PipesCloudError as exc:  # no account configured, say for what
                raise type(exc)(f"{what}: {exc}") from exc
        policy = blob_retry_policy(retry_total=retry_total)
        handle: ContainerClient = with_retry_policy(client, policy, what).get_container_client(
            self._container_name
        )
        return handle

    def _error(self, exc: Exception, key: str | None = None) -> PipesCloudError:
        """Our error for `exc`; a missing container is named as such, whatever the call."""
        what = f"Azure container {self._container_name!r}"
        if error_code(exc) == CONTAINER_NOT_FOUND:
            where = self.url("" if key is None else key)
            return ResourceNotFoundError(f"{what} does not exist ({where}; {describe(exc)})")
        return translate(exc, what if key is None else self.url(key))

    def check(self) -> None:
        """List at most one blob: Storage Blob Data Reader is enough (see `BlobStore.check`)."""
        container = self._container()
        try:
            next(container.list_blob_names(results_per_page=1, **REQUEST_TIMEOUT).by_page(), None)
        except Exception as exc:
            raise self._error(exc) from exc

    def put(self, key: str, data: bytes) -> None:
        """One Put Blob as JSON, replacing what is there (see `BlobStore.put`)."""
        self._upload(key, data, overwrite=True)

    def create(self, key: str, data: bytes) -> None:
        """One Put Blob with `If-None-Match: *` (see `BlobStore.create`).

        Raises:
            AlreadyExistsError: The blob exists (also after a resend met its own blob).
        """
        self._upload(key, data, overwrite=False)

    def _upload(self, key: str, data: bytes, *, overwrite: bool) -> None:
        """One Put Blob of `data` as JSON; without `overwrite` it is sent with `If-None-Match: *`,
        and Azure's 409 `BlobAlreadyExists` is `AlreadyExistsError`."""
        container = self._container()
        settings = blob_module().ContentSettings(content_type="application/json")
        try:
            container.upload_blob(
                key, data, overwrite=overwrite, content_settings=settings, **REQUEST_TIMEOUT
            )
        except Exception as exc:
            if error_code(exc) == BLOB_EXISTS:
                raise AlreadyExistsError(f"{self.url(key)} exists already") from exc
            raise self._error(exc, key) from exc

    def get(self, key: str) -> bytes | None:
        """One download; None for a missing blob (see `BlobStore.get`)."""
        container = self._container()
        try:
            data: bytes = container.download_blob(key, **REQUEST_TIMEOUT).readall()
        except Exception as exc:
            if error_code(exc) == BLOB_NOT_FOUND:
                return None
            raise self._error(exc, key) from exc
        return data

    def list(self, prefix: str) -> list[str]:
        """The names of the blobs under `prefix` (see `BlobStore.list`)."""
        container = self._container()
        try:
            return list(container.list_blob_names(name_starts_with=prefix, **REQUEST_TIMEOUT))
        except Exception as exc:
            raise self._error(exc, prefix) from exc

    def delete(self, keys: Sequence[str]) -> None:
        """One Delete Blob per key for up to 3 keys, else one batch per 256 keys (see
        `BlobStore.delete`).

        Raises:
            AccessDeniedError: Azure refused to delete a blob (401, 403), naming the first.
            PipesCloudError: Azure could not delete a blob for another reason.
        """
        container = self._container()
        if len(keys) <= _ONE_BY_ONE:
            for key in keys:
                try:
                    container.delete_blob(key, **REQUEST_TIMEOUT)
                except Exception as exc:
                    if error_code(exc) != BLOB_NOT_FOUND:
                        raise self._error(exc, key) from exc
            return
        for start in range(0, len(keys), _DELETE_BATCH):
            group = keys[start : start + _DELETE_BATCH]
            try:
                answers = list(
                    container.delete_blobs(*group, raise_on_any_failure=False, **REQUEST_TIMEOUT)
                )
            except Exception as exc:
                raise self._error(exc, group[0]) from exc
            failed = [
                (key, answer.status_code)
                for key, answer in zip(group, answers, strict=True)
                if answer.status_code not in (200, 202, 404)
            ]
            if failed:
                key, status = failed[0]
                more = f" ({len(failed) - 1} more blob(s) not deleted)" if len(failed) > 1 else ""
                if status in (401, 403):
                    raise AccessDeniedError(
                        f"access to {self.url(key)} denied (HTTP {status}){more}"
                    )
                raise PipesCloudError(f"could not delete {self.url(key)} (HTTP {status}){more}")
