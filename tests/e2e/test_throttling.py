"""Throttling end to end, on each cloud: the local host refuses the first two invocations as its
platform refuses one it has no capacity for, each fails its step naming the throttling, and the
asset's Dagster `RetryPolicy` runs it again until its third attempt succeeds."""

from __future__ import annotations

from typing import Any

import pytest
from dagster import Backoff, DagsterEventType, Jitter, RetryPolicy, asset
from e2e.attempt_stacks import CLOUDS, attempt_stack
from support.dagster_testing import failure_text, materialization_metadata, materialize_recorded

THROTTLED = 2
RETRY_POLICY = RetryPolicy(
    max_retries=3, delay=0.2, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS
)


def materialize_with_retries(client: Any, **run_kwargs: Any) -> Any:
    @asset(
        name="throttled_asset", retry_policy=RETRY_POLICY, required_resource_keys={"pipes_client"}
    )
    def throttled_asset(context) -> Any:  # type: ignore[no-untyped-def]
        invocation = context.resources.pipes_client.run(context=context, **run_kwargs)
        return invocation.get_materialize_result()

    return materialize_recorded([throttled_asset], {"pipes_client": client})


@pytest.mark.parametrize("cloud", CLOUDS)
def test_two_throttled_attempts_then_the_retry_policy_succeeds(
    cloud: str, request: pytest.FixtureRequest
) -> None:
    with attempt_stack(cloud, request, throttle_first=THROTTLED) as stack:
        result = materialize_with_retries(stack.client, **stack.run_kwargs)
        log = stack.function_log()
    assert result.success, failure_text(result)
    assert materialization_metadata(result, "throttled_asset")["retry_number"] == THROTTLED
    retried = [
        event
        for event in result.all_events
        if event.event_type == DagsterEventType.STEP_UP_FOR_RETRY
    ]
    assert len(retried) == THROTTLED
    for event in retried:
        failure = event.event_specific_data.error.to_string()
        assert "throttled the invocation" in failure and "RetryPolicy" in failure
    assert f"Dagster run {result.run_id} asset_keys=throttled_asset retry_number=2" in log
    assert "retry_number=0" not in log and "retry_number=1" not in log, "throttled: never ran"


@pytest.mark.parametrize("cloud", CLOUDS)
def test_a_brief_throttle_is_resent_by_the_invoker_within_one_attempt(
    cloud: str, request: pytest.FixtureRequest
) -> None:
    with attempt_stack(cloud, request, throttle_first=THROTTLED, resends=THROTTLED) as stack:
        result = materialize_with_retries(stack.client, **stack.run_kwargs)
    assert result.success, failure_text(result)
    assert materialization_metadata(result, "throttled_asset")["retry_number"] == 0
