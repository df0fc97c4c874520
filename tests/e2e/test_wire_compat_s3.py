"""Wire compatibility with the official classes, both ways, on moto's S3.

Our `lambda_handler` (our writer) read by dagster-aws's `PipesS3MessageReader` under
dagster-aws's own `PipesLambdaClient`; and dagster_pipes' `PipesS3MessageWriter` read by ours.
"""

from typing import Any

from dagster_aws.pipes import PipesLambdaClient as OfficialLambdaClient
from dagster_aws.pipes import PipesLambdaEventContextInjector
from dagster_aws.pipes import PipesS3MessageReader as OfficialS3MessageReader
from support.aws_testing import materialize_lambda
from support.dagster_testing import failure_text, logs_of, materialization_metadata

from dagster_pipes_cloud.orchestration import (
    PipesEventContextInjector,
    PipesLambdaClient,
    PipesS3MessageReader,
)


def test_our_writer_with_the_official_reader_and_client(aws_stack: Any) -> None:
    official = OfficialLambdaClient(
        client=aws_stack.lambda_client,
        context_injector=PipesLambdaEventContextInjector(),
        message_reader=OfficialS3MessageReader(
            bucket=aws_stack.bucket,
            client=aws_stack.s3_client,
            interval=0.1,
            include_stdio_in_messages=True,
        ),
    )
    result = materialize_lambda(official, "counting", event={})
    assert result.success, failure_text(result)
    assert "invocation " in logs_of(result)
    assert "invocation" in materialization_metadata(result, "lambda_asset")


def test_the_official_writer_with_our_reader(aws_stack: Any) -> None:
    ours = PipesLambdaClient(
        client=aws_stack.lambda_client,
        message_reader=PipesS3MessageReader(bucket=aws_stack.bucket, client=aws_stack.s3_client),
        context_injector=PipesEventContextInjector(),
    )
    result = materialize_lambda(ours, "official_writer", event={})
    assert result.success, failure_text(result)
    assert "written by dagster_pipes" in logs_of(result)
    assert materialization_metadata(result, "lambda_asset")["writer"] == "dagster_pipes"
