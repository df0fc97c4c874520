"""`refused_past`: how a local host answers one invocation more than it runs at once."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from dagster_pipes_cloud.adapters import FunctionInvocation, ThrottledError

Invoke = Callable[[dict[str, Any]], FunctionInvocation]
"""Invoke a `hold` test function (`held.hold`) with an event `{"folder", "tag"}`."""


def refused_past(capacity: int, invoke: Invoke, folder: Path) -> ThrottledError:
    """Keep `capacity` invocations running, send one more and return the `ThrottledError` it
    raised; then check the held ones all complete, the refused one never ran, and the host takes
    an invocation again."""

    def event(tag: str) -> dict[str, Any]:
        return {"folder": str(folder), "tag": tag}

    with ThreadPoolExecutor(max_workers=capacity) as pool:
        held = [pool.submit(invoke, event(f"held-{index}")) for index in range(capacity)]
        try:
            wait_for(lambda: len(list(folder.glob("held-*.started"))) == capacity, "all running")
            with pytest.raises(ThrottledError) as raised:
                invoke(event("refused"))
        finally:
            (folder / "release").touch()
        completed = [future.result() for future in held]
    assert [invocation.error for invocation in completed] == [None] * capacity
    assert not (folder / "refused.started").exists(), "a refused invocation never runs"
    again = invoke(event("again"))
    assert again.error is None and (folder / "again.started").exists()
    return raised.value


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Wait until `condition()` holds, failing the test after a minute."""
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        time.sleep(0.02)
