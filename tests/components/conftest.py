"""A cloud's local stack serving given functions, on the session's emulators: the environment
a components defs.yaml reads, as `dagster-pipes-cloud local` prints it."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager

import pytest

from dagster_pipes_cloud.local import (
    GCSEmulator,
    LocalAzureFunctionHost,
    LocalCloudFunctionHost,
    LocalLambdaHost,
    S3Emulator,
)
from dagster_pipes_cloud.local.azurite import AzuriteEmulator

BUCKET = "pipes-components"
FUNCTION_KEY = "components-function-key"

Serve = Callable[
    [str, Mapping[str, str], Mapping[str, str]], AbstractContextManager[dict[str, str]]
]


def _variable(name: str) -> str:
    return "PIPES_FUNCTION_URL_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


@pytest.fixture(scope="session")
def components_bucket(
    s3_emulator: S3Emulator, gcs_emulator: GCSEmulator, azurite: AzuriteEmulator
) -> str:
    s3_emulator.create_bucket(BUCKET)
    gcs_emulator.create_bucket(BUCKET)
    azurite.create_container(BUCKET)
    return BUCKET


@pytest.fixture
def serve(
    s3_emulator: S3Emulator,
    gcs_emulator: GCSEmulator,
    azurite: AzuriteEmulator,
    components_bucket: str,
) -> Serve:
    """`serve(cloud, {name: target}, extra_env)`: the functions on the cloud's local host; yields
    the environment (endpoints, PIPES_* variables) Dagster's side reads."""

    @contextmanager
    def start(
        cloud: str, functions: Mapping[str, str], extra_env: Mapping[str, str]
    ) -> Iterator[dict[str, str]]:
        [(name, target)] = functions.items()
        if cloud == "aws":
            env = {**s3_emulator.env, **extra_env}
            with LocalLambdaHost({name: target}, env=env) as lambda_host:
                yield {
                    **s3_emulator.env,
                    "AWS_ENDPOINT_URL_LAMBDA": lambda_host.endpoint_url,
                    "PIPES_BUCKET": components_bucket,
                    "PIPES_LAMBDA_FUNCTION": name,
                }
        elif cloud == "gcp":
            env = {**gcs_emulator.env, **extra_env}
            with LocalCloudFunctionHost(target, env=env, name=name) as gcf_host:
                yield {
                    **gcs_emulator.env,
                    "PIPES_BUCKET": components_bucket,
                    "PIPES_FUNCTION_URL": gcf_host.url,
                    _variable(name): gcf_host.url,
                }
        else:
            env = {**azurite.env, **extra_env}
            host = LocalAzureFunctionHost(target, env=env, name=name, function_key=FUNCTION_KEY)
            with host as azure_host:
                urls = azure_host.function_urls
                yield {
                    **azurite.env,
                    "AZURE_FUNCTIONS_KEY": FUNCTION_KEY,
                    "PIPES_CONTAINER": components_bucket,
                    "PIPES_FUNCTION_URL": next(iter(urls.values())),
                    **{_variable(function): url for function, url in urls.items()},
                }

    return start
