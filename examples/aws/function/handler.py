"""An AWS Lambda function that Dagster runs through Pipes.

This folder is what gets deployed: `dagster-pipes-cloud package --cloud aws` zips this module with
`requirements.txt` installed beside it, and the function's handler is `handler.handler`. The
function's role needs `s3:PutObject` on the message bucket (infra/aws grants it on the pipes
prefix only).
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
    pipes.report_asset_check(
        check_name="total_is_positive", passed=total > 0, metadata={"total": total}
    )
    return {"total": total}
