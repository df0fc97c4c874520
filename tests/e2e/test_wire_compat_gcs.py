"""Wire compatibility with the official classes, both ways, on the GCS emulator.

Our `cloud_function` (our writer) read by dagster-gcp's `PipesGCSMessageReader`; and
dagster_pipes' `PipesGCSMessageWriter` read by ours.
"""

from typing import Any

import requests
from dagster_gcp.pipes import PipesGCSMessageReader as OfficialGCSMessageReader
from support.dagster_testing import failure_text, logs_of, materialization_metadata, materialize_run

from dagster_pipes_cloud.orchestration import PipesCloudFunctionClient, PipesGCSMessageReader


def test_our_writer_with_the_official_reader(gcp_stack: Any) -> None:
    client = PipesCloudFunctionClient(
        message_reader=OfficialGCSMessageReader(
            bucket=gcp_stack.bucket,
            client=gcp_stack.storage_client(),
            interval=0.1,
            include_stdio_in_messages=True,
        ),
        session=requests.Session(),
    )
    result = materialize_run(client, "gcf_asset", function_url=gcp_stack.url("counting"))
    assert result.success, failure_text(result)
    assert "invocation " in logs_of(result)
    assert "invocation" in materialization_metadata(result, "gcf_asset")


def test_the_official_writer_with_our_reader(gcp_stack: Any) -> None:
    client = PipesCloudFunctionClient(
        message_reader=PipesGCSMessageReader(
            bucket=gcp_stack.bucket, client=gcp_stack.storage_client()
        ),
        session=requests.Session(),
    )
    result = materialize_run(client, "gcf_asset", function_url=gcp_stack.url("official_writer"))
    assert result.success, failure_text(result)
    assert "written by dagster_pipes" in logs_of(result)
    assert materialization_metadata(result, "gcf_asset")["writer"] == "dagster_pipes"
    assert result.responses == ["official"]
