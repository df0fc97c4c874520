"""`LocalCloudFunctionHost`: an HTTP Cloud Function served by functions-framework on 127.0.0.1."""

from __future__ import annotations

import logging
import os
import re
import shutil
import sys
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from dagster_pipes_cloud.local._env import function_env
from dagster_pipes_cloud.local._process import (
    LOCALHOST,
    LocalService,
    ManagedProcess,
    ProcessStartError,
    http_ready,
    remove_at_owner_exit,
    require_local_extra,
    start_on_free_port,
)

if TYPE_CHECKING:
    from typing_extensions import Self

logger = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 8
"""Requests one instance serves at once unless told otherwise (gunicorn threads)."""

_TARGET = re.compile(r"(?P<module>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):(?P<function>[A-Za-z_]\w*)")
# functions-framework loads a source file as its own module (named after the file); ours only
# imports the user's module, so its name must not be one a user's code could import.
_SOURCE_NAME = "_local_cloud_function_source"
_POLL_INTERVAL = 0.2
_MAX_RESTART_DELAY = 5.0


class LocalCloudFunctionHost(LocalService):
    """An HTTP Cloud Function (`fn(request)`, a Flask request) served locally, as a context manager.

    `target` is `"package.module:function"`. The server is functions-framework's own
    (`python -m functions_framework`) on a free 127.0.0.1 port at `url`; the function answers at
    `/` and at any path. The module is imported once per instance, so module-level state lives
    across requests while it is warm. functions-framework serves with gunicorn where installed (a
    dependency of functions-framework everywhere but Windows): one worker process with
    `concurrency` threads (default 8; a function deployed through the Cloud Functions API serves 1
    request at a time by default: `concurrency=1`), so requests in flight at once are served at
    once; a worker that dies is forked again by gunicorn from the loaded module. Without gunicorn
    it falls back to Flask's threaded development server (a thread per request, no bound).

    `env` is the function's environment on top of a clean base (PATH, HOME, locale and the like
    from this process; no cloud credentials, and `CLOUDSDK_CONFIG` points at an empty folder so
    the developer's gcloud application-default credentials stay out) and the variables Cloud Run
    functions set: `K_SERVICE` (`name`, default the function's name with `-` for `_`),
    `K_REVISION`, `K_CONFIGURATION`, `PORT`, `FUNCTION_TARGET`, `FUNCTION_SIGNATURE_TYPE`. Its
    `PYTHONPATH` comes first, then this process's `sys.path`. functions-framework reads `THREADS`
    and `WORKERS`, which `concurrency` sets; `LOG_EXECUTION_ID=true` in `env` turns on its
    execution-id logging, as on the platform.

    When the server process dies, a supervisor thread (polling every 0.2 s) starts it again on the
    same port, so `url` stays valid; a request in flight at that moment fails. A start-up failure
    (the module does not import, the function is missing) raises `ProcessStartError` with the
    server's last output; `startup_timeout` (default 30 s) bounds each start. The server's stdout
    and stderr are appended to `log_path` (default: a temporary file removed on `stop`). Needs
    functions-framework (the `[local]` extra): constructing one without it raises
    `MissingDependencyError` with the install line.
    """

    def __init__(
        self,
        target: str,
        env: Mapping[str, str] | None = None,
        *,
        name: str | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        startup_timeout: float = 30.0,
        log_path: str | os.PathLike[str] | None = None,
    ) -> None:
        match = _TARGET.fullmatch(target)
        if match is None:
            raise ValueError(
                f"Cloud Function target must be 'package.module:function', got {target!r}"
            )
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        require_local_extra(
            "LocalCloudFunctionHost (functions-framework)", ("functions_framework",)
        )
        self.target = target
        self.module: str = match["module"]
        self.function: str = match["function"]
        self.name = name or self.function.replace("_", "-").lower()
        self.env = dict(env or {})
        self.concurrency = concurrency
        self.startup_timeout = startup_timeout
        self._log_path = Path(log_path) if log_path is not None else None
        self._temp_dir: Path | None = None
        self._port: int | None = None
        self._process: ManagedProcess | None = None
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT`, where the function answers (at `/` and at any path)."""
        if self._port is None:
            raise RuntimeError("LocalCloudFunctionHost has not been started")
        return f"http://{LOCALHOST}:{self._port}"

    @property
    def log_path(self) -> Path:
        """The file with the server's stdout and stderr, across restarts."""
        if self._log_path is None:
            raise RuntimeError("LocalCloudFunctionHost has not been started")
        return self._log_path

    @property
    def pid(self) -> int:
        """The process id of the running server (gunicorn's arbiter, or the Flask server)."""
        if self._process is None:
            raise RuntimeError("LocalCloudFunctionHost has not been started")
        return self._process.pid

    def start(self) -> Self:
        """Start the server on a free port, wait until it serves, and start its supervisor."""
        if self._temp_dir is not None:
            raise RuntimeError("LocalCloudFunctionHost was already started")
        self._stopping.clear()
        self._temp_dir = Path(tempfile.mkdtemp(prefix=f"local-cloud-function-{self.name}-"))
        remove_at_owner_exit(self._temp_dir)  # even if this process is killed
        try:
            source = self._temp_dir / f"{_SOURCE_NAME}.py"
            source.write_text(f"from {self.module} import {self.function}\n")
            (self._temp_dir / "gcloud").mkdir()
            if self._log_path is None:
                self._log_path = self._temp_dir / "function.log"
            self._process, self._port = start_on_free_port(self._server)
        except BaseException:
            self.stop()
            raise
        self._supervisor = threading.Thread(
            target=self._supervise, name=f"cloud-function-{self.name}", daemon=True
        )
        self._supervisor.start()
        return self

    def stop(self) -> None:
        """Stop the supervisor and the server (with any process it started). Idempotent."""
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join()
            self._supervisor = None
        if self._process is not None:
            self._process.stop()
            self._process = None
        if self._temp_dir is not None:
            if self._log_path is not None and self._log_path.parent == self._temp_dir:
                self._log_path = None
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None

    def _server(self, port: int) -> ManagedProcess:
        assert self._temp_dir is not None
        probe = http_ready(f"http://{LOCALHOST}:{port}/robots.txt")  # a 404 that skips the function

        def ready() -> bool:
            return self._stopping.is_set() or probe()

        return ManagedProcess(
            [
                sys.executable,
                "-m",
                "functions_framework",
                "--source",
                str(self._temp_dir / f"{_SOURCE_NAME}.py"),
                "--target",
                self.function,
                "--signature-type",
                "http",
                "--host",
                LOCALHOST,
                "--port",
                str(port),
            ],
            name=f"cloud-function-{self.name}",
            env=self._function_env(port),
            ready=ready,
            startup_timeout=self.startup_timeout,
            log_path=self.log_path,
        )

    def _function_env(self, port: int) -> dict[str, str]:
        """The platform's variables and `env` over them (see `function_env`), then the server's.

        `PORT`, `WORKERS` and `THREADS` are the server's own: they win over `env`.
        """
        assert self._temp_dir is not None
        platform_vars = {
            "K_SERVICE": self.name,
            "K_REVISION": f"{self.name}-00001-loc",
            "K_CONFIGURATION": self.name,
            "FUNCTION_TARGET": self.function,
            "FUNCTION_SIGNATURE_TYPE": "http",
            "CLOUDSDK_CONFIG": str(self._temp_dir / "gcloud"),
            "PYTHONUNBUFFERED": "1",
        }
        env = function_env(platform_vars, self.env)
        env.update({"PORT": str(port), "WORKERS": "1", "THREADS": str(self.concurrency)})
        return env

    def _supervise(self) -> None:
        """Start the server again on the same port whenever it has exited, until `stop`."""
        while not self._stopping.wait(_POLL_INTERVAL):
            process = self._process
            if process is None or process.running:
                continue
            logger.warning(
                "Cloud Function %s: server exited with code %s; starting it again on %s",
                self.name,
                process.returncode,
                self.url,
            )
            process.kill()  # what is left of its group (a gunicorn worker) holds the port
            process.stop()
            self._restart()

    def _restart(self) -> None:
        assert self._port is not None
        delay = _POLL_INTERVAL
        while not self._stopping.is_set():
            try:
                self._process = self._server(self._port).start()
                return
            except ProcessStartError as error:
                logger.warning("Cloud Function %s could not be started again: %s", self.name, error)
            self._stopping.wait(delay)
            delay = min(delay * 2, _MAX_RESTART_DELAY)
