"""An HTTP-triggered Azure Function (Python v2 programming model) that Dagster runs through Pipes.

This folder is what gets deployed: `dagster-pipes-cloud package --cloud azure` builds a function
app from this file, `host.json` and `requirements.txt`. The function writes its messages with the
app's storage settings: `AZURE_STORAGE_ACCOUNT_URL` (with the app's managed identity, which needs
blob read and write on the message container) or `AZURE_STORAGE_CONNECTION_STRING`.
"""

import os
from typing import Any

import azure.functions as func
from dagster_pipes import PipesContext

from dagster_pipes_cloud.external import azure_function

# A function key, unless App Service authentication checks an Entra ID token in front of the
# routes: infra/azure sets PIPES_HTTP_AUTH_LEVEL=ANONYMOUS then.
app = func.FunctionApp(
    http_auth_level=func.AuthLevel[os.environ.get("PIPES_HTTP_AUTH_LEVEL", "FUNCTION")]
)


@app.route(route="totals", methods=["POST"])
@azure_function
def totals(pipes: PipesContext, payload: dict[str, Any]) -> dict[str, Any]:
    rows = int(payload.get("rows", 10))
    pipes.log.info(f"summing {rows} rows for run {pipes.run_id}")
    print(f"printed by the function: {rows} rows")
    total = sum(range(rows))
    pipes.report_asset_materialization(metadata={"rows": rows, "total": total})
    pipes.report_asset_check(
        check_name="total_is_positive", passed=total > 0, metadata={"total": total}
    )
    return {"total": total}
