"""Session hygiene on each cloud's local stack, through Dagster: every run's blobs go under the
reader's and injector's base prefix, and with cleanup (the reader's default) nothing but each
session's claim is left there after the runs (the bucket's lifecycle rule ends it); without it,
the sessions stay for that rule."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from e2e.http_platforms import Platform, azure, gcp
from support.aws_testing import materialize_lambda
from support.dagster_testing import failure_text

from dagster_pipes_cloud.adapters.wire import CLAIMS_FOLDER, claim_key
from dagster_pipes_cloud.orchestration import (
    PipesAzureBlobStorageContextInjector,
    PipesGCSContextInjector,
    PipesLambdaClient,
    PipesS3ContextInjector,
    PipesS3MessageReader,
)
from dagster_pipes_cloud.orchestration._keys import DEFAULT_KEY_PREFIX

RUNS = 3
Run = Callable[[bool], Any]  # cleanup -> the materialize result


def aws_runner(stack: Any, prefix: str | None) -> tuple[Run, Any]:
    def run(cleanup: bool) -> Any:
        reader = PipesS3MessageReader(
            bucket=stack.bucket, client=stack.s3_client, key_prefix=prefix, cleanup=cleanup
        )
        injector = PipesS3ContextInjector(
            bucket=stack.bucket, client=stack.s3_client, key_prefix=prefix
        )
        client = PipesLambdaClient(
            client=stack.lambda_client, message_reader=reader, context_injector=injector
        )
        return materialize_lambda(client, "counting")

    return run, PipesS3MessageReader(bucket=stack.bucket, client=stack.s3_client).store


def http_runner(platform: Platform, prefix: str | None) -> tuple[Run, Any]:
    def run(cleanup: bool) -> Any:
        client = platform.client(injector_prefix=prefix, key_prefix=prefix, cleanup=cleanup)
        return platform.run("counting", client)

    return run, platform.store


RUNNERS = {
    "aws": ("aws_stack", aws_runner),
    "gcp": ("gcp_stack", lambda stack, prefix: http_runner(gcp(stack), prefix)),
    "azure": ("azure_stack", lambda stack, prefix: http_runner(azure(stack), prefix)),
}


@pytest.mark.parametrize("cloud", sorted(RUNNERS))
def test_only_the_claims_are_left_under_the_prefix_after_runs_with_cleanup(
    cloud: str, request: pytest.FixtureRequest
) -> None:
    fixture, runner = RUNNERS[cloud]
    run, store = runner(request.getfixturevalue(fixture), f"hygiene-{cloud}")
    for _ in range(RUNS):
        result = run(True)
        assert result.success, failure_text(result)
    keys = store.list(f"hygiene-{cloud}/")
    assert len(keys) == RUNS, keys
    sessions = [f"hygiene-{cloud}/{key.split('/')[2].removesuffix('.json')}" for key in keys]
    assert all(name.split("/")[1].startswith("messages-") for name in sessions), "contexts gone"
    assert keys == [claim_key(session) for session in sessions], "each session's claim alone"


@pytest.mark.parametrize("cloud", sorted(RUNNERS))
def test_without_cleanup_each_session_stays_under_the_prefix(
    cloud: str, request: pytest.FixtureRequest
) -> None:
    fixture, runner = RUNNERS[cloud]
    prefix = f"kept-{cloud}"
    run, store = runner(request.getfixturevalue(fixture), prefix)
    for _ in range(RUNS):
        result = run(False)
        assert result.success, failure_text(result)
    keys = store.list(f"{prefix}/")
    sessions = {key.split("/")[1] for key in keys if key.split("/")[1] != CLAIMS_FOLDER}
    assert len(sessions) == RUNS, keys
    claims = [key for key in keys if key.split("/")[1] == CLAIMS_FOLDER]
    assert sorted(claims) == sorted(claim_key(f"{prefix}/{name}") for name in sessions)
    assert all(session.startswith("messages-") for session in sessions), "contexts deleted"
    suffixes = {session.removeprefix("messages-") for session in sessions}
    assert all(len(suffix) == 32 for suffix in suffixes), "128 random bits a session"


INJECTORS = {
    "aws": lambda stack: PipesS3ContextInjector(bucket=stack.bucket, client=stack.s3_client),
    "gcp": lambda stack: PipesGCSContextInjector(
        bucket=stack.bucket, client=stack.storage_client()
    ),
    "azure": lambda stack: PipesAzureBlobStorageContextInjector(
        container=stack.container, client=stack.blob_client()
    ),
}


@pytest.mark.parametrize("cloud", sorted(RUNNERS))
def test_with_no_prefix_sessions_and_contexts_go_under_the_one_infra_grants(
    cloud: str, request: pytest.FixtureRequest
) -> None:
    """The readers' and injectors' default `key_prefix` is infra's on every cloud,
    "dagster-pipes": the only prefix its policies let the function write under."""
    assert DEFAULT_KEY_PREFIX == "dagster-pipes"
    fixture, runner = RUNNERS[cloud]
    stack = request.getfixturevalue(fixture)
    run, store = runner(stack, None)
    before = set(store.list(f"{DEFAULT_KEY_PREFIX}/"))
    result = run(False)
    assert result.success, failure_text(result)
    added = set(store.list(f"{DEFAULT_KEY_PREFIX}/")) - before
    sessions = {key.split("/")[1] for key in added} - {CLAIMS_FOLDER}
    assert len(sessions) == 1 and sessions.pop().startswith("messages-"), added
    with INJECTORS[cloud](stack).inject_context({}) as params:
        assert params["key"].startswith(f"{DEFAULT_KEY_PREFIX}/context-"), params
