"""Process keeping shared by the local emulators and function hosts.

`ManagedProcess` starts a command in its own process group with its output in a log file, waits
until a readiness probe passes, and stops the whole group on exit (SIGTERM, then SIGKILL after a
grace period). Whatever it started also ends when the process that started it ends, however that
ends (see `ManagedProcess`). `LocalService` is the start-on-enter, stop-on-exit base of every
local stand-in, and `LocalEmulator` the base of those that are one server process on a port;
`free_port`, `start_on_free_port`, `http_ready`, `tcp_ready` and `require_local_extra` are the
small helpers around them.

The watchdog that ends them with their owner is `_watchdog`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, ClassVar

from dagster_pipes_cloud.local._watchdog import KILL_SIGNAL, Watchdog, signal_group
from dagster_pipes_cloud.local._watchdog import remove_at_owner_exit as remove_at_owner_exit

if TYPE_CHECKING:
    from typing_extensions import Self

LOCALHOST = "127.0.0.1"
LOCAL_EXTRA_INSTALL = "pip install 'dagster-pipes-cloud[local]'"
"""The install line that brings every local stand-in's dependencies."""

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


class LocalRequestError(ValueError):
    """A stand-in refused a request made on the user's behalf (a bad bucket name, say)."""


def send_local_request(request: urllib.request.Request, what: str, *, exists: int = 0) -> None:
    """Send `request` to a local stand-in, never through a proxy; a refusal raises
    `LocalRequestError` naming `what` and the stand-in's own answer. Status `exists` (the
    service's answer for "already there") is not an error."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10):
            return
    except urllib.error.HTTPError as error:
        if error.code == exists:
            return
        answer = _error_message(error.read().decode("utf-8", errors="replace").strip())
        raise LocalRequestError(f"{what} was refused (HTTP {error.code}): {answer}") from None


def _error_message(body: str) -> str:
    """The message of an S3-style XML or a JSON error body; else the body's start."""
    xml = re.search(r"<Message>(.*?)</Message>", body, re.DOTALL)
    if xml:
        return xml.group(1).strip()
    with contextlib.suppress(ValueError, AttributeError):
        error = json.loads(body).get("error")
        return str(error.get("message") if isinstance(error, dict) else error)
    return body[:500]


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


def require_local_extra(stand_in: str, modules: Iterable[str]) -> None:
    """Raise `MissingDependencyError` naming the `[local]` install line if `modules` are missing.

    `modules` are top-level names, looked up with `importlib.util.find_spec` (nothing is imported);
    `stand_in` names what needs them in the message.
    """
    missing = [module for module in modules if importlib.util.find_spec(module) is None]
    if missing:
        # imported here: this file runs alone (without the package) as the watchdog
        from dagster_pipes_cloud.adapters.errors import MissingDependencyError

        raise MissingDependencyError(
            f"{stand_in} needs {', '.join(missing)}, which the [local] extra installs;"
            f" run: {LOCAL_EXTRA_INSTALL}"
        )


class ManagedProcess(LocalService):
    """A subprocess in its own process group, started, probed until ready and stopped as one.

    `args` is the command; `env` the complete environment (default: this process's); stdout and
    stderr both go to `log_path` (appended to; default: a temporary file removed on `stop`). On
    `start`, `ready` is polled until it passes; if the process exits first, or `startup_timeout`
    seconds (default 30) pass, the group is stopped and `ProcessStartError` is raised with the exit
    code and the last output. `stop` sends SIGTERM to the group and SIGKILL after `stop_timeout`
    seconds (default 5). Usable as a context manager.

    The group also ends with the process that started it, whether that exits, is sent SIGTERM or
    is killed: the owner's watchdog (one small process per owner, see `Watchdog`) notices its
    end by EOF on a pipe and stops every group not stopped yet the same way (SIGTERM, SIGKILL
    after `stop_timeout`), then deletes their temporary logs; a `log_path` given by the caller is
    kept. Linux and macOS get exactly this (pipes and process groups are POSIX). Elsewhere
    there is no watchdog and only the direct child is signalled.
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
        watchdog = Watchdog.of_this_process()
        if self._log_path is None:
            fd, path = tempfile.mkstemp(prefix=f"{self.name}-", suffix=".log")
            os.close(fd)
            self._log_path = Path(path)
            if watchdog is not None:
                watchdog.remove_at_exit(path)
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
        if watchdog is not None:
            watchdog.watch(self._popen.pid, self.stop_timeout)
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
            signal_group(self._popen.pid, sig)
        elif self._popen.poll() is None:
            self._popen.send_signal(sig)

    def kill(self) -> None:
        """Kill the whole process group at once (SIGKILL) and reap the process."""
        if self._popen is None or self._stopped:
            return
        self._signal_group(KILL_SIGNAL)
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
            watchdog = Watchdog.of_this_process(start=False)
            if watchdog is not None:
                watchdog.forget(self._popen.pid)
        self._remove_own_log()

    def _remove_own_log(self) -> None:
        if self._owns_log and self._log_path is not None:
            with contextlib.suppress(OSError):
                self._log_path.unlink()
            watchdog = Watchdog.of_this_process(start=False)
            if watchdog is not None:
                watchdog.keep(self._log_path)

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


class LocalEmulator(LocalService):
    """A local emulator: one server process on 127.0.0.1, on the requested `port` or a free one.

    A subclass says only what is its own: `name` (the process's, in errors and log names),
    `_command(port)` and, where they differ from the defaults, `_environment()` (default: this
    process's environment) and `_readiness(process, port)` (default: a TCP connection succeeds).
    `start` waits until ready (up to `startup_timeout` seconds, default 30); without a `port` a
    free one is taken, and another one when it was taken meanwhile (see `start_on_free_port`).
    `stop` stops the process group. Usable as a context manager.
    """

    name: ClassVar[str]

    def __init__(self, *, port: int | None = None, startup_timeout: float = 30.0) -> None:
        self._requested_port = port
        self._startup_timeout = startup_timeout
        self._port: int | None = None
        self._process: ManagedProcess | None = None

    @abstractmethod
    def _command(self, port: int) -> list[str]:
        """The command that serves on 127.0.0.1:`port`."""

    def _environment(self) -> Mapping[str, str] | None:
        """The server's complete environment; None (the default) for this process's."""
        return None

    def _readiness(self, process: ManagedProcess, port: int) -> ReadinessProbe:
        """The probe that the started `process` serves on `port`; by default a TCP connect."""
        return tcp_ready(LOCALHOST, port)

    @property
    def endpoint_url(self) -> str:
        """`http://127.0.0.1:PORT`, where the emulator serves (known once started)."""
        if self._port is None:
            raise RuntimeError(f"{type(self).__name__} has not been started")
        return f"http://{LOCALHOST}:{self._port}"

    def start(self) -> Self:
        """Start the server and wait until it is ready; raises `ProcessStartError` if it fails."""
        if self._process is not None:
            raise RuntimeError(f"{type(self).__name__} was already started")
        if self._requested_port is not None:
            process = self._server(self._requested_port).start()
            self._process, self._port = process, self._requested_port
        else:
            self._process, self._port = start_on_free_port(self._server)
        return self

    def _server(self, port: int) -> ManagedProcess:
        process = ManagedProcess(
            self._command(port),
            name=self.name,
            env=self._environment(),
            startup_timeout=self._startup_timeout,
        )
        process.ready = self._readiness(process, port)
        return process

    def stop(self) -> None:
        """Stop the server. Idempotent."""
        if self._process is not None:
            self._process.stop()
            self._process = None
