"""Shared fixtures: the local emulators, each started once per test session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aws_testing import local_client
from botocore.config import Config

from dagster_pipes_cloud.local import LocalLambdaHost, S3Emulator


@pytest.fixture(scope="session")
def s3_emulator() -> Iterator[S3Emulator]:
    """moto's S3 server on 127.0.0.1; buckets persist for the session, so use unique names."""
    with S3Emulator() as emulator:
        yield emulator


class AwsStack:
    """moto's S3 with a message bucket, and a LocalLambdaHost running tests/e2e/aws_handlers."""

    bucket = "pipes-e2e"

    def __init__(self, s3: S3Emulator, host: LocalLambdaHost) -> None:
        self.env = {**s3.env, "AWS_ENDPOINT_URL_LAMBDA": host.endpoint_url}
        self.s3_client = local_client("s3", s3.endpoint_url)
        self.lambda_client = local_client(
            "lambda",
            host.endpoint_url,
            Config(retries={"total_max_attempts": 1}, read_timeout=120),
        )
        self.s3_client.create_bucket(Bucket=self.bucket)


AWS_HANDLERS = (
    "counting",
    "chatty",
    "failing",
    "event_target",
    "context_size",
    "not_pipes",
    "plain_call",
    "stacked",
    "official_writer",
    "fails_on_request",
    "slow",
    "reports_everything",
)


@pytest.fixture(scope="session")
def aws_stack(s3_emulator: S3Emulator) -> Iterator[AwsStack]:
    functions = {name: f"e2e.aws_handlers:{name}" for name in AWS_HANDLERS}
    with LocalLambdaHost(functions, env=s3_emulator.env, timeout=120) as host:
        yield AwsStack(s3_emulator, host)
