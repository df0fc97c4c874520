"""The owner's watchdog: a small process that ends the process groups a `ManagedProcess` started,
and deletes the temporary files of the local stand-ins, when the process that started them ends.

This file imports only the standard library: it is run by path as the watchdog itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

KILL_SIGNAL: signal.Signals = getattr(signal, "SIGKILL", signal.SIGTERM)


def signal_group(group: int, sig: signal.Signals) -> None:
    """Send `sig` to process group `group`, if any process of it is left (POSIX only)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, sig)


def remove_at_owner_exit(path: str | os.PathLike[str]) -> None:
    """Have the owner's watchdog delete `path` (a file or a folder) when this process ends.

    For a temporary file or folder of a local stand-in that the stand-in removes itself on
    `stop`: if this process is killed first, the watchdog removes it. A path already gone then is
    skipped. No-op where there is no watchdog (not POSIX).
    """
    watchdog = Watchdog.of_this_process()
    if watchdog is not None:
        watchdog.remove_at_exit(path)


class Watchdog:
    """The small process that ends this process's groups when this process ends.

    One per owner process, started with the first `ManagedProcess`. It reads one JSON message a
    line from a pipe whose only write end this process holds ("watch" a group with its grace,
    "forget" it once stopped; "remove" a path at the end, "keep" it once removed). Any end of
    this process closes that end, so the watchdog reads EOF: it sends SIGTERM to each group still
    watched, SIGKILL to what is left of a group after its grace, deletes the files and folders it
    was given, and exits. It runs in its own session, so a Ctrl-C sent to the terminal's process
    group does not end it before it has done that.

    Not PR_SET_PDEATHSIG: Linux sends that signal when the *thread* that forked the child ends,
    and the Lambda host starts its warm workers from short-lived request threads. A child forked
    without exec (multiprocessing's "fork") gets a fresh watchdog of its own when it starts a
    process; the parent's pipe end is closed in it so the parent's end is still noticed.
    """

    _current: Watchdog | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        read_end, self._write_end = os.pipe()
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-I", os.path.abspath(__file__), _WATCHDOG_ARGUMENT],
                stdin=read_end,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except BaseException:
            os.close(self._write_end)
            raise
        finally:
            os.close(read_end)
        self._send_lock = threading.Lock()

    @classmethod
    def of_this_process(cls, start: bool = True) -> Watchdog | None:
        """This process's watchdog, started now if `start` and there is none (None if not POSIX)."""
        with cls._lock:
            if cls._current is None and start and hasattr(os, "killpg"):
                cls._current = cls()
            return cls._current

    @classmethod
    def _forget_in_forked_child(cls) -> None:
        cls._lock = threading.Lock()  # another thread may have held it at the fork
        if cls._current is not None:
            with contextlib.suppress(OSError):
                os.close(cls._current._write_end)
            cls._current = None

    def watch(self, group: int, grace: float) -> None:
        """End process group `group` with this process: SIGTERM, SIGKILL after `grace` s."""
        self._send({"watch": group, "grace": grace})

    def forget(self, group: int) -> None:
        """`group` was stopped by this process: nothing left to do for it."""
        self._send({"forget": group})

    def remove_at_exit(self, path: str | os.PathLike[str]) -> None:
        """Delete `path` (after ending the groups) when this process ends."""
        self._send({"remove": os.path.abspath(path)})

    def keep(self, path: str | os.PathLike[str]) -> None:
        """`path` was removed by this process: nothing left to do for it."""
        self._send({"keep": os.path.abspath(path)})

    def _send(self, message: Mapping[str, Any]) -> None:
        data = (json.dumps(message) + "\n").encode()
        with self._send_lock:
            try:
                while data:
                    data = data[os.write(self._write_end, data) :]
            except OSError:  # the watchdog itself was killed: nobody left to tell
                pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=Watchdog._forget_in_forked_child)

_WATCHDOG_ARGUMENT = "--watchdog"


def _watch(messages: Iterable[bytes]) -> None:
    """The watchdog's work: follow the owner's messages to EOF, then end and delete what is left."""
    groups: dict[int, float] = {}
    paths: dict[str, None] = {}  # insertion-ordered: files before the folders given after them
    for line in messages:
        try:
            message = json.loads(line)
        except ValueError:  # a line cut short by the owner's death
            continue
        if "watch" in message:
            groups[int(message["watch"])] = float(message["grace"])
        if "forget" in message:
            groups.pop(int(message["forget"]), None)
        if "remove" in message:
            paths[str(message["remove"])] = None
        if "keep" in message:
            paths.pop(str(message["keep"]), None)
    _end_groups(groups)
    for path in paths:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.unlink(path)


def _end_groups(graces: Mapping[int, float]) -> None:
    """SIGTERM every group at once, then SIGKILL each one still there after its own grace."""
    for group in graces:
        signal_group(group, signal.SIGTERM)
    started = time.monotonic()
    pending = dict(graces)
    while pending:
        for group, grace in list(pending.items()):
            try:
                os.killpg(group, 0)
            except (ProcessLookupError, PermissionError):
                del pending[group]
                continue
            if time.monotonic() - started > grace:
                signal_group(group, KILL_SIGNAL)
                del pending[group]
        time.sleep(0.05)


if __name__ == "__main__" and sys.argv[1:] == [_WATCHDOG_ARGUMENT]:
    _watch(sys.stdin.buffer)
