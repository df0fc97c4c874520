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


class MissingDependencyError(PipesCloudError, ImportError):
    """An optional SDK is not installed; the message gives the exact install line."""
