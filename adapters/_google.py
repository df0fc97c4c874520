"""Google SDK imports, the one retry policy for GCS calls, and translation into our error set."""

from __future__ import annotations

import http.client
from types import ModuleType
from typing import TYPE_CHECKING

from dagster_pipes_cloud.adapters._imports import require
from dagster_pipes_cloud.adapters.errors import (
    AccessDeniedError,
    PipesCloudError,
    ResourceNotFoundError,
    TransientError,
)

if TYPE_CHECKING:
    from google.api_core.retry import Retry

TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
DENIED_STATUSES = frozenset({401, 403})

ADC_HINT = (
    "run `gcloud auth application-default login` (a plain `gcloud auth login` does not give "
    "libraries credentials) or set GOOGLE_APPLICATION_CREDENTIALS"
)


def storage_module() -> ModuleType:
    return require("google.cloud.storage", "gcp")


def api_exceptions() -> ModuleType:
    return require("google.api_core.exceptions", "gcp")


def auth_exceptions() -> ModuleType:
    return require("google.auth.exceptions", "gcp")


def status_of(exc: BaseException) -> int | None:
    """The HTTP status behind an SDK error: an api_core error's `code`, or the response's."""
    code = getattr(exc, "code", None)
    if isinstance(code, int):
        return code
    status = getattr(getattr(exc, "response", None), "status_code", None)
    return status if isinstance(status, int) else None


def is_transient(exc: BaseException) -> bool:
    """Whether `exc` is worth sending again: 408/429/5xx, a dropped connection or a timeout.

    The predicate of the SDK retry policy and of our own `TransientError`, so both agree. It sees
    api_core errors (JSON API calls), the media layer's `InvalidResponse` (uploads, downloads) and
    the transport's own exceptions; google.auth wraps the latter in `TransportError`.
    """
    import requests  # installed with google-cloud-storage, as urllib3 is
    import urllib3

    auth = auth_exceptions()
    if isinstance(exc, auth.TransportError):
        cause = exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else None
        return cause is None or is_transient(cause)
    if isinstance(exc, auth.GoogleAuthError):
        return bool(getattr(exc, "retryable", False))
    dropped = (
        ConnectionError,
        TimeoutError,
        http.client.HTTPException,
        requests.ConnectionError,
        requests.Timeout,
        requests.exceptions.ChunkedEncodingError,
        urllib3.exceptions.HTTPError,
    )
    return isinstance(exc, dropped) or status_of(exc) in TRANSIENT_STATUSES


def sdk_retry(deadline: float) -> Retry:
    """The SDK retry policy given to every GCS call: the one retry layer under our code.

    Full-jitter exponential backoff from 0.1 s, doubling, capped at 1 s between attempts, giving up
    `deadline` seconds after the first attempt (about a dozen attempts for 10 s).
    """
    retry_module = require("google.api_core.retry", "gcp")
    policy: Retry = retry_module.Retry(
        predicate=is_transient, initial=0.1, multiplier=2.0, maximum=1.0, timeout=deadline
    )
    return policy


def translate(exc: Exception, what: str) -> PipesCloudError:
    """Map a google exception raised while working on `what` (a bucket, a gs:// URL, a
    function)."""
    exceptions, auth = api_exceptions(), auth_exceptions()
    detail = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, exceptions.RetryError):
        cause = exc.cause if exc.cause is not None else exc
        return TransientError(
            f"{what}: retries exhausted, last error {type(cause).__name__}: {cause}"
        )
    if isinstance(exc, auth.GoogleAuthError) and is_transient(exc):
        return TransientError(f"{what}: {detail}")
    if isinstance(exc, auth.DefaultCredentialsError):
        return AccessDeniedError(f"no Google credentials found for {what}: {ADC_HINT} ({detail})")
    if isinstance(exc, auth.RefreshError):
        return AccessDeniedError(
            f"Google credentials for {what} could not be refreshed; if they came from gcloud, "
            f"{ADC_HINT} again ({detail})"
        )
    if isinstance(exc, auth.GoogleAuthError) and not isinstance(exc, auth.TransportError):
        return AccessDeniedError(f"Google credentials for {what} were refused ({detail})")
    status = status_of(exc)
    if status == 404:
        return ResourceNotFoundError(f"{what} does not exist ({detail})")
    if status in DENIED_STATUSES:
        return AccessDeniedError(f"access to {what} denied ({detail})")
    if is_transient(exc):
        return TransientError(f"{what}: {detail}")
    return PipesCloudError(f"{what}: {detail}")
