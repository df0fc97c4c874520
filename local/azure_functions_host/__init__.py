"""The local Azure Functions host: an `azure.functions.FunctionApp` served over HTTP on 127.0.0.1.

`host` owns the server process and keeps it running (`LocalAzureFunctionHost`); the server process
(`server`) indexes the app as the Azure Python worker does (`indexing`), routes requests to its
HTTP functions (`routes`) and runs each invocation as the worker does (`invocation`).
"""

from dagster_pipes_cloud.local.azure_functions_host.host import (
    DEFAULT_CONCURRENCY,
    FRONT_END_TIMEOUT,
    FunctionAppIndexError,
    LocalAzureFunctionHost,
)

__all__ = [
    "DEFAULT_CONCURRENCY",
    "FRONT_END_TIMEOUT",
    "FunctionAppIndexError",
    "LocalAzureFunctionHost",
]
