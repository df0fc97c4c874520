"""Translation of botocore failures into our error set, shared by the S3 and Lambda adapters."""

from __future__ import annotations

from typing import Any

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
