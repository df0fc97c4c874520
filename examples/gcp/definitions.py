"""Dagster definitions that run the example Cloud Function through Pipes.

Configured by the environment, as a deployment would be: `PIPES_BUCKET` (the message bucket),
`PIPES_FUNCTION_URL` (the function's URL), and google-auth's own variables (application default
credentials; `STORAGE_EMULATOR_HOST` for a local stack).
"""

import os
from typing import Any

from dagster import AssetExecutionContext, Definitions, MaterializeResult, asset

from dagster_pipes_cloud.orchestration import PipesCloudFunctionClient, PipesGCSMessageReader


@asset
def cloud_function_total(
    context: AssetExecutionContext, cloud_function_pipes: PipesCloudFunctionClient
) -> MaterializeResult[Any]:
    """Sums rows in a Cloud Function; it reports the materialization and returns the total."""
    invocation = cloud_function_pipes.run(
        context=context,
        function_url=os.environ.get("PIPES_FUNCTION_URL", "http://127.0.0.1:8080"),
        event={"rows": 1000},
    )
    context.log.info(f"the function returned {invocation.response}")
    return invocation.get_materialize_result()


assets = [cloud_function_total]
resources = {
    "cloud_function_pipes": PipesCloudFunctionClient(
        message_reader=PipesGCSMessageReader(bucket=os.environ.get("PIPES_BUCKET", "dagster-pipes"))
    )
}
defs = Definitions(assets=assets, resources=resources)
