"""Looking at other processes from a test: a process's descendants, and waiting for them to end.

Through `ps`, so the same on Linux and macOS. A zombie counts as ended: once its parent is gone,
it waits only for init to reap it.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterable


def process_table() -> dict[int, tuple[int, str]]:
    """Every process: pid -> (parent pid, command line)."""
    listing = subprocess.run(
        ["ps", "-A", "-o", "pid=,ppid=,command="], capture_output=True, text=True, check=True
    ).stdout
    table: dict[int, tuple[int, str]] = {}
    for line in listing.splitlines():
        pid, ppid, *command = line.split(maxsplit=2)
        table[int(pid)] = (int(ppid), command[0] if command else "")
    return table


def descendants(pid: int) -> dict[int, str]:
    """The processes below `pid` (children, their children, ...): pid -> command line."""
    table = process_table()
    found: dict[int, str] = {}
    parents = {pid}
    while parents:
        children = {child for child, (ppid, _) in table.items() if ppid in parents}
        children -= found.keys()
        found.update({child: table[child][1] for child in children})
        parents = children
    return found


def running(pid: int) -> bool:
    """Whether `pid` is a process that has not ended (a zombie has)."""
    listing = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True)
    state = listing.stdout.strip()
    return bool(state) and not state.startswith("Z")


def still_running(pids: Iterable[int], within: float = 20.0) -> set[int]:
    """Those of `pids` still running after waiting up to `within` seconds for all to end."""
    left = set(pids)
    deadline = time.monotonic() + within
    while left and time.monotonic() < deadline:
        left = {pid for pid in left if running(pid)}
        if left:
            time.sleep(0.1)
    return left
