"""Runs inside the function: Pipes message writers, context loaders and entrypoint decorators.

Depends on dagster-pipes and one cloud SDK, never on dagster.
"""

from dagster_pipes_cloud.external.azure_blob import (
    PipesAzureBlobStorageContextLoader,
    PipesAzureBlobStorageMessageWriter,
)
from dagster_pipes_cloud.external.azure_functions import azure_function
from dagster_pipes_cloud.external.cloud_functions import cloud_function
from dagster_pipes_cloud.external.context import PipesCloudContext
from dagster_pipes_cloud.external.errors import (
    PipesCancelledError,
    PipesSessionClaimedError,
    PipesSessionConflictError,
)
from dagster_pipes_cloud.external.gcs import PipesGCSContextLoader, PipesGCSMessageWriter
from dagster_pipes_cloud.external.lambda_ import lambda_handler
from dagster_pipes_cloud.external.loader import PipesBlobStoreContextLoader
from dagster_pipes_cloud.external.s3 import PipesS3ContextLoader, PipesS3MessageWriter
from dagster_pipes_cloud.external.writer import (
    PipesChunkedMessageWriter,
    PipesChunkedMessageWriterChannel,
)

__all__ = [
    "PipesAzureBlobStorageContextLoader",
    "PipesAzureBlobStorageMessageWriter",
    "PipesBlobStoreContextLoader",
    "PipesCancelledError",
    "PipesChunkedMessageWriter",
    "PipesChunkedMessageWriterChannel",
    "PipesCloudContext",
    "PipesGCSContextLoader",
    "PipesGCSMessageWriter",
    "PipesS3ContextLoader",
    "PipesS3MessageWriter",
    "PipesSessionClaimedError",
    "PipesSessionConflictError",
    "azure_function",
    "cloud_function",
    "lambda_handler",
]
