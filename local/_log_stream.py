"""`LogStream`: the functions' logs followed as they grow and printed with each function's name.

As `docker compose` prints its services' output: `totals | [dagster-pipes] Dagster run ...`. A
function's log is a file (a Cloud Function's or Azure app's server output) or a folder of them
(a Lambda function's, one file per worker); new files in a folder are picked up as they appear.
What a file held before the stream started is not printed again.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from dagster_pipes_cloud.local._process import LocalService

FOLLOW_INTERVAL = 0.2
"""Seconds between looks at the logs for new output."""


class LogStream(LocalService):
    """Follow each of `logs` (name -> file or folder of `*.log` files) and write every new
    complete line to `out` (default: stdout) as `name | line`, from `start` to `stop` (or
    entering and leaving it as a context manager). Lines of one file keep their order."""

    def __init__(self, logs: Mapping[str, Path], out: TextIO | None = None) -> None:
        self.logs = dict(logs)
        self.out = out
        self._width = max((len(name) for name in self.logs), default=0)
        self._offsets: dict[Path, int] = {}
        self._partial: dict[Path, bytes] = {}
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> LogStream:
        """Note where each existing file ends, then follow them in a background thread."""
        for _, file in self._files():
            self._offsets[file] = file.stat().st_size
        self._stopping.clear()
        self._thread = threading.Thread(target=self._follow, name="function-logs", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Print what was written up to now (an unfinished last line too), then stop."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.print_new(final=True)

    def _follow(self) -> None:
        while not self._stopping.wait(FOLLOW_INTERVAL):
            self.print_new()

    def _files(self) -> list[tuple[str, Path]]:
        """Each function's log files that exist now: (function name, file)."""
        files: list[tuple[str, Path]] = []
        for name, path in self.logs.items():
            if path.is_dir():
                files.extend((name, file) for file in sorted(path.glob("*.log")))
            elif path.is_file():
                files.append((name, path))
        return files

    def print_new(self, *, final: bool = False) -> None:
        """Write the lines added to every log since the last call (`final`: an unfinished last
        line too)."""
        out = self.out or sys.stdout
        for name, path in self._files():
            offset = self._offsets.get(path, 0)
            try:
                with open(path, "rb") as file:
                    file.seek(offset)
                    data = file.read()
            except OSError:  # removed meanwhile
                continue
            self._offsets[path] = offset + len(data)
            *lines, rest = (self._partial.pop(path, b"") + data).split(b"\n")
            if final and rest:
                lines.append(rest)
            elif rest:
                self._partial[path] = rest
            for line in lines:
                text = line.decode("utf-8", errors="replace").rstrip("\r")
                out.write(f"{name.ljust(self._width)} | {text}\n")
            if lines:
                out.flush()
