"""`SupervisedServer`: the base of the HTTP function hosts that run one server process each.

It owns a private temporary folder, starts the server on a free 127.0.0.1 port behind the
platform's front end (`FrontEnd`, at the host's `url`), and keeps it running: a supervisor thread
starts it again on the same port whenever it exits, as a platform replaces a dead instance. A
request in the instance when it ends is answered as the platform answers it; the next one waits
for the new instance and is served.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from abc import abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from dagster_pipes_cloud.local._front_end import FrontEnd, PlatformAnswers
from dagster_pipes_cloud.local._process import (
    LOCALHOST,
    LocalService,
    ManagedProcess,
    ProcessStartError,
    ReadinessProbe,
    remove_at_owner_exit,
    start_on_free_port,
)

if TYPE_CHECKING:
    from typing_extensions import Self

logger = logging.getLogger(__name__)

SUPERVISION_INTERVAL = 0.2
"""Seconds between the supervisor's looks at the server process."""
MOST_RESTART_DELAY = 5.0
"""The longest pause between attempts to start a server that keeps failing to start."""


class SupervisedServer(LocalService):
    """One server process on a free port behind the platform's front end (on `port`, default a
    free one), started again on the same port when it exits.

    A subclass says what the server is (`_server(port)`), what its platform's front end answers
    itself (`platform_answers`, and `request_timeout`: None where the front end sets no limit),
    what its folder must hold before the first start (`_prepare`) and how a failed first start
    is reported (`_start_error`). `kind` names the host in log messages. The server's output goes
    to `log_path` (default: a file in the temporary folder, removed on `stop`); `startup_timeout`
    bounds each start, and a request's wait for an instance. Where the platform's front end
    bounds the requests its instances take at once (`capacity`), it holds one more for up to
    `queue_timeout` seconds, then answers `platform_answers.throttled`.
    """

    kind: ClassVar[str] = "server"
    platform_answers: ClassVar[PlatformAnswers]

    def __init__(
        self,
        name: str,
        *,
        startup_timeout: float,
        log_path: str | os.PathLike[str] | None,
        request_timeout: float | None = None,
        capacity: int | None = None,
        queue_timeout: float = 0.0,
        port: int | None = None,
    ) -> None:
        self.name = name
        self.port = port
        self.startup_timeout = startup_timeout
        self.request_timeout = request_timeout
        self.capacity = capacity
        self.queue_timeout = queue_timeout
        self._given_log_path = Path(log_path) if log_path is not None else None
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None
        # while started: the temporary folder, the port and the server process on it
        self._folder: Path | None = None
        self._port: int | None = None
        self._process: ManagedProcess | None = None
        self._front_end: FrontEnd | None = None

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT`, the front end's, known once started."""
        return f"http://{LOCALHOST}:{self.public_port}"

    @property
    def public_port(self) -> int:
        """The port of the front end, where requests are sent, known once started."""
        if self._front_end is None:
            raise RuntimeError(f"{type(self).__name__} has not been started")
        return self._front_end.port

    @property
    def log_path(self) -> Path:
        """The file with the server's output across restarts, known once started."""
        return self._given_log_path or self.folder / "function.log"

    @property
    def pid(self) -> int:
        """The process id of the running server; after a restart, the new one's."""
        if self._process is None:
            raise RuntimeError(f"{type(self).__name__} has not been started")
        return self._process.pid

    @property
    def folder(self) -> Path:
        """The host's private temporary folder, while started."""
        if self._folder is None:
            raise RuntimeError(f"{type(self).__name__} has not been started")
        return self._folder

    def start(self) -> Self:
        """Start the front end on `port` (or a free one) and the server on a free port, wait
        until it serves, and start its supervisor."""
        if self._folder is not None:
            raise RuntimeError(f"{type(self).__name__} was already started")
        self._stopping.clear()
        prefix = f"local-{self.kind.lower().replace(' ', '-')}-{self.name}-"
        self._folder = Path(tempfile.mkdtemp(prefix=prefix))
        remove_at_owner_exit(self._folder)  # even if this process is killed
        self._front_end = FrontEnd(
            lambda: self._port,
            self.platform_answers,
            request_timeout=self.request_timeout,
            startup_timeout=self.startup_timeout,
            capacity=self.capacity,
            queue_timeout=self.queue_timeout,
            port=self.port or 0,
        )
        try:
            self._front_end.start()
            self._prepare()
            self._process, self._port = start_on_free_port(self._server)
        except BaseException as error:
            reported = self._start_error(error)
            self.stop()
            if reported is not None:
                raise reported from None
            raise
        self._supervisor = threading.Thread(
            target=self._keep_serving, name=f"{self.kind}-{self.name}", daemon=True
        )
        self._supervisor.start()
        return self

    def stop(self) -> None:
        """Stop the supervisor and the server (with whatever it started); remove the temporary
        folder (and the log in it). Idempotent."""
        self._stopping.set()
        if self._front_end is not None:
            self._front_end.stop()
            self._front_end = None
        if self._supervisor is not None:
            self._supervisor.join()
            self._supervisor = None
        if self._process is not None:
            self._process.stop()
            self._process = None
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None
        self._port = None

    @abstractmethod
    def _server(self, port: int) -> ManagedProcess:
        """The server process for `port`, not started yet."""

    def _prepare(self) -> None:
        """Write what the server needs into `folder` before its first start."""

    def _start_error(self, error: BaseException) -> BaseException | None:
        """What to raise instead of `error`, which failed the first start; None: `error`."""
        return None

    def _ready_or_stopping(self, probe: ReadinessProbe) -> ReadinessProbe:
        """`probe`, passing at once once `stop` was called (a restart is then abandoned)."""
        return lambda: self._stopping.is_set() or probe()

    def _keep_serving(self) -> None:
        """Until `stop`: whenever the server has exited, start it again on the same port, with
        a growing pause while it fails to start. `pid` names the exited one until then."""
        pause = SUPERVISION_INTERVAL
        while not self._stopping.wait(pause):
            exited = self._process
            if exited is None or exited.running or self._port is None:
                continue
            if pause == SUPERVISION_INTERVAL:
                logger.warning(
                    "%s %s: server exited with code %s; starting it again on port %s",
                    self.kind,
                    self.name,
                    exited.returncode,
                    self._port,
                )
            exited.kill()  # whatever is left of its group (a gunicorn worker) holds the port
            exited.stop()
            try:
                self._process = self._server(self._port).start()
                pause = SUPERVISION_INTERVAL
            except ProcessStartError as error:
                logger.warning("%s %s did not start again: %s", self.kind, self.name, error)
                pause = min(pause * 2, MOST_RESTART_DELAY)
