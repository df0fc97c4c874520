"""Session hygiene on each cloud's local stack, through Dagster: every run's blobs go under the
reader's and injector's base prefix, and with cleanup (the reader's default) nothing is left
there after the runs; without it, the sessions stay for the bucket's lifecycle rule."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests
from aws_testing import materialize_lambda
from dagster_testing import failure_text, materialize_run

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

RUNS = 3
Run = Callable[[bool], Any]  # cleanup -> the materialize result


def aws_runner(stack: Any, prefix: str) -> tuple[Run, Any]:
    def run(cleanup: bool) -> Any:
        reader = PipesS3MessageReader(
            bucket=stack.bucket, client=stack.s3_client, key_prefix=prefix, cleanup=cleanup
        )
        injector = PipesS3ContextInjector(
            bucket=stack.bucket, client=stack.s3_client, key_prefix=prefix
        )
        client = PipesLambdaClient(
            client=stack.lambda_client, message_reader=reader, context_injector=injector
        )
        return materialize_lambda(client, "counting")

    return run, PipesS3MessageReader(bucket=stack.bucket, client=stack.s3_client).store


def gcp_runner(stack: Any, prefix: str) -> tuple[Run, Any]:
    storage = stack.storage_client()

    def run(cleanup: bool) -> Any:
        client = PipesCloudFunctionClient(
            message_reader=PipesGCSMessageReader(
                bucket=stack.bucket, client=storage, key_prefix=prefix, cleanup=cleanup
            ),
            context_injector=PipesGCSContextInjector(
                bucket=stack.bucket, client=storage, key_prefix=prefix
            ),
            session=requests.Session(),
        )
        return materialize_run(client, "gcf_asset", function_url=stack.url("counting"))

    return run, PipesGCSMessageReader(bucket=stack.bucket, client=storage).store


def azure_runner(stack: Any, prefix: str) -> tuple[Run, Any]:
    blobs = stack.blob_client()

    def run(cleanup: bool) -> Any:
        client = PipesAzureFunctionClient(
            message_reader=PipesAzureBlobStorageMessageReader(
                container=stack.container, client=blobs, key_prefix=prefix, cleanup=cleanup
            ),
            context_injector=PipesAzureBlobStorageContextInjector(
                container=stack.container, client=blobs, key_prefix=prefix
            ),
            function_key=stack.function_key,
        )
        return materialize_run(client, "azure_asset", function_url=stack.url("counting"))

    return run, PipesAzureBlobStorageMessageReader(container=stack.container, client=blobs).store


RUNNERS = {
    "aws": ("aws_stack", aws_runner),
    "gcp": ("gcp_stack", gcp_runner),
    "azure": ("azure_stack", azure_runner),
}


@pytest.mark.parametrize("cloud", sorted(RUNNERS))
def test_nothing_is_left_under_the_prefix_after_runs_with_cleanup(
    cloud: str, request: pytest.FixtureRequest
) -> None:
    fixture, runner = RUNNERS[cloud]
    run, store = runner(request.getfixturevalue(fixture), f"hygiene-{cloud}")
    for _ in range(RUNS):
        result = run(True)
        assert result.success, failure_text(result)
    assert store.list(f"hygiene-{cloud}/") == []


@pytest.mark.parametrize("cloud", sorted(RUNNERS))
def test_without_cleanup_each_session_stays_under_the_prefix(
    cloud: str, request: pytest.FixtureRequest
) -> None:
    fixture, runner = RUNNERS[cloud]
    prefix = f"kept-{cloud}"
    run, store = runner(request.getfixturevalue(fixture), prefix)
    for _ in range(RUNS):
        result = run(False)
        assert result.success, failure_text(result)
    keys = store.list(f"{prefix}/")
    sessions = {key.split("/")[1] for key in keys}
    assert len(sessions) == RUNS, keys
    assert all(session.startswith("messages-") for session in sessions), "contexts deleted"
    suffixes = {session.removeprefix("messages-") for session in sessions}
    assert all(len(suffix) == 32 for suffix in suffixes), "128 random bits a session"
