"""Bad input, end to end, on the three clouds alike (Lambda on S3, Cloud Functions on GCS, Azure
Functions on Azure Blob Storage): a malformed chunk line, a 1 MB message of non-ASCII text, a
bootstrap key forged in the event, a function killed mid-run, and the credentials the run uses,
which none of its events may show."""

from __future__ import annotations

import re
import secrets
from typing import Any

import boto3
import pytest
from botocore.config import Config
from dagster import serialize_value
from dagster_pipes import DAGSTER_PIPES_CONTEXT_ENV_VAR, DAGSTER_PIPES_MESSAGES_ENV_VAR
from e2e.function_bodies import NON_ASCII, non_ascii_text
from e2e.http_platforms import CLOUDS, Platform
from support.dagster_testing import failure_text, logs_of, materialization_metadata, materialize_run

from dagster_pipes_cloud import orchestration
from dagster_pipes_cloud.adapters.cloud_functions import CloudFunctionInvoker
from dagster_pipes_cloud.local import S3Emulator
from dagster_pipes_cloud.local.azurite import ACCOUNT_KEY


@pytest.fixture(params=sorted(CLOUDS))
def cloud(request: pytest.FixtureRequest) -> Platform:
    fixture, make = CLOUDS[request.param]
    return make(request.getfixturevalue(fixture))


def test_a_malformed_chunk_line_is_named_with_its_key_and_the_rest_kept(cloud: Platform) -> None:
    prefix = f"bad-line-{secrets.token_hex(4)}"
    result = cloud.run("bad_line", client=cloud.client(key_prefix=prefix))
    assert result.success, failure_text(result)
    logs = logs_of(result)
    chunk = re.escape(cloud.store.url(f"{prefix}/")) + r"[^/\s]+/1\.json"
    assert re.search(rf"line 2 of {chunk} is not JSON", logs), logs
    assert "kept message" in logs
    assert materialization_metadata(result, cloud.asset)["kept"] == 1


def test_a_1_mb_message_of_non_ascii_text_arrives_intact(cloud: Platform) -> None:
    result = cloud.run("large_and_non_ascii", event={"size": 1_000_000})
    assert result.success, failure_text(result)
    sent = non_ascii_text(1_000_000)
    longest = max(logs_of(result).split("\n"), key=len)
    assert longest == sent, f"{len(longest)} characters arrived of {len(sent)}"
    assert materialization_metadata(result, cloud.asset)["text"] == NON_ASCII
    assert result.responses == [NON_ASCII]


def test_a_bootstrap_key_forged_in_the_event_is_refused_before_invoking(cloud: Platform) -> None:
    before = cloud.run("counting")
    forged = {
        key: cloud.run("counting", event={key: "forged", "n": 1})
        for key in (DAGSTER_PIPES_CONTEXT_ENV_VAR, DAGSTER_PIPES_MESSAGES_ENV_VAR)
    }
    after = cloud.run("counting")
    for key, result in forged.items():
        assert not result.success
        assert f"the event may not set ['{key}']" in failure_text(result)
    counts = [materialization_metadata(r, cloud.asset)["invocation"] for r in (before, after)]
    assert counts[1] == counts[0] + 1, "a forged event reached the function"


def with_credentials(cloud: Platform) -> tuple[Any, list[str]]:
    """A Pipes client on `cloud`'s stack sending credentials of its own (for Lambda and S3 a
    secret access key, for Cloud Functions an ID token; Azure's are the stack's function key and
    Azurite's account key), and those secrets."""
    stack = cloud.stack
    if cloud.asset == "lambda_asset":
        secret = f"aws-secret-{secrets.token_hex(16)}"

        def aws_client(service: str, endpoint: str) -> Any:
            return boto3.client(
                service,
                endpoint_url=endpoint,
                region_name=S3Emulator.region,
                aws_access_key_id=S3Emulator.access_key_id,
                aws_secret_access_key=secret,
                config=Config(retries={"total_max_attempts": 1}, read_timeout=120),
            )

        s3 = aws_client("s3", stack.env["AWS_ENDPOINT_URL_S3"])
        client = orchestration.PipesLambdaClient(
            client=aws_client("lambda", stack.env["AWS_ENDPOINT_URL_LAMBDA"]),
            message_reader=orchestration.PipesS3MessageReader(bucket=stack.bucket, client=s3),
        )
        return client, [secret]
    if cloud.asset == "gcf_asset":
        token = f"id-token-{secrets.token_hex(16)}"
        client = orchestration.PipesCloudFunctionClient(
            message_reader=orchestration.PipesGCSMessageReader(
                bucket=stack.bucket, client=stack.storage_client()
            ),
            invoker=CloudFunctionInvoker(id_token_source=lambda audience: token),
        )
        return client, [token]
    return cloud.client(), [stack.function_key, ACCOUNT_KEY]


def event_log_text(result: Any) -> str:
    """Every event the run recorded, whole (messages, failures with their causes, metadata)."""
    entries = result.instance_for_test.all_logs(result.run_id)
    return "\n".join(serialize_value(entry) for entry in entries)


def test_credentials_are_in_no_event_of_a_run_that_passes_or_fails(cloud: Platform) -> None:
    client, credentials = with_credentials(cloud)
    results = [cloud.run(function, client=client) for function in ("counting", "failing")]
    assert [result.success for result in results] == [True, False]
    assert "sent before the error" in event_log_text(results[1]), "the failure's events were read"
    for result in results:
        events = event_log_text(result)
        shown = [secret for secret in credentials if secret in events]
        assert not shown, f"credentials in the events of run {result.run_id}"


def test_a_function_key_in_the_url_is_in_no_event(azure_stack: Any) -> None:
    """Azure's portal gives a function's URL with its key as `?code=`."""
    keyless = orchestration.PipesAzureFunctionClient(
        message_reader=orchestration.PipesAzureBlobStorageMessageReader(
            container=azure_stack.container, client=azure_stack.blob_client()
        )
    )
    url = f"{azure_stack.url('failing')}?code={azure_stack.function_key}"
    result = materialize_run(keyless, "azure_asset", function_url=url)
    assert not result.success
    assert "ValueError: boom-123" in failure_text(result), "the key was accepted"
    assert azure_stack.function_key not in event_log_text(result)
