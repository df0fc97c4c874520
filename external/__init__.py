"""Runs inside the function: Pipes message writers, context loaders and entrypoint decorators.

Depends on dagster-pipes and one cloud SDK, never on dagster.
"""

from dagster_pipes_cloud.external.lambda_ import lambda_handler
from dagster_pipes_cloud.external.loader import PipesBlobStoreContextLoader
from dagster_pipes_cloud.external.s3 import PipesS3ContextLoader, PipesS3MessageWriter
from dagster_pipes_cloud.external.writer import (
    PipesChunkedMessageWriter,
    PipesChunkedMessageWriterChannel,
)

__all__ = [
    "PipesBlobStoreContextLoader",
    "PipesChunkedMessageWriter",
    "PipesChunkedMessageWriterChannel",
    "PipesS3ContextLoader",
    "PipesS3MessageWriter",
    "lambda_handler",
]
