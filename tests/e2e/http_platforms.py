"""Cloud Functions and Azure Functions as the end-to-end tests use them alike: a Pipes client on
the session's stack, a run through Dagster, and the bucket as our readers see it. `CLOUDS` adds
Lambda, for the tests that run on all three clouds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
from support.dagster_testing import materialize_run

from dagster_pipes_cloud.adapters import BlobStore
from dagster_pipes_cloud.orchestration import (
    PipesAzureBlobStorageContextInjector,
    PipesAzureBlobStorageMessageReader,
    PipesAzureFunctionClient,
    PipesCloudFunctionClient,
    PipesGCSContextInjector,
    PipesGCSMessageReader,
    PipesLambdaClient,
    PipesS3ContextInjector,
    PipesS3MessageReader,
)


@dataclass
class Platform:
    """One HTTP platform's stack.

    `client(bucket, injector_prefix, **reader)` makes a Pipes client reading from `bucket`
    (default: the stack's), with a blob context injector under `injector_prefix` if given;
    `store` is the stack's bucket; `kind` names a bucket as errors do; `target(function)` is
    the keyword naming a function to the client's `run` (default: its URL, `function_url`).
    """

    asset: str
    stack: Any
    client: Callable[..., Any]
    store: BlobStore
    kind: str
    target: Callable[[str], dict[str, str]] | None = None

    def where(self, function: str) -> dict[str, str]:
        """The keyword naming `function` to the client's `run`."""
        return self.target(function) if self.target else {"function_url": self.stack.url(function)}

    def run(self, function: str, client: Any = None, **run_kwargs: Any) -> Any:
        target = self.where(function)
        return materialize_run(client or self.client(), self.asset, **target, **run_kwargs)


def gcp(stack: Any) -> Platform:
    def client(bucket: str | None = None, injector_prefix: str | None = None, **reader: Any):
        storage = stack.storage_client()
        bucket = bucket or stack.bucket
        injector = (
            PipesGCSContextInjector(bucket=bucket, client=storage, key_prefix=injector_prefix)
            if injector_prefix
            else None
        )
        return PipesCloudFunctionClient(
            message_reader=PipesGCSMessageReader(bucket=bucket, client=storage, **reader),
            context_injector=injector,
            session=requests.Session(),
        )

    store = PipesGCSMessageReader(bucket=stack.bucket, client=stack.storage_client()).store
    return Platform("gcf_asset", stack, client, store, "GCS bucket")


def azure(stack: Any) -> Platform:
    def client(bucket: str | None = None, injector_prefix: str | None = None, **reader: Any):
        blobs = stack.blob_client()
        container = bucket or stack.container
        injector = (
            PipesAzureBlobStorageContextInjector(
                container=container, client=blobs, key_prefix=injector_prefix
            )
            if injector_prefix
            else None
        )
        return PipesAzureFunctionClient(
            message_reader=PipesAzureBlobStorageMessageReader(
                container=container, client=blobs, **reader
            ),
            context_injector=injector,
            function_key=stack.function_key,
        )

    reader = PipesAzureBlobStorageMessageReader(
        container=stack.container, client=stack.blob_client()
    )
    return Platform("azure_asset", stack, client, reader.store, "Azure container")


def aws(stack: Any) -> Platform:
    def client(bucket: str | None = None, injector_prefix: str | None = None, **reader: Any):
        bucket = bucket or stack.bucket
        injector = (
            PipesS3ContextInjector(
                bucket=bucket, client=stack.s3_client, key_prefix=injector_prefix
            )
            if injector_prefix
            else None
        )
        return PipesLambdaClient(
            client=stack.lambda_client,
            message_reader=PipesS3MessageReader(bucket=bucket, client=stack.s3_client, **reader),
            context_injector=injector,
        )

    store = PipesS3MessageReader(bucket=stack.bucket, client=stack.s3_client).store

    def by_name(function: str) -> dict[str, str]:
        return {"function_name": function}

    return Platform("lambda_asset", stack, client, store, "S3 bucket", by_name)


PLATFORMS: dict[str, tuple[str, Callable[[Any], Platform]]] = {
    "gcp": ("gcp_stack", gcp),
    "azure": ("azure_stack", azure),
}
"""Each HTTP platform's stack fixture, and how to make its `Platform` from that stack."""
CLOUDS: dict[str, tuple[str, Callable[[Any], Platform]]] = {"aws": ("aws_stack", aws), **PLATFORMS}
"""`PLATFORMS` and Lambda."""

PLATFORM_IDS = {
    "aws": "aws_lambda_request_id",
    "gcp": "gcp_execution_id",
    "azure": "azure_functions_invocation_id",
}
"""The metadata key of the platform's id of an invocation, per cloud."""
