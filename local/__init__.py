"""Local stand-ins for the clouds: emulators and function hosts on 127.0.0.1."""

from dagster_pipes_cloud.local.cloud_functions_host import LocalCloudFunctionHost
from dagster_pipes_cloud.local.gcs import GCSEmulator
from dagster_pipes_cloud.local.lambda_host import LocalLambdaHost
from dagster_pipes_cloud.local.s3 import S3Emulator

__all__ = [
    "GCSEmulator",
    "LocalCloudFunctionHost",
    "LocalLambdaHost",
    "S3Emulator",
]
