"""What every benchmark function does, the same for each library and cloud (function side: no
Dagster import).

The payload says what to do: `idle` seconds of quiet first (default 0), then `messages` log lines
(default 1), `pace` seconds apart (default 0), each `line <i> <tag> at <unix time>` so the
Dagster side can tell which session it belongs to and how late it arrived, then one
materialization. With `report` true the function returns what its process holds (see
`process_usage`) instead of "ok".
"""

from __future__ import annotations

import os
import resource
import threading
import time
from typing import Any


def work(pipes: Any, payload: dict[str, Any]) -> Any:
    """Run the payload's work through `pipes` (a dagster_pipes `PipesContext`)."""
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
