"""Azure SDK imports, the one retry policy for Blob Storage calls, translation into our errors."""

from __future__ import annotations

import copy
import functools
import random
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any

from dagster_pipes_cloud.adapters._given import used_as_it_is
from dagster_pipes_cloud.adapters._imports import require
from dagster_pipes_cloud.adapters.errors import (
    AccessDeniedError,
    PipesCloudError,
    ResourceNotFoundError,
    TransientError,
)

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient, ExponentialRetry

TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
TRANSIENT_CODES = frozenset({"ServerBusy", "OperationTimedOut", "InternalError"})
DENIED_STATUSES = frozenset({401, 403})
CONTAINER_NOT_FOUND = "ContainerNotFound"
BLOB_NOT_FOUND = "BlobNotFound"
BLOB_EXISTS = "BlobAlreadyExists"

RETRY_TOTAL = 12
"""Retries after a call's first attempt (13 attempts in all)."""

FIRST_BACKOFF = 0.1
MAX_BACKOFF = 1.0

_ENCRYPTION_SETTINGS = (
    "require_encryption",
    "encryption_version",
    "key_encryption_key",
    "key_resolver_function",
)
"""A `BlobServiceClient`'s public client-side encryption settings, carried to its copy."""

IDENTITY_HINT = (
    "run `az login`, give the host a managed identity, or set AZURE_CLIENT_ID, AZURE_TENANT_ID"
    " and AZURE_CLIENT_SECRET"
)
ACCOUNT_HINT = (
    "set AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT_URL or"
    f" AZURE_STORAGE_ACCOUNT_NAME to use DefaultAzureCredential ({IDENTITY_HINT})"
)


def blob_module() -> ModuleType:
    return require("azure.storage.blob", "azure")


def core_exceptions() -> ModuleType:
    return require("azure.core.exceptions", "azure")


def identity_module() -> ModuleType:
    return require("azure.identity", "azure")


