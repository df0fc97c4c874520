"""An HTTP Google Cloud Function (2nd gen) that Dagster runs through Pipes.

This folder is what gets deployed: `dagster-pipes-cloud package --cloud gcp` zips this file with
`requirements.txt`, and the function's entry point is `main`. The function's service account
needs object create and read on the message bucket (infra/gcp grants them on the pipes prefix
only).
"""

from typing import Any

import functions_framework
from dagster_pipes import PipesContext

from dagster_pipes_cloud.external import cloud_function


@functions_framework.http
@cloud_function
def main(pipes: PipesContext, payload: dict[str, Any]) -> dict[str, Any]:
    rows = int(payload.get("rows", 10))
    pipes.log.info(f"summing {rows} rows for run {pipes.run_id}")
    print(f"printed by the function: {rows} rows")
    total = sum(range(rows))
    pipes.report_asset_materialization(metadata={"rows": rows, "total": total})
    pipes.report_asset_check(
        check_name="total_is_positive", passed=total > 0, metadata={"total": total}
    )
    return {"total": total}
