"""boto3 clients for the local AWS stand-ins (dummy credentials, one region)."""

from typing import Any

import boto3
from botocore.config import Config

from support.dagster_testing import materialize_run

LOCAL_CREDENTIALS = {
    "region_name": "us-east-1",
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
}


def local_client(service: str, endpoint_url: str, config: Config | None = None) -> Any:
    return boto3.client(service, endpoint_url=endpoint_url, config=config, **LOCAL_CREDENTIALS)


def unreachable_client(service: str) -> Any:
    """A client pointed at a closed local port, failing at once, without botocore retries."""
    config = Config(retries={"total_max_attempts": 1}, connect_timeout=1)
    return local_client(service, "http://127.0.0.1:9", config)


def materialize_lambda(client: Any, function_name: str, **run_kwargs: Any) -> Any:
    """Materialize `lambda_asset`, which runs `function_name` through the Pipes `client` (ours or
    dagster-aws's); the recorded result also carries the function's `responses`."""
    return materialize_run(client, "lambda_asset", function_name=function_name, **run_kwargs)
