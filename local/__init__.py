"""Local stand-ins for the clouds: emulators and function hosts on 127.0.0.1.

Each is imported on first use, so a process that needs one stand-in (a function host's server,
say) does not load the others' dependencies.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dagster_pipes_cloud.local.azure_functions_host import LocalAzureFunctionHost
    from dagster_pipes_cloud.local.azurite import AzuriteEmulator
    from dagster_pipes_cloud.local.cloud_functions_host import LocalCloudFunctionHost
    from dagster_pipes_cloud.local.gcs import GCSEmulator
    from dagster_pipes_cloud.local.lambda_host import LocalLambdaHost
    from dagster_pipes_cloud.local.s3 import S3Emulator

_MODULES = {
    "AzuriteEmulator": "dagster_pipes_cloud.local.azurite",
    "GCSEmulator": "dagster_pipes_cloud.local.gcs",
    "LocalAzureFunctionHost": "dagster_pipes_cloud.local.azure_functions_host",
    "LocalCloudFunctionHost": "dagster_pipes_cloud.local.cloud_functions_host",
    "LocalLambdaHost": "dagster_pipes_cloud.local.lambda_host",
    "S3Emulator": "dagster_pipes_cloud.local.s3",
}

__all__ = [
    "AzuriteEmulator",
    "GCSEmulator",
    "LocalAzureFunctionHost",
    "LocalCloudFunctionHost",
    "LocalLambdaHost",
    "S3Emulator",
]


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
