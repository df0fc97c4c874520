"""What the S3 and Lambda adapters share: translation of botocore failures into our error set,
and a given client's copy with our call settings."""

from __future__ import annotations

import functools
from typing import Any

from dagster_pipes_cloud.adapters._given import used_as_it_is
from dagster_pipes_cloud.adapters._imports import require
from dagster_pipes_cloud.adapters.errors import (
    AccessDeniedError,
    PipesCloudError,
    ResourceNotFoundError,
    TransientError,
)

NOT_FOUND_CODES = {"NoSuchBucket", "ResourceNotFoundException", "NotFound", "404"}
DENIED_CODES = {
    "AccessDenied",
    "AccessDeniedException",
    "403",
    "Forbidden",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "AllAccessDisabled",
}
TRANSIENT_CODES = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "TooManyRequestsException",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "ServiceUnavailable",
    "ServiceException",
    # S3's answer to a conditional write racing another on the same key: sent again, it lands or
    # meets the other's object (412); S3 asks for a retry, botocore's policy does not make one
    "ConditionalRequestConflict",
    "503",
    "500",
}


def boto3_module() -> Any:
    return require("boto3", "aws")


def botocore_exceptions() -> Any:
    return require("botocore.exceptions", "aws")


def error_code(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return str(code) if code is not None else None
    return None


def translate(exc: Exception, what: str) -> PipesCloudError:
    """Map a botocore exception raised while working on `what` (a bucket, key or function)."""
    exceptions = botocore_exceptions()
    code = error_code(exc)
    detail = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, exceptions.NoCredentialsError):
        return AccessDeniedError(f"no AWS credentials found for {what}")
    if isinstance(exc, exceptions.ClientError) and code is not None:
        if code in NOT_FOUND_CODES:
            return ResourceNotFoundError(f"{what} does not exist ({detail})")
        if code in DENIED_CODES:
            return AccessDeniedError(f"access to {what} denied ({detail})")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in TRANSIENT_CODES or status >= 500 or status == 429:
            return TransientError(f"{what}: {detail}")
        return PipesCloudError(f"{what}: {detail}")
    transient_types = (
        exceptions.EndpointConnectionError,
        exceptions.ConnectionClosedError,
        exceptions.ReadTimeoutError,
        exceptions.ConnectTimeoutError,
    )
    if isinstance(exc, transient_types):
        return TransientError(f"{what}: {detail}")
    return PipesCloudError(f"{what}: {detail}")


def with_our_settings(client: Any, service: str, config: Any, what: str) -> Any:
    """A client for `service` with the endpoint, region, credentials and other settings of the
    given `client`, and our `config` (botocore `Config`: timeouts, retries) merged over its own.

    botocore keeps a client's timeouts and retry handler in the client itself, with no per-call
    setting, so the copy is a new client. The credentials object is shared, so refreshing
    credentials (an assumed role, SSO) keep refreshing. Event hooks registered on `client`
    (`client.meta.events.register`) are not carried over: botocore registers its own per-client
    handlers (its retry handler among them) on the same emitter, and copying it would keep the
    given client's retries beside ours. A `client` that is not a botocore client (a test double)
    is used as it is, with a `GivenClientWarning`.
    """
    botocore_client = require("botocore.client", "aws")
    if not isinstance(client, botocore_client.BaseClient):
        return used_as_it_is(client, f"a boto3 {service} client", what)
    botocore_session = require("botocore.session", "aws").Session()
    botocore_session.register_component("data_loader", _shared_data_loader())
    botocore_session.register_component(
        "credential_provider", _credentials_resolver(_credentials_of(client))
    )
    return botocore_session.create_client(
        service,
        region_name=client.meta.region_name,
        endpoint_url=client.meta.endpoint_url,
        config=client.meta.config.merge(config),
    )


@functools.cache
def _shared_data_loader() -> Any:
    """One botocore data loader, which keeps the service models it has read: each new botocore
    session would otherwise read the service's model from disk again (tens of milliseconds)."""
    return require("botocore.session", "aws").get_session().get_component("data_loader")


def _credentials_of(client: Any) -> Any:
    """The credentials object a botocore client signs with (botocore offers no public getter;
    `_get_credentials` is its own accessor for this)."""
    getter = getattr(client, "_get_credentials", None)
    return getter() if callable(getter) else client._request_signer._credentials


def _credentials_resolver(credentials: Any) -> Any:
    """A botocore credential resolver that always answers with `credentials`."""
    botocore_credentials = require("botocore.credentials", "aws")
    provider: Any = botocore_credentials.CredentialProvider

    class GivenCredentials(provider):  # type: ignore[misc]
        METHOD = "dagster-pipes-cloud-given-client"

        def load(self) -> Any:
            return credentials

    return botocore_credentials.CredentialResolver(providers=[GivenCredentials()])
