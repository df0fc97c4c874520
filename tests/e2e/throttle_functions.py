"""One function on each platform that reports which attempt of its step ran it, for the
throttling and attribution tests."""

from typing import Any

import azure.functions as func
from dagster_pipes import PipesContext

from dagster_pipes_cloud.external import azure_function, cloud_function, lambda_handler


def attempt(pipes: PipesContext, payload: Any) -> int:
    """Reports the step's retry number, which the run's materialization then shows."""
    pipes.log.info(f"ran on retry {pipes.retry_number}")
    pipes.report_asset_materialization(metadata={"retry_number": pipes.retry_number})
    return pipes.retry_number


attempt_lambda = lambda_handler(attempt)
attempt_cloud_function = cloud_function(attempt)

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
app.route(route="attempt", methods=["POST"])(azure_function(attempt))
