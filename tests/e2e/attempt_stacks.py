"""The `attempt` function of `e2e.throttle_functions` on each cloud's local host, with a Pipes
client for it: what the throttling and attribution tests run through Dagster."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from support.aws_testing import local_client

from dagster_pipes_cloud.adapters.azure_functions import AzureFunctionInvoker
from dagster_pipes_cloud.adapters.cloud_functions import CloudFunctionInvoker
from dagster_pipes_cloud.adapters.lambda_ import LambdaInvoker
from dagster_pipes_cloud.local import (
    LocalAzureFunctionHost,
    LocalCloudFunctionHost,
    LocalLambdaHost,
)
from dagster_pipes_cloud.orchestration import (
    PipesAzureBlobStorageMessageReader,
    PipesAzureFunctionClient,
    PipesCloudFunctionClient,
    PipesGCSMessageReader,
    PipesLambdaClient,
    PipesS3MessageReader,
)

CLOUDS = ("aws", "gcp", "azure")


@dataclass(frozen=True)
class AttemptStack:
    """A Pipes client, the `run` arguments that reach `attempt`, and the function's log as its
    host keeps it."""

    client: Any
    run_kwargs: dict[str, Any]
    function_log: Callable[[], str]


@contextmanager
def attempt_stack(
    cloud: str, request: pytest.FixtureRequest, *, throttle_first: int = 0, resends: int = 0
) -> Iterator[AttemptStack]:
    """`attempt` on a fresh local host of `cloud` that throttles its first `throttle_first`
    invocations, called by a client whose invoker resends a throttled one `resends` times."""
    if cloud == "aws":
        s3, aws = request.getfixturevalue("s3_emulator"), request.getfixturevalue("aws_stack")
        functions = {"attempt": "e2e.throttle_functions.attempt_lambda"}
        with LocalLambdaHost(functions, env=s3.env, throttle_first=throttle_first) as host:
            lambda_client = local_client("lambda", host.endpoint_url)
            yield AttemptStack(
                PipesLambdaClient(
                    message_reader=PipesS3MessageReader(bucket=aws.bucket, client=aws.s3_client),
                    invoker=LambdaInvoker(lambda_client, resend_attempts=resends),
                ),
                {"function_name": "attempt"},
                lambda: "".join(p.read_text() for p in host.log_path("attempt").glob("*.log")),
            )
    elif cloud == "gcp":
        gcp = request.getfixturevalue("gcp_stack")
        target = "e2e.throttle_functions:attempt_cloud_function"
        with LocalCloudFunctionHost(target, env=gcp.env, throttle_first=throttle_first) as host:
            gcf_invoker = CloudFunctionInvoker(session=requests.Session(), resend_attempts=resends)
            reader = PipesGCSMessageReader(bucket=gcp.bucket, client=gcp.storage_client())
            yield AttemptStack(
                PipesCloudFunctionClient(message_reader=reader, invoker=gcf_invoker),
                {"function_url": host.url},
                host.log_path.read_text,
            )
    else:
        azure = request.getfixturevalue("azure_stack")
        target = "e2e.throttle_functions:app"
        with LocalAzureFunctionHost(target, env=azure.env, throttle_first=throttle_first) as host:
            invoker = AzureFunctionInvoker(session=requests.Session(), resend_attempts=resends)
            container, blobs = azure.container, azure.blob_client()
            yield AttemptStack(
                PipesAzureFunctionClient(
                    message_reader=PipesAzureBlobStorageMessageReader(
                        container=container, client=blobs
                    ),
                    invoker=invoker,
                ),
                {"function_url": f"{host.url}/api/attempt"},
                host.log_path.read_text,
            )
