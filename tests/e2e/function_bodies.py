"""What the end-to-end test functions do, written once as `fn(pipes, payload)`; each platform's
module wraps them with its own entrypoint decorator."""

import os
import threading
from typing import Any

from dagster_pipes import PipesContext

invocations = 0
_lock = threading.Lock()


def counting(pipes: PipesContext, payload: dict[str, Any]) -> dict[str, int]:
    """Counts its invocations in this process: a warm instance keeps counting."""
    global invocations
    with _lock:
        invocations += 1
        count = invocations
    pipes.log.info(f"invocation {count} in process {os.getpid()}")
    pipes.report_asset_materialization(metadata={"invocation": count, "pid": os.getpid()})
    return {"invocation": count, "pid": os.getpid()}


def chatty(pipes: PipesContext, payload: dict[str, Any]) -> None:
    """`messages` log messages and `stdout_bytes` of printed lines."""
    for i in range(payload["messages"]):
        pipes.log.info(f"message {i}")
    line = "x" * 99 + "\n"
    for _ in range(payload["stdout_bytes"] // len(line)):
        print(line, end="")
    pipes.report_asset_materialization(metadata={"sent": payload["messages"]})
