"""A function whose process ends mid-run, end to end on each platform's local host: the step
fails saying the process ended, keeps what the function sent before, does not ask the dead
function to stop, and the next materialize of the same function succeeds."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import pytest
from e2e.http_platforms import CLOUDS
from support.dagster_testing import failure_text, logs_of

Run = Callable[[dict[str, Any]], Any]
ENDINGS = [{"exit": 3}, {"exit": 1}, {"signal": "SIGKILL"}]


@pytest.fixture(params=sorted(CLOUDS))
def run(request: pytest.FixtureRequest) -> Run:
    """Materialize the platform's `ends_midway` function with the given event, telling it where
    its first chunk will be, so it ends only once that chunk has landed."""
    fixture, make = CLOUDS[request.param]
    cloud = make(request.getfixturevalue(fixture))
    store = type(cloud.store)

    def materialize(event: dict[str, Any]) -> Any:
        prefix = f"ends-{secrets.token_hex(4)}"
        where = {
            "store": f"{store.__module__}:{store.__name__}",
            "bucket": cloud.store.bucket,
            "prefix": f"{prefix}/",
        }
        client = cloud.client(key_prefix=prefix)
        return cloud.run("ends_midway", client=client, event={**event, **where})

    return materialize


@pytest.mark.parametrize("ending", ENDINGS, ids=lambda ending: " ".join(map(str, *ending.items())))
def test_a_process_that_ends_fails_the_step_saying_so_and_the_next_run_succeeds(
    run: Run, ending: dict[str, Any]
) -> None:
    result = run(ending)
    assert not result.success
    failure = failure_text(result)
    assert "Its process ended (it exited or was killed) before it returned" in failure, failure
    assert "may still be running" not in failure
    assert "before it opened Dagster Pipes" not in failure
    logs = logs_of(result)
    assert "sent before the process ended" in logs
    assert "to stop" not in logs, "a function whose process ended is not asked to stop"

    again = run({})
    assert again.success, failure_text(again)
    assert again.responses == ["ran to its end"]
    [materialized] = again.get_asset_materialization_events()
    assert "pid" in materialized.materialization.metadata