def status_of(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


def error_code(exc: BaseException) -> str | None:
    """The storage error code (`x-ms-error-code`: "ContainerNotFound", "ServerBusy"), if any.

    The SDK gives it as a plain string or as its `StorageErrorCode` enum; this is the string.
    """
    code = getattr(exc, "error_code", None)
    if code is None:
        return None
    return str(getattr(code, "value", code))


def is_transient(exc: BaseException) -> bool:
    """Whether `exc` may succeed when sent again: throttling (503 ServerBusy; 429 elsewhere in
    Azure), a 5xx or 408, a refused or dropped connection, a timeout."""
    exceptions = core_exceptions()
    if isinstance(exc, (exceptions.ServiceRequestError, exceptions.ServiceResponseError)):
        return True
    return status_of(exc) in TRANSIENT_STATUSES or error_code(exc) in TRANSIENT_CODES


def blob_retry_policy(
    *,
    retry_total: int = RETRY_TOTAL,
    first_backoff: float = FIRST_BACKOFF,
    max_backoff: float = MAX_BACKOFF,
) -> ExponentialRetry:
    """The storage SDK retry policy our default client is built with: the one retry layer.

    The SDK's own default (`ExponentialRetry()`) waits about 18 s before its first retry (15 s
    plus 3 to the retry's number, ±3 s: then 24 s and 42 s) and gives up after 3 status
    retries; this one waits a random time up to `first_backoff` (0.1 s) before
    the first retry, doubling the bound on each retry up to `max_backoff` (1 s), for
    `retry_total` retries (12: at most 9.5 s of waiting in all). The SDK retries what it
    considers retryable: 408, 5xx other than 501/505 (503 ServerBusy is how Blob Storage
    throttles), refused and dropped connections, timeouts. `AzureBlobStore` puts it in place of
    a given client's own (`with_retry_policy`).
    """
    return _retry_class()(
        retry_total=retry_total, first_backoff=first_backoff, max_backoff=max_backoff
    )


@functools.cache
def _retry_class() -> Callable[..., ExponentialRetry]:
    """`ExponentialRetry` with our backoff; defined on first use, as the SDK is imported then."""
    blob_module()  # the install line, if the SDK is missing
    from azure.core.exceptions import AzureError
    from azure.storage.blob import ExponentialRetry

    class QuickExponentialRetry(ExponentialRetry):
        """Full-jitter backoff: before retry n (from 1), a random wait up to
        `first_backoff * 2**(n-1)`, at most `max_backoff`; every kind of retry (connect, read,
        status) counts against the one `retry_total`; an exception is retried only if it is
        transient."""

        def __init__(self, *, retry_total: int, first_backoff: float, max_backoff: float):
            super().__init__(
                initial_backoff=0,  # the SDK's formula, not used: get_backoff_time is ours
                retry_total=retry_total,
                random_jitter_range=0,
                retry_connect=retry_total,
                retry_read=retry_total,
                retry_status=retry_total,
            )
            self.first_backoff = first_backoff
            self.max_backoff = max_backoff

        def increment(
            self,
            settings: dict[str, Any],
            request: Any,
            response: Any = None,
            error: AzureError | None = None,
        ) -> bool:
            """Whether to retry: the SDK's own rule, for an error only one `is_transient` (the
            SDK would also retry a credential that cannot get a token, 13 times)."""
            if error is not None and not is_transient(error):
                return False
            return bool(super().increment(settings, request, response, error))

        def get_backoff_time(self, settings: dict[str, Any]) -> float:
            retry = max(1, int(settings["count"]))  # 1 before the first retry
            bound = min(self.max_backoff, self.first_backoff * 2 ** (retry - 1))
            return random.uniform(0, bound)

    return QuickExponentialRetry


def with_retry_policy(client: Any, policy: Any, what: str) -> BlobServiceClient | Any:
    """A `BlobServiceClient` that sends through `client`'s pipeline (its endpoint, credential,
    transport and session, proxies, headers, request hooks) with `policy` in place of its retry
    policy. `client` itself is left as it was.

    The storage SDK takes a retry policy only when a client is made and offers no public way to
    read a client's pipeline; this does what its own `get_container_client` does (a new pipeline
    over the same transport and policies, through the private `_pipeline`, `_config` and
    `_hosts`), with each policy copied so that relinking them leaves `client`'s chain alone. A
    `client` that is not a `BlobServiceClient` (a test double), or one whose pipeline has no
    retry policy of its config, is used as it is, with a `GivenClientWarning`.
    """
    blob = blob_module()
    if not isinstance(client, blob.BlobServiceClient):
        return used_as_it_is(client, "a BlobServiceClient", what)
    from azure.core.pipeline import Pipeline
    from azure.storage.blob._shared.base_client import TransportWrapper

    own = client._config.retry_policy
    policies = [policy if p is own else copy.copy(p) for p in client._pipeline._impl_policies]
    if not any(p is policy for p in policies):
        return used_as_it_is(client, "a BlobServiceClient with a retry policy we can replace", what)
    shared_transport = TransportWrapper(client._pipeline._transport)  # type: ignore[no-untyped-call]
    config = copy.copy(client._config)
    config.retry_policy = policy
    rebuilt: BlobServiceClient = blob.BlobServiceClient(
        client.url,
        credential=client.credential,
        api_version=client.api_version,
        **{name: getattr(client, name) for name in _ENCRYPTION_SETTINGS},
        _configuration=config,
        _pipeline=Pipeline(transport=shared_transport, policies=policies),
        _hosts=client._hosts,
        _location_mode=client._location_mode,
    )
    return rebuilt


def describe(exc: BaseException) -> str:
    """`Type status code: first line of the message`: the SDK's own text runs on with request ids
    and the XML body."""
    lines = str(exc).strip().splitlines()
    head = " ".join(
        str(part) for part in (type(exc).__name__, status_of(exc), error_code(exc)) if part
    )
    return f"{head}: {lines[0]}" if lines else head


def translate(exc: Exception, what: str) -> PipesCloudError:
    """Map an azure-core or azure-storage exception raised while working on `what` (a container,
    a blob URL)."""
    exceptions = core_exceptions()
    status = status_of(exc)
    if isinstance(exc, exceptions.ClientAuthenticationError) and status is None:
        # azure-identity found no credentials or could not get a token: its message lists why
        return AccessDeniedError(
            f"no usable Azure credentials for {what}: {IDENTITY_HINT}; or set"
            f" AZURE_STORAGE_CONNECTION_STRING ({type(exc).__name__}: {exc})"
        )
    if status in DENIED_STATUSES or isinstance(exc, exceptions.ClientAuthenticationError):
        return AccessDeniedError(f"access to {what} denied ({describe(exc)})")
    if isinstance(exc, exceptions.ResourceNotFoundError) or status == 404:
        return ResourceNotFoundError(f"{what} does not exist ({describe(exc)})")
    if is_transient(exc):
        return TransientError(f"{what}: {describe(exc)}")
    return PipesCloudError(f"{what}: {describe(exc)}")
