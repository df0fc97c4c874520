"""Runs in Dagster: message readers, context injectors and clients."""

from dagster_pipes_cloud.adapters._imports import require

require("dagster", "dagster")  # the install line to run, rather than a bare ModuleNotFoundError

from dagster_pipes_cloud.adapters.lambda_ import default_lambda_client
from dagster_pipes_cloud.orchestration.azure_blob import (
    PipesAzureBlobStorageContextInjector,
    PipesAzureBlobStorageMessageReader,
)
from dagster_pipes_cloud.orchestration.clients import (
    PipesAzureFunctionClient,
    PipesCloudFunctionClient,
    PipesFanOutError,
    PipesFunctionClient,
    PipesFunctionInvocation,
    PipesFunctionInvocations,
    PipesLambdaClient,
)
from dagster_pipes_cloud.orchestration.gcs import PipesGCSContextInjector, PipesGCSMessageReader
from dagster_pipes_cloud.orchestration.injectors import (
    PipesBlobStoreContextInjector,
    PipesEventContextInjector,
)
from dagster_pipes_cloud.orchestration.reader import PipesChunkedMessageReader, PipesSessionError
from dagster_pipes_cloud.orchestration.s3 import PipesS3ContextInjector, PipesS3MessageReader

__all__ = [
    "PipesAzureBlobStorageContextInjector",
    "PipesAzureBlobStorageMessageReader",
    "PipesAzureFunctionClient",
    "PipesBlobStoreContextInjector",
    "PipesChunkedMessageReader",
    "PipesCloudFunctionClient",
    "PipesEventContextInjector",
    "PipesFanOutError",
    "PipesFunctionClient",
    "PipesFunctionInvocation",
    "PipesFunctionInvocations",
    "PipesGCSContextInjector",
    "PipesGCSMessageReader",
    "PipesLambdaClient",
    "PipesS3ContextInjector",
    "PipesS3MessageReader",
    "PipesSessionError",
    "default_lambda_client",
]
