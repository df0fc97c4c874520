"""The few errors that cross the `adapters` boundary.

Everything above `adapters` catches these, never a boto3, google or azure exception. Each error
names the bucket, key, function or URL it concerns in its message.
"""

from __future__ import annotations


class PipesCloudError(Exception):
    """Base class: a cloud call failed in a way the caller should not retry."""


class ResourceNotFoundError(PipesCloudError):
    """A bucket, container or function that does not exist (a missing key is not an error)."""


class AccessDeniedError(PipesCloudError):
    """The credentials in use may not perform the call."""


class TransientError(PipesCloudError):
    """A failure that may succeed when retried: throttling, a 5xx, a dropped connection."""


class AlreadyExistsError(PipesCloudError):
    """A create-only write found the key there already (`BlobStore.create`)."""


class ThrottledError(TransientError):
    """The platform refused an invocation for a concurrency or rate limit, before it ran.

    Args:
        message: What was refused and how often, naming the function.
        retry_after: The delay in seconds the platform suggested, None where it gave none.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class MissingDependencyError(PipesCloudError, ImportError):
    """An optional SDK is not installed; the message gives the exact install line."""
