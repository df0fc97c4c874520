"""Dagster definitions that run the example Cloud Function (`function/main.py`) through Pipes.

Settings come from the environment, as infra/gcp outputs them: `PIPES_BUCKET` (the message
bucket), `PIPES_KEY_PREFIX` (the prefix sessions go under, the only one the function may write
under) and `PIPES_FUNCTION_URL` (the function's URL), with google-auth's application default
credentials. Unset, they fall back to the local stack's bucket and to functions-framework's
default local URL (`dagster-pipes-cloud local --cloud gcp` prints the URL it serves, and the GCS
emulator's `STORAGE_EMULATOR_HOST`).
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

from dagster_pipes_cloud.orchestration import PipesCloudFunctionClient, PipesGCSMessageReader


@asset(
    check_specs=[
        AssetCheckSpec(
            "total_is_positive",
            asset="cloud_function_total",
            description="Reported by the function.",
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
def cloud_function_total(
    context: AssetExecutionContext, cloud_function_pipes: PipesCloudFunctionClient
) -> MaterializeResult:  # type: ignore[type-arg]
    """Sums rows in a Cloud Function. The function reports the materialization's metadata
    (rows, total) and the `total_is_positive` check, and returns the total."""
    invocation = cloud_function_pipes.run(
        context=context,
        function_url=os.environ.get("PIPES_FUNCTION_URL", "http://127.0.0.1:8080"),
        event={"rows": 1000},
    )
    context.log.info(f"the function returned {invocation.response}")
    return invocation.get_materialize_result()  # the check's result travels with it


assets = [cloud_function_total]
resources = {
    "cloud_function_pipes": PipesCloudFunctionClient(
        message_reader=PipesGCSMessageReader(
            bucket=os.environ.get("PIPES_BUCKET", "dagster-pipes"),
            key_prefix=os.environ.get("PIPES_KEY_PREFIX"),
        )
    )
}
defs = Definitions(assets=assets, resources=resources)
