"""Wire compatibility with the official classes, both ways, on moto's S3.

Our `lambda_handler` (our writer) read by dagster-aws's `PipesS3MessageReader` under
dagster-aws's own `PipesLambdaClient`; and dagster_pipes' `PipesS3MessageWriter` read by ours.
"""

from typing import Any

from dagster import AssetExecutionContext, asset
from dagster_aws.pipes import PipesLambdaClient as OfficialLambdaClient
from dagster_aws.pipes import PipesLambdaEventContextInjector
from dagster_aws.pipes import PipesS3MessageReader as OfficialS3MessageReader
from dagster_testing import failure_text, logs_of, materialization_metadata, materialize_recorded

from dagster_pipes_cloud.orchestration import (
    PipesEventContextInjector,
    PipesLambdaClient,
    PipesS3MessageReader,
)


def materialize_with(client: Any, function_name: str) -> Any:
    @asset(required_resource_keys={"pipes_client"})
    def compat_asset(context: AssetExecutionContext) -> Any:
        pipes_client = context.resources.pipes_client
        invocation = pipes_client.run(context=context, function_name=function_name, event={})
        return invocation.get_materialize_result()

    return materialize_recorded([compat_asset], {"pipes_client": client})


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
    result = materialize_with(official, "counting")
    assert result.success, failure_text(result)
    assert "invocation " in logs_of(result)
    assert "invocation" in materialization_metadata(result, "compat_asset")


def test_the_official_writer_with_our_reader(aws_stack: Any) -> None:
    ours = PipesLambdaClient(
        client=aws_stack.lambda_client,
        message_reader=PipesS3MessageReader(bucket=aws_stack.bucket, client=aws_stack.s3_client),
        context_injector=PipesEventContextInjector(),
    )
    result = materialize_with(ours, "official_writer")
    assert result.success, failure_text(result)
    assert "written by dagster_pipes" in logs_of(result)
    assert materialization_metadata(result, "compat_asset")["writer"] == "dagster_pipes"
