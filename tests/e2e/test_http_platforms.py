"""What Cloud Functions and Azure Functions do alike, end to end: Dagster `materialize` -> the
platform's client -> its local host -> its blob store. Each test runs on both; what only one
platform does is in test_gcp.py and test_azure.py."""

from __future__ import annotations

import pytest
from e2e.http_platforms import PLATFORM_IDS, PLATFORMS, Platform
from support.dagster_testing import failure_text, logs_of, materialization_metadata


@pytest.fixture(params=sorted(PLATFORMS))
def platform(request: pytest.FixtureRequest) -> Platform:
    fixture, make = PLATFORMS[request.param]
    return make(request.getfixturevalue(fixture))


def test_a_warm_function_serves_six_invocations_in_a_row(platform: Platform) -> None:
    results = [platform.run("counting") for _ in range(6)]
    assert all(result.success for result in results), failure_text(
        next(r for r in results if not r.success)
    )
    counts = [materialization_metadata(r, platform.asset)["invocation"] for r in results]
    pids = {materialization_metadata(r, platform.asset)["pid"] for r in results}
    assert counts == list(range(counts[0], counts[0] + 6)), "one warm instance served them all"
    assert len(pids) == 1
    assert results[-1].responses == [{"invocation": counts[-1], "pid": pids.pop()}]


def test_reading_crosses_chunk_10_and_100(platform: Platform) -> None:
    client = platform.client(key_prefix="many-chunks", cleanup=False)
    result = platform.run("many_chunks", client=client, event={"messages": 600})
    assert result.success, failure_text(result)
    logs = logs_of(result)
    assert all(f"line {i}\n" in logs + "\n" for i in range(600))
    chunks = platform.store.list("many-chunks/")
    assert any(name.endswith("/100.json") for name in chunks), f"{len(chunks)} chunks"


def test_a_raised_error_fails_the_step_with_its_type_message_and_trace(platform: Platform) -> None:
    result = platform.run("failing")
    assert not result.success
    failure = failure_text(result)
    assert "ValueError: boom-123" in failure, failure
    assert failure.count("ValueError: boom-123") == 1, "the remote error is said once"
    assert 'raise ValueError("boom-123")' in failure, "with the function's own trace"
    assert "(HTTP status 500)" in failure
    assert "sent before the error" in logs_of(result)


def test_a_missing_bucket_is_named_before_the_function_runs(platform: Platform) -> None:
    # a drain timeout it cannot wait out: only the bucket's check as the session opens can end it
    client = platform.client("no-such-bucket", drain_timeout=3600)
    result = platform.run("counting", client=client)
    assert not result.success
    said = f"cannot read Pipes messages: {platform.kind} 'no-such-bucket' does not exist"
    assert said in failure_text(result)


def test_a_function_that_never_opens_pipes_is_named(platform: Platform) -> None:
    result = platform.run("not_pipes", client=platform.client(drain_timeout=1))
    assert not result.success
    failure = failure_text(result)
    assert "never opened Dagster Pipes" in failure
    noun = platform.kind.split()[-1]  # "bucket", or "container" on Azure
    assert f"can it write to that {noun}?" in failure, failure


def test_the_response_is_returned(platform: Platform) -> None:
    result = platform.run("paced", event={"messages": 3})
    assert result.success, failure_text(result)
    assert result.responses == [3]


def test_context_through_an_explicit_blob_injector_is_deleted_after(platform: Platform) -> None:
    result = platform.run("counting", client=platform.client(injector_prefix="contexts"))
    assert result.success, failure_text(result)
    assert platform.store.list("contexts/") == []


CONSOLE_LINKS = {"gcp": "gcp_cloud_logging", "azure": "azure_application_insights"}


@pytest.mark.parametrize("cloud", sorted(PLATFORMS))
def test_the_materialization_carries_the_platform_id_and_no_link_on_a_local_host(
    cloud: str, request: pytest.FixtureRequest
) -> None:
    fixture, make = PLATFORMS[cloud]
    platform = make(request.getfixturevalue(fixture))
    result = platform.run("counting")
    assert result.success, failure_text(result)
    metadata = materialization_metadata(result, platform.asset)
    platform_id = metadata[PLATFORM_IDS[cloud]]
    assert platform_id, "the local host gives each invocation an id, and the function answers it"
    assert CONSOLE_LINKS[cloud] not in metadata, "nothing tells where its console is"
    assert f"{PLATFORM_IDS[cloud]} {platform_id}" in logs_of(result)
