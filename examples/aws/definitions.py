"""Dagster definitions that run the example Lambda function through Pipes.

Configured by the environment, as a deployment would be: `PIPES_BUCKET` (the message bucket),
`PIPES_LAMBDA_FUNCTION` (the function's name or ARN), and boto3's own variables (credentials,
region, and `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL_LAMBDA` for a local stack).
"""

import os
from typing import Any

from dagster import AssetExecutionContext, Definitions, MaterializeResult, asset

from dagster_pipes_cloud.orchestration import PipesLambdaClient, PipesS3MessageReader


@asset
def lambda_total(
    context: AssetExecutionContext, lambda_pipes: PipesLambdaClient
) -> MaterializeResult[Any]:
    """Sums rows in Lambda; the function reports the materialization and returns the total."""
    invocation = lambda_pipes.run(
        context=context,
        function_name=os.environ.get("PIPES_LAMBDA_FUNCTION", "dagster-pipes-example"),
        event={"rows": 1000},
    )
    context.log.info(f"the function returned {invocation.response}")
    return invocation.get_materialize_result()


assets = [lambda_total]
resources = {
    "lambda_pipes": PipesLambdaClient(
        message_reader=PipesS3MessageReader(bucket=os.environ.get("PIPES_BUCKET", "dagster-pipes"))
    )
}
defs = Definitions(assets=assets, resources=resources)
