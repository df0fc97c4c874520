"""Process keeping shared by the local emulators and function hosts.

`ManagedProcess` starts a command in its own process group with its output in a log file, waits
until a readiness probe passes, and stops the whole group on exit (SIGTERM, then SIGKILL after a
grace period). `LocalService` is the start-on-enter, stop-on-exit base of every local stand-in;
`free_port`, `start_on_free_port`, `http_ready` and `tcp_ready` are the small
helpers around it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing_extensions import Self

LOCALHOST = "127.0.0.1"

ReadinessProbe = Callable[[], bool]
"""A callable that answers whether a started process is ready to serve; called repeatedly."""


class LocalService(ABC):
    """A local stand-in used as a context manager: entering starts it, leaving stops it."""

    @abstractmethod
    def start(self) -> Self: ...

    @abstractmethod
    def stop(self) -> None: ...

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class ProcessStartError(RuntimeError):
    """A managed process exited or stayed unready during start-up.

    The message names the process, its command, its exit code (if it exited) and its last output.
    """

    def __init__(self, name: str, reason: str, returncode: int | None, output: str) -> None:
        self.name = name
        self.returncode = returncode
        self.output = output
        message = f"{name} {reason}"
        if output.strip():
            message += f"\n--- last output of {name} ---\n{output.rstrip()}"
        super().__init__(message)


def free_port(host: str = LOCALHOST) -> int:
    """Return a TCP port that is free on `host` (127.0.0.1) right now.

    The port is only probed, not held: another process may take it before it is used, so prefer
    binding port 0 directly where the server is in-process.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def tcp_ready(host: str, port: int, timeout: float = 1.0) -> ReadinessProbe:
    """A probe that passes once a TCP connection to `host:port` succeeds."""

    def probe() -> bool:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                return True
        except OSError:
            return False

    return probe


def http_ready(url: str, timeout: float = 1.0) -> ReadinessProbe:
    """A probe that passes once a GET of `url` gets any HTTP response (error statuses too)."""

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy

    def probe() -> bool:
        try:
            with opener.open(url, timeout=timeout):
                return True
        except urllib.error.HTTPError:
            return True
        except (OSError, ValueError):
            return False

    return probe


