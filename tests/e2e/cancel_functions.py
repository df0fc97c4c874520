"""Functions that run until Dagster asks them to stop, deployed by tests/e2e/test_cancellation.py
on each cloud's local host.

Each runs for `seconds` unless asked to stop, writes the file `started` once its Pipes session
is open and, as it ends, the file `stopped`: what ended it. One kind logs every 0.25 s (its next
log call raises `PipesCancelledError`); the other makes no Pipes call and polls
`pipes.is_cancelled`.
"""

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import azure.functions as func

from dagster_pipes_cloud.external import azure_function, cloud_function, lambda_handler
from dagster_pipes_cloud.external.context import PipesCloudContext


def logs_until_cancelled(pipes: PipesCloudContext, payload: dict[str, Any]) -> str:
    with recorded(pipes, payload):
        deadline = time.monotonic() + payload["seconds"]
        while time.monotonic() < deadline:
            pipes.log.info("working")  # raises PipesCancelledError once asked to stop
            time.sleep(0.25)
        return "ran to the end"


def checks_until_cancelled(pipes: PipesCloudContext, payload: dict[str, Any]) -> str:
    with recorded(pipes, payload) as outcome:
        deadline = time.monotonic() + payload["seconds"]
        while time.monotonic() < deadline and not pipes.is_cancelled:
            time.sleep(0.05)  # work that makes no Pipes call
        if pipes.is_cancelled:
            outcome["ended_by"] = "is_cancelled"
            return "stopped when asked"
        return "ran to the end"


@contextmanager
def recorded(pipes: PipesCloudContext, payload: dict[str, Any]) -> Iterator[dict[str, str]]:
    pipes.log.info("started")
    write_atomically(payload["started"], "started")
    outcome = {"ended_by": "returning"}
    try:
        yield outcome
    except BaseException as exc:
        outcome["ended_by"] = type(exc).__name__
        raise
    finally:
        write_atomically(payload["stopped"], json.dumps(outcome))


def write_atomically(path: str, text: str) -> None:
    with open(f"{path}.tmp", "w") as f:
        f.write(text)
    os.replace(f"{path}.tmp", path)


lambda_logging = lambda_handler(logs_until_cancelled)
lambda_checking = lambda_handler(checks_until_cancelled)

gcf_logging = cloud_function(logs_until_cancelled)
gcf_checking = cloud_function(checks_until_cancelled)

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
app.route(route="logging", methods=["POST"])(azure_function(logs_until_cancelled))
app.route(route="checking", methods=["POST"])(azure_function(checks_until_cancelled))
