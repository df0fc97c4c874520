"""A function that only reports an asset check, on each platform: what a check-only component
invokes. The event names the asset, as a function reporting a check of a multi-asset check must."""

from typing import Any

import azure.functions as func
import functions_framework
from dagster_pipes import PipesContext

from dagster_pipes_cloud.external import azure_function, cloud_function, lambda_handler


def check_rows(pipes: PipesContext, payload: dict[str, Any]) -> dict[str, Any]:
    rows = int(payload.get("rows", 0))
    pipes.log.info(f"checking {rows} rows of {payload['asset']}")
    pipes.report_asset_check(
        asset_key=payload["asset"], check_name="has_rows", passed=rows > 0, metadata={"rows": rows}
    )
    return {"rows": rows}


@lambda_handler
def handler(pipes: PipesContext, payload: dict[str, Any]) -> dict[str, Any]:
    return check_rows(pipes, payload)


@functions_framework.http
@cloud_function
def main(pipes: PipesContext, payload: dict[str, Any]) -> dict[str, Any]:
    return check_rows(pipes, payload)


app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


@app.route(route="checks", methods=["POST"])
@azure_function
def checks(pipes: PipesContext, payload: dict[str, Any]) -> dict[str, Any]:
    return check_rows(pipes, payload)