class ManagedProcess(LocalService):
    """A subprocess in its own process group, started, probed until ready and stopped as one.

    `args` is the command; `env` the complete environment (default: this process's); stdout and
    stderr both go to `log_path` (appended to; default: a temporary file removed on `stop`). On
    `start`, `ready` is polled until it passes; if the process exits first, or `startup_timeout`
    seconds (default 30) pass, the group is stopped and `ProcessStartError` is raised with the exit
    code and the last output. `stop` sends SIGTERM to the group and SIGKILL after `stop_timeout`
    seconds (default 5). Usable as a context manager. POSIX process groups; elsewhere only the
    direct child is signalled.
    """

    def __init__(
        self,
        args: Sequence[str],
        *,
        name: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        ready: ReadinessProbe | None = None,
        startup_timeout: float = 30.0,
        stop_timeout: float = 5.0,
        log_path: str | os.PathLike[str] | None = None,
    ) -> None:
        self.args = list(args)
        self.name = name or Path(self.args[0]).name
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.ready = ready
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self._log_path = Path(log_path) if log_path is not None else None
        self._owns_log = log_path is None
        self._popen: subprocess.Popen[bytes] | None = None
        self._stopped = False

    @property
    def log_path(self) -> Path:
        """The file holding the process's stdout and stderr (known once started)."""
        if self._log_path is None:
            raise RuntimeError(f"{self.name} has not been started")
        return self._log_path

    @property
    def pid(self) -> int:
        """The process id (also its process group id)."""
        if self._popen is None:
            raise RuntimeError(f"{self.name} has not been started")
        return self._popen.pid

    @property
    def returncode(self) -> int | None:
        """The exit code, negative for a signal, or None while it runs (or before it started)."""
        return self._popen.poll() if self._popen is not None else None

    @property
    def running(self) -> bool:
        """Whether the process has been started and has not exited."""
        return self._popen is not None and self._popen.poll() is None

    def start(self) -> Self:
        """Start the process and wait until `ready` passes; see the class docstring for failures."""
        if self._popen is not None:
            raise RuntimeError(f"{self.name} was already started")
        if self._log_path is None:
            fd, path = tempfile.mkstemp(prefix=f"{self.name}-", suffix=".log")
            os.close(fd)
            self._log_path = Path(path)
        try:
            with open(self._log_path, "ab") as log:
                self._popen = subprocess.Popen(
                    self.args,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=self.env,
                    cwd=self.cwd,
                    start_new_session=True,
                )
        except OSError as error:  # most often: the program is not installed
            self._remove_own_log()
            raise ProcessStartError(
                self.name, f"could not be started: {error}", None, ""
            ) from error
        if self.ready is not None:
            try:
                self._wait_ready(self.ready)
            except BaseException:
                self.stop()
                raise
        return self

    def _wait_ready(self, ready: ReadinessProbe) -> None:
        assert self._popen is not None
        deadline = time.monotonic() + self.startup_timeout
        delay = 0.02
        while True:
            returncode = self._popen.poll()
            if returncode is not None:
                raise ProcessStartError(
                    self.name,
                    f"exited with code {returncode} before it was ready: {' '.join(self.args)}",
                    returncode,
                    self.output_tail(),
                )
            if ready():
                return
            if time.monotonic() > deadline:
                raise ProcessStartError(
                    self.name,
                    f"was not ready within {self.startup_timeout:g} s: {' '.join(self.args)}",
                    None,
                    self.output_tail(),
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    def output_tail(self, max_bytes: int = 4000) -> str:
        """The last `max_bytes` of the process's output, decoded leniently ("" if there is none)."""
        if self._log_path is None or not self._log_path.exists():
            return ""
        with open(self._log_path, "rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - max_bytes))
            return log.read().decode("utf-8", errors="replace")

    def _signal_group(self, sig: signal.Signals) -> None:
        assert self._popen is not None
        if hasattr(os, "killpg"):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._popen.pid, sig)
        elif self._popen.poll() is None:
            self._popen.send_signal(sig)

    def kill(self) -> None:
        """Kill the whole process group at once (SIGKILL) and reap the process."""
        if self._popen is None or self._stopped:
            return
        self._signal_group(getattr(signal, "SIGKILL", signal.SIGTERM))
        self._popen.wait()

    def stop(self, timeout: float | None = None) -> None:
        """Stop the process group: SIGTERM, then SIGKILL after `timeout` (default `stop_timeout`).

        Also signals leftovers of the group when the main process has already exited. Idempotent.
        """
        if self._popen is not None and not self._stopped:
            self._signal_group(signal.SIGTERM)
            try:
                self._popen.wait(self.stop_timeout if timeout is None else timeout)
            except subprocess.TimeoutExpired:
                self.kill()
            self._stopped = True
        self._remove_own_log()

    def _remove_own_log(self) -> None:
        if self._owns_log and self._log_path is not None:
            with contextlib.suppress(OSError):
                self._log_path.unlink()

    def __enter__(self) -> Self:
        """Start the process unless it already was; leaving the block stops it."""
        return self if self._popen is not None else self.start()


_ADDRESS_IN_USE = ("address already in use", "eaddrinuse", "port is already allocated")


def start_on_free_port(
    make: Callable[[int], ManagedProcess], attempts: int = 3
) -> tuple[ManagedProcess, int]:
    """Start `make(port)` on a free port, trying a new port when the chosen one was taken meanwhile.

    A port from `free_port` is only probed, so another process can bind it first; a start that
    fails with "address already in use" in its output is retried (`attempts` in all, default 3).
    Other failures are raised at once. Returns the started process and its port.
    """
    for attempt in range(1, attempts + 1):
        port = free_port()
        process = make(port)
        try:
            process.start()
        except ProcessStartError as error:
            if attempt == attempts or not any(
                text in error.output.lower() for text in _ADDRESS_IN_USE
            ):
                raise
            continue
        return process, port
    raise AssertionError("unreachable")
