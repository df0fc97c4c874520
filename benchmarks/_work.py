"""What every benchmark function does, the same for each library and cloud (function side: no
Dagster import).

The payload says what to do: `idle` seconds of quiet first (default 0), then `messages` log lines
(default 1), `pace` seconds apart (default 0), each `line <i> <tag> at <unix time>` so the
Dagster side can tell which session it belongs to and how late it arrived, then one
materialization. With `report` true the function returns what its process holds (see
`process_usage`) instead of "ok". With `stop_dir` set it instead waits up to `hold` seconds
(default 60) for Dagster's request to stop, writing `<stop_dir>/<tag>.started` when it begins and
`<tag>.stopped` (the unix time `pipes.is_cancelled` turned true, or null) when it ends.
"""

from __future__ import annotations

import json
import os
import resource
import threading
import time
from pathlib import Path
from typing import Any


def work(pipes: Any, payload: dict[str, Any]) -> Any:
    """Run the payload's work through `pipes` (a dagster_pipes `PipesContext`)."""
    if payload.get("stop_dir"):
        return watch_for_stop(pipes, payload)
    time.sleep(float(payload.get("idle", 0)))
    messages = int(payload.get("messages", 1))
    pace = float(payload.get("pace", 0))
    tag = str(payload.get("tag", "-"))
    for i in range(messages):
        pipes.log.info(f"line {i} {tag} at {time.time():.6f}")
        if pace:
            time.sleep(pace)
    pipes.report_asset_materialization(metadata={"lines": messages})
    return process_usage() if payload.get("report") else "ok"


def watch_for_stop(pipes: Any, payload: dict[str, Any], every: float = 0.02) -> str:
    """Wait for `pipes.is_cancelled` (our `PipesCloudContext`) for up to `hold` seconds,
    recording when it began and when it saw the stop in `stop_dir`."""
    folder, tag = Path(str(payload["stop_dir"])), str(payload.get("tag", "-"))
    (folder / f"{tag}.started").write_text(f"{time.time():.6f}")
    deadline = time.monotonic() + float(payload.get("hold", 60))
    seen = None
    while time.monotonic() < deadline:
        if pipes.is_cancelled:
            seen = time.time()
            break
        time.sleep(every)
    (folder / f"{tag}.stopped").write_text(json.dumps(seen))
    return "stopped" if seen else "ok"


def process_usage() -> dict[str, int]:
    """This process's id, resident memory now and at its peak (KiB), open file descriptors, and
    threads (Python's and the OS's)."""
    with open("/proc/self/status") as status:
        fields = dict(line.split(":", 1) for line in status if ":" in line)
    return {
        "pid": os.getpid(),
        "rss_kib": int(fields["VmRSS"].split()[0]),
        "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "fds": len(os.listdir("/proc/self/fd")),
        "threads": threading.active_count(),
        "os_threads": int(fields["Threads"]),
    }
