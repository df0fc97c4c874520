"""What the fan-out tests' functions do, written once as `fn(pipes, payload)`; aws_handlers,
gcp_functions and azure_function_apps serve them on each cloud's local host.

Each invocation is named by its event's `name`, or else by its partition key, and leaves a
record of itself in the event's `folder` (the hosts run on this machine): one line per run in
`<name>.runs`, so a test can tell each ran once.
"""

import json
import os
import time
from pathlib import Path
from typing import Any

from dagster_pipes_cloud.external.context import PipesCloudContext

LINES = 3
"""Log lines, and printed lines, each invocation sends."""
WAIT_LIMIT = 60.0
"""Seconds `waits_for_cancel` runs unless asked to stop."""


def invocation_name(pipes: PipesCloudContext, payload: dict[str, Any]) -> str:
    """The event's `name`, else (in a partitioned step only) the partition key."""
    if "name" in payload:
        return str(payload["name"])
    return pipes.partition_key  # raises outside a partitioned step


def recorded_work(pipes: PipesCloudContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Records its run, logs and prints `LINES` lines naming itself, works `work` seconds, then
    raises if its name is in `fail`, else reports its name, partition and event as metadata and
    returns its name and `rows`."""
    name = invocation_name(pipes, payload)
    with (Path(payload["folder"]) / f"{name}.runs").open("a") as runs:
        runs.write("run\n")
    for line in range(LINES):
        pipes.log.info(f"log {line} of {name}")
        print(f"printed {line} of {name}")
    time.sleep(payload.get("work", 0))
    if name in payload.get("fail", ()):
        raise ValueError(f"{name} is broken")
    pipes.report_asset_materialization(
        metadata={
            "name": name,
            "partition": str(pipes.partition_key if "day" in payload else None),
            "event": json.dumps({key: payload[key] for key in ("name", "day") if key in payload}),
        }
    )
    return {"name": name, "rows": len(name)}


def waits_for_cancel(pipes: PipesCloudContext, payload: dict[str, Any]) -> str:
    """Writes `<name>.started`, then makes no Pipes call until `pipes.is_cancelled` (or
    `WAIT_LIMIT` seconds), and writes `<name>.stopped`: "cancelled" or "ran out"."""
    name = invocation_name(pipes, payload)
    folder = Path(payload["folder"])
    pipes.log.info(f"{name} started")
    _record(folder / f"{name}.started", "started")
    deadline = time.monotonic() + WAIT_LIMIT
    while not pipes.is_cancelled and time.monotonic() < deadline:
        time.sleep(0.05)
    ended = "cancelled" if pipes.is_cancelled else "ran out"
    _record(folder / f"{name}.stopped", ended)
    return ended


def _record(path: Path, text: str) -> None:
    """Write `text` to `path` whole: a test looking at it never reads half of it."""
    written = path.with_name(f"{path.name}.tmp")
    written.write_text(text)
    os.replace(written, path)
