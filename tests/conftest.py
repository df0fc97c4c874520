"""Shared fixtures: the local emulators, each started once per test session."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from botocore.config import Config
from support.aws_testing import local_client
from support.azure_testing import azurite_connection_string

from dagster_pipes_cloud.adapters.azure_blob import blob_retry_policy
from dagster_pipes_cloud.local import (
    GCSEmulator,
    LocalAzureFunctionHost,
    LocalCloudFunctionHost,
    LocalLambdaHost,
    S3Emulator,
)
from dagster_pipes_cloud.local.azurite import AzuriteEmulator


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
    "appending",
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
    "large_and_non_ascii",
    "bad_line",
    "ends_midway",
    "fan_out_work",
    "fan_out_wait",
)


@pytest.fixture(scope="session")
def aws_stack(s3_emulator: S3Emulator) -> Iterator[AwsStack]:
    functions = {name: f"e2e.aws_handlers:{name}" for name in AWS_HANDLERS}
    with LocalLambdaHost(functions, env=s3_emulator.env, timeout=120) as host:
        yield AwsStack(s3_emulator, host)


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[GCSEmulator]:
    """gcp-storage-emulator on 127.0.0.1; buckets persist for the session, so use unique names."""
    with GCSEmulator() as emulator:
        yield emulator


class GcpStack:
    """The GCS emulator with a message bucket, and a local Cloud Functions host per function of
    tests/e2e/gcp_functions, each started on first use and kept for the session."""

    bucket = "pipes-e2e"

    def __init__(self, gcs: GCSEmulator, stack: ExitStack) -> None:
        self.gcs = gcs
        self.env = gcs.env
        self._stack = stack
        self._hosts: dict[str, LocalCloudFunctionHost] = {}
        gcs.create_bucket(self.bucket)

    def storage_client(self) -> Any:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(
            project=self.gcs.project,
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options={"api_endpoint": self.gcs.endpoint_url},
        )

    def url(self, function: str) -> str:
        if function not in self._hosts:
            host = LocalCloudFunctionHost(f"e2e.gcp_functions:{function}", env=self.env)
            self._hosts[function] = self._stack.enter_context(host)
        return self._hosts[function].url


@pytest.fixture(scope="session")
def gcp_stack(gcs_emulator: GCSEmulator) -> Iterator[GcpStack]:
    with ExitStack() as stack:
        yield GcpStack(gcs_emulator, stack)


@pytest.fixture(scope="session")
def azurite() -> Iterator[AzuriteEmulator]:
    """Azurite's blob service on 127.0.0.1; containers persist for the session, so use unique
    names."""
    with AzuriteEmulator() as emulator:
        yield emulator


@pytest.fixture(scope="session")
def azure_blob_client(azurite: AzuriteEmulator) -> Any:
    """A `BlobServiceClient` for Azurite's development account, with our retry policy."""
    from azure.storage.blob import BlobServiceClient

    return BlobServiceClient.from_connection_string(
        azurite.connection_string, retry_policy=blob_retry_policy()
    )


class AzureStack:
    """Azurite with a message container, and a LocalAzureFunctionHost serving the app of
    tests/e2e/azure_function_apps (function-key auth), started on first use and kept for the
    session."""

    container = "pipes-e2e"
    function_key = "e2e-function-key"

    def __init__(self, azurite: AzuriteEmulator, stack: ExitStack) -> None:
        self.azurite = azurite
        self.env = azurite.env
        self._stack = stack
        self._host: LocalAzureFunctionHost | None = None
        azurite.create_container(self.container)

    @property
    def origin(self) -> str:
        """Azurite's `http://host:port`, for a FaultProxy's upstream."""
        return self.azurite.endpoint_url.rsplit("/", 1)[0]

    def connection_string(self, proxy: Any = None) -> str:
        """Azurite's, or that of a FaultProxy in front of it."""
        endpoint = proxy.url if proxy is not None else self.azurite.endpoint_url
        return azurite_connection_string(endpoint)

    def blob_client(self, proxy: Any = None) -> Any:
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(
            self.connection_string(proxy), retry_policy=blob_retry_policy()
        )

    def url(self, route: str) -> str:
        if self._host is None:
            host = LocalAzureFunctionHost(
                "e2e.azure_function_apps:app", env=self.env, function_key=self.function_key
            )
            self._host = self._stack.enter_context(host)
        return f"{self._host.url}/api/{route}"


@pytest.fixture(scope="session")
def azure_stack(azurite: AzuriteEmulator) -> Iterator[AzureStack]:
    with ExitStack() as stack:
        yield AzureStack(azurite, stack)
