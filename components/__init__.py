"""Dagster components that run a cloud function as a Pipes asset, one per function platform.

Registered for `dg` (`dg list components`, `dg scaffold defs`) under the
`dagster_dg_cli.registry_modules` entry point, as `dagster_pipes_cloud.components.<Name>`.
"""

from dagster_pipes_cloud.components.azure_functions import AzureFunctionComponent
from dagster_pipes_cloud.components.base import PipesFunctionComponent
from dagster_pipes_cloud.components.cloud_functions import CloudFunctionComponent
from dagster_pipes_cloud.components.lambda_ import LambdaFunctionComponent

__all__ = [
    "AzureFunctionComponent",
    "CloudFunctionComponent",
    "LambdaFunctionComponent",
    "PipesFunctionComponent",
]
