"""The only code that calls a cloud SDK: blob stores, function invokers and our error set.

SDKs are imported when first used; a missing one raises `MissingDependencyError` with the
install line to run.
"""

from dagster_pipes_cloud.adapters._given import GivenClientWarning
from dagster_pipes_cloud.adapters.blob_store import BlobStore
from dagster_pipes_cloud.adapters.errors import (
    AccessDeniedError,
    AlreadyExistsError,
    MissingDependencyError,
    PipesCloudError,
    ResourceNotFoundError,
    ThrottledError,
    TransientError,
)
from dagster_pipes_cloud.adapters.invocation import (
    FunctionInvocation,
    FunctionInvoker,
    RemoteError,
)
from dagster_pipes_cloud.adapters.local import LocalBlobStore
from dagster_pipes_cloud.adapters.wire import CANCEL_MARKER

__all__ = [
    "CANCEL_MARKER",
    "AccessDeniedError",
    "AlreadyExistsError",
    "BlobStore",
    "FunctionInvocation",
    "FunctionInvoker",
    "GivenClientWarning",
    "LocalBlobStore",
    "MissingDependencyError",
    "PipesCloudError",
    "RemoteError",
    "ResourceNotFoundError",
    "ThrottledError",
    "TransientError",
]
