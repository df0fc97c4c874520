"""Capture of `sys.stdout` / `sys.stderr`, per invocation rather than per process.

The streams are wrapped once by tees that still write everything to the original stream (so the
platform's own log keeps it) and also hand the text to the sink of the invocation that is running
in the current thread or task (a `ContextVar`). Two invocations served at once by one instance
keep their output apart. Output of threads the user starts, of subprocesses and of C code that
writes to file descriptor 1/2 directly is not captured.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Literal

Stream = Literal["stdout", "stderr"]
StdioSink = Callable[[Stream, str], None]

_sink: ContextVar[StdioSink | None] = ContextVar("dagster_pipes_cloud_stdio_sink", default=None)
# Set while a tee hands text on: a tee wrapped inside another (a platform that swaps the streams
# per request wraps ours, and we wrap its wrapper) must not send the same text twice.
_teeing: ContextVar[bool] = ContextVar("dagster_pipes_cloud_teeing", default=False)
_install_lock = threading.Lock()


class _TeeStream:
    """Writes to the wrapped stream, and to the current invocation's sink if there is one."""

    def __init__(self, name: Stream, inner: Any) -> None:
        self._name: Stream = name
        self._inner = inner

    def write(self, text: str) -> int:
        if _teeing.get():
            written: int = self._inner.write(text)
            return written
        token = _teeing.set(True)
        try:
            written = self._inner.write(text)
        finally:
            _teeing.reset(token)
        sink = _sink.get()
        if sink is not None and text:
            sink(self._name, text)
        return written

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self._inner.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def install_tees() -> None:
    """Put the tees on `sys.stdout` / `sys.stderr` unless they are there already."""
    with _install_lock:
        if not isinstance(sys.stdout, _TeeStream):
            sys.stdout = _TeeStream("stdout", sys.stdout)
        if not isinstance(sys.stderr, _TeeStream):
            sys.stderr = _TeeStream("stderr", sys.stderr)


class RunLabel:
    """The Dagster run an invocation serves, once known: every line `write_to_platform_log`
    writes for the invocation ends with it (set by `run_invocation`; threads the invocation
    starts see it when started in a copy of its context, as the writer's are)."""

    def __init__(self) -> None:
        self.run_id: str | None = None


_run_label: ContextVar[RunLabel | None] = ContextVar("dagster_pipes_cloud_run", default=None)


@contextmanager
def labelled_platform_log() -> Iterator[RunLabel]:
    """Within the block, platform log lines end with the run id set on the yielded label."""
    label = RunLabel()
    token = _run_label.set(label)
    try:
        yield label
    finally:
        _run_label.reset(token)


def write_to_platform_log(line: str) -> None:
    """Write `line` to the platform's own log (the process's stderr) without capturing it; in an
    invocation whose run is known, the line ends with `(Dagster run <id>)` unless it names it."""
    label = _run_label.get()
    line = line.rstrip("\n")
    if label is not None and label.run_id and label.run_id not in line:
        line += f" (Dagster run {label.run_id})"
    stream = sys.stderr
    inner = stream._inner if isinstance(stream, _TeeStream) else stream
    inner.write(line + "\n")
    inner.flush()


@contextmanager
def capture_stdio(sink: StdioSink) -> Iterator[None]:
    """Send what this thread (or task) prints to `sink` until the block ends."""
    install_tees()
    token = _sink.set(sink)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        _sink.reset(token)
