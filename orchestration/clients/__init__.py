"""Pipes clients, one module per function platform, on one base."""

from dagster_pipes_cloud.orchestration.clients.azure_functions import PipesAzureFunctionClient
from dagster_pipes_cloud.orchestration.clients.base import (
    PipesFunctionClient,
    PipesFunctionInvocation,
)
from dagster_pipes_cloud.orchestration.clients.cloud_functions import PipesCloudFunctionClient
from dagster_pipes_cloud.orchestration.clients.fan_out import (
    PipesFanOutError,
    PipesFunctionInvocations,
)
from dagster_pipes_cloud.orchestration.clients.lambda_ import PipesLambdaClient

__all__ = [
    "PipesAzureFunctionClient",
    "PipesCloudFunctionClient",
    "PipesFanOutError",
    "PipesFunctionClient",
    "PipesFunctionInvocation",
    "PipesFunctionInvocations",
    "PipesLambdaClient",
]
