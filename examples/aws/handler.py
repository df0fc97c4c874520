"""An AWS Lambda function that Dagster runs through Pipes.

Deploy this module with `dagster-pipes-cloud[aws]` in the bundle and the handler set to
`handler.handler`; the function's role needs `s3:PutObject` on the message bucket.
"""

from typing import Any

from dagster_pipes import PipesContext

from dagster_pipes_cloud.external import lambda_handler


@lambda_handler
def handler(pipes: PipesContext, payload: dict[str, Any]) -> dict[str, Any]:
    rows = int(payload.get("rows", 10))
    pipes.log.info(f"summing {rows} rows for run {pipes.run_id}")
    print(f"printed by the function: {rows} rows")
    total = sum(range(rows))
    pipes.report_asset_materialization(metadata={"rows": rows, "total": total})
    return {"total": total}
