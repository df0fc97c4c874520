"""Dagster definitions that run the example Lambda function (`function/handler.py`) through Pipes.

Settings come from the environment, as infra/aws outputs them: `PIPES_BUCKET` (the message
bucket), `PIPES_KEY_PREFIX` (the prefix sessions go under, the only one the function may write
to) and `PIPES_LAMBDA_FUNCTION` (the function's name or ARN), with boto3's own variables for
credentials and `AWS_REGION`. Unset, they fall back to the local stack's names, sessions at the
bucket's root (`dagster-pipes-cloud local --cloud aws` also prints its `AWS_ENDPOINT_URL_*`).
"""

import os

from dagster import (
    AssetCheckSpec,
    AssetExecutionContext,
    Backoff,
    Definitions,
    Jitter,
    MaterializeResult,
    RetryPolicy,
    asset,
)

from dagster_pipes_cloud.orchestration import PipesLambdaClient, PipesS3MessageReader


@asset(
    check_specs=[
        AssetCheckSpec(
            "total_is_positive", asset="lambda_total", description="Reported by the function."
        )
    ],
    # A throttled invocation (the platform had no capacity; the function did not run) fails the
    # step saying so; this policy runs the step again (after any failure, the function's own
    # too) after about 5 s, 15 s and 35 s, each +/- 5 s.
    retry_policy=RetryPolicy(
        max_retries=3, delay=5, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS
    ),
)
# Bare `MaterializeResult`: for an asset with checks, Dagster accepts the one result under
# that annotation only, not `MaterializeResult[Any]`.
def lambda_total(
    context: AssetExecutionContext, lambda_pipes: PipesLambdaClient
) -> MaterializeResult:  # type: ignore[type-arg]
    """Sums rows in Lambda. The function reports the materialization's metadata (rows, total)
    and the `total_is_positive` check, and returns the total."""
    invocation = lambda_pipes.run(
        context=context,
        function_name=os.environ.get("PIPES_LAMBDA_FUNCTION", "dagster-pipes-example"),
        event={"rows": 1000},
    )
    context.log.info(f"the function returned {invocation.response}")
    return invocation.get_materialize_result()  # the check's result travels with it


assets = [lambda_total]
resources = {
    "lambda_pipes": PipesLambdaClient(
        message_reader=PipesS3MessageReader(
            bucket=os.environ.get("PIPES_BUCKET", "dagster-pipes"),
            key_prefix=os.environ.get("PIPES_KEY_PREFIX"),
        )
    )
}
defs = Definitions(assets=assets, resources=resources)
