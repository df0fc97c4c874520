"""Denied credentials on a real S3 API: moto with its IAM checks turned on knows no keys."""

from collections.abc import Iterator
from typing import Any

import pytest
from support.aws_testing import local_client, materialize_lambda
from support.dagster_testing import failure_text

from dagster_pipes_cloud.local import S3Emulator
from dagster_pipes_cloud.orchestration import PipesLambdaClient, PipesS3MessageReader


@pytest.fixture(scope="module")
def guarded_s3() -> Iterator[S3Emulator]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("INITIAL_NO_AUTH_ACTION_COUNT", "0")
        with S3Emulator() as emulator:
            yield emulator


def test_denied_credentials_fail_naming_the_bucket_before_invoking(
    guarded_s3: S3Emulator, aws_stack: Any
) -> None:
    invoked: list[str] = []

    def count_invoke(**_: Any) -> None:
        invoked.append("invoke")

    events = aws_stack.lambda_client.meta.events
    events.register("before-call.lambda.Invoke", count_invoke)
    client = PipesLambdaClient(
        client=aws_stack.lambda_client,
        message_reader=PipesS3MessageReader(
            bucket="guarded-bucket", client=local_client("s3", guarded_s3.endpoint_url)
        ),
    )

    try:
        result = materialize_lambda(client, "counting")
    finally:
        events.unregister("before-call.lambda.Invoke", count_invoke)
    assert not result.success
    failure = failure_text(result)
    assert "guarded-bucket" in failure and "denied" in failure
    assert invoked == []
