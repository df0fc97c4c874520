"""Run attribution end to end, on each cloud: the client sends the Dagster run id, asset keys and
retry number with the invocation (Lambda: the client context; HTTP: `X-Dagster-*` headers), and
the function's own log, as each local host keeps it, names them on one line."""

from __future__ import annotations

import pytest
import requests
from dagster_pipes import (
    DAGSTER_PIPES_CONTEXT_ENV_VAR,
    DAGSTER_PIPES_MESSAGES_ENV_VAR,
    encode_param,
)
from e2e.attempt_stacks import CLOUDS, attempt_stack
from support.dagster_testing import failure_text, materialize_run

from dagster_pipes_cloud.adapters.wire import attribution_headers


@pytest.mark.parametrize("cloud", CLOUDS)
def test_the_run_id_asset_keys_and_retry_number_are_on_one_line_of_the_function_log(
    cloud: str, request: pytest.FixtureRequest
) -> None:
    with attempt_stack(cloud, request) as stack:
        result = materialize_run(stack.client, "attributed_asset", **stack.run_kwargs)
        log = stack.function_log()
    assert result.success, failure_text(result)
    line = f"[dagster-pipes] Dagster run {result.run_id} asset_keys=attributed_asset retry_number=0"
    assert log.count(line) == 1, log
    assert log.count(result.run_id) == 1, "logged once, not again from the loaded context"


def test_an_invocation_whose_context_fails_to_load_is_still_found_by_run_id(
    request: pytest.FixtureRequest,
) -> None:
    bootstrap = {
        DAGSTER_PIPES_CONTEXT_ENV_VAR: encode_param({"bucket": "pipes-e2e", "key": "no/such"}),
        DAGSTER_PIPES_MESSAGES_ENV_VAR: encode_param({"bucket": "pipes-e2e", "key_prefix": "x"}),
    }
    headers = attribution_headers({"run_id": "run-lost-1", "asset_keys": "a", "retry_number": "0"})
    with attempt_stack("gcp", request) as stack:
        answer = requests.post(stack.run_kwargs["function_url"], json=bootstrap, headers=headers)
        log = stack.function_log()
    assert answer.status_code == 500
    assert "[dagster-pipes] Dagster run run-lost-1 asset_keys=a retry_number=0" in log
