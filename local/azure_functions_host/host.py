"""`LocalAzureFunctionHost`: an `azure.functions.FunctionApp` (v2 model) served on 127.0.0.1.

This side owns the server process (`server.py`, run with this interpreter) and keeps it running;
it imports neither azure.functions nor the app.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import sys
from collections.abc import Mapping

from dagster_pipes_cloud.local._env import function_env
from dagster_pipes_cloud.local._front_end import PlatformAnswer, PlatformAnswers
from dagster_pipes_cloud.local._process import (
    LOCALHOST,
    ManagedProcess,
    ProcessStartError,
    http_ready,
    require_local_extra,
)
from dagster_pipes_cloud.local._supervised import SupervisedServer
from dagster_pipes_cloud.local._throttle import checked_throttle_first

DEFAULT_CONCURRENCY: int = min(32, (getattr(os, "process_cpu_count", os.cpu_count)() or 1) + 4)
"""Sync invocations one instance runs at once unless told otherwise: the Azure Python worker's
thread pool is a `ThreadPoolExecutor` whose size is `PYTHON_THREADPOOL_THREAD_COUNT` and, where
that is unset (the default), the executor's own default, `min(32, cpus + 4)` (this machine's)."""
FRONT_END_TIMEOUT = 230.0
"""Seconds after which Azure's front end ends an HTTP request that has had no answer."""
ROUTE_PREFIX = "api"
"""host.json `extensions.http.routePrefix` by default; the local host serves this one."""
PING_PATH = "/admin/host/ping"
"""The host's own liveness path (answers 200): the readiness probe."""
MAX_REQUEST_BYTES = 100 * 1024 * 1024
"""The host's request body limit (Kestrel's `MaxRequestBodySize` as the host sets it): a larger
declared body is answered 413 before it is read."""
HOST_NOT_RUNNING_TEXT = "Function host is not running."
"""The Functions host's answer, with status 503, while it is not running."""

_SERVER = "dagster_pipes_cloud.local.azure_functions_host.server"
_TARGET = re.compile(r"(?P<module>\w+(?:\.\w+)*):(?P<app>[A-Za-z_]\w*)")


class FunctionAppIndexError(ProcessStartError):
    """The server refused the app as the Azure Python worker's indexing would (a function whose
    parameters do not match its bindings, two functions of one name, no FunctionApp at the
    target...). `reason` is the one-line refusal, in the worker's words where it has them."""

    def __init__(
        self, name: str, target: str, reason: str, returncode: int | None, output: str
    ) -> None:
        self.target = target
        self.reason = reason
        shown = "" if output.strip() == reason else output  # the refusal alone: said already
        super().__init__(name, f"refused {target}: {reason}", returncode, shown)
        self.output = output


class LocalAzureFunctionHost(SupervisedServer):
    """A FunctionApp's HTTP functions served locally, as a context manager.

    `target` is `"package.module:app"` (only that spelling; another is a ValueError naming it);
    the attribute must be an `azure.functions.FunctionApp` (or another `FunctionRegister`). One
    server process imports it once, so module-level state lives across requests while it is
    warm, and indexes it as the Azure Python worker does before it listens: a function the
    worker would refuse (its parameters do not match its bindings, a wrong annotation...) fails
    `start` with `FunctionAppIndexError` carrying the worker's message; an import error fails it
    with `ProcessStartError` and the traceback.

    Each HTTP-triggered function answers at `url` + `/api/<route>` (the route template with its
    parameters in `req.route_params`; only the default route prefix `api` is served, host.json is
    not read) for its methods (another method: 404). Its return becomes the response as the
    worker and host make it (see `invocation`); a raised exception is a bare 500; a body over the
    host's 100 MB is refused with 413. Functions of other triggers are indexed but not served.
    Sync functions run in a pool of `concurrency` threads (`PYTHON_THREADPOOL_THREAD_COUNT`;
    default `DEFAULT_CONCURRENCY`, the worker's), async ones on one event loop, so requests in
    flight at once run at once.

    Azure's front end ends a request after 230 s while the function runs on: a request not
    answered within `front_end_timeout` seconds (default 230) gets a 500 with the App Service
    text "The request timed out. The web server failed to respond within the specified time."
    (text/html, no header of ours); the function keeps running in its thread to its end. With
    `function_key`, functions whose auth level is `function` or `admin` answer 401 (empty) unless
    the request carries the key as header `x-functions-key` or query `code`; without it no key is
    checked (as Core Tools does). Anonymous functions never need one.

    `env` is the function's environment on top of a clean base (see `function_env`: no cloud
    credentials of this process) and the variables the Functions host sets for a Python app:
    `FUNCTIONS_WORKER_RUNTIME=python`, `FUNCTIONS_EXTENSION_VERSION=~4`,
    `AZURE_FUNCTIONS_ENVIRONMENT=Development` (as Core Tools), `WEBSITE_SITE_NAME` (`name`,
    default the module's last part with `-` for `_`), `WEBSITE_INSTANCE_ID`,
    `AzureWebJobsScriptRoot` (the folder the app's top-level package is imported from), and,
    the server's own so they win over `env`, `WEBSITE_HOSTNAME` (`127.0.0.1:PORT`) and
    `PYTHON_THREADPOOL_THREAD_COUNT` (`concurrency`).

    The server runs the functions in its own process, as the Python worker does beside the host:
    when that process ends (any exit status or signal), each request in it is answered as the
    host answers an invocation whose worker exited, a bare 500, by a front end at `url`; a
    supervisor thread (every 0.2 s) starts the server again, as the host restarts its worker,
    and requests sent meanwhile wait for it. `startup_timeout` (default 30 s) bounds each start.
    The server's output (the functions' stdout, stderr and logging, and one
    line per invocation) is appended to `log_path` (default: a temporary file removed on `stop`).
    Needs azure-functions (the `[local]` extra): constructing one without it raises
    `MissingDependencyError` with the install line.

    `throttle_first` (default 0) rehearses throttling: the host answers its first
    `throttle_first` function requests (counted once per start) as the Functions host answers
    when its HTTP throttle is reached (host.json `extensions.http.maxOutstandingRequests` or
    `maxConcurrentRequests`): 429 with no body, without running the function. Requests past
    `concurrency` are otherwise queued, not refused.
    """

    kind = "Azure Functions app"
    platform_answers = PlatformAnswers(
        # the host fails the invocation (WorkerProcessExitException) and answers a bare 500
        lost=PlatformAnswer(500),
        unavailable=PlatformAnswer(
            503, HOST_NOT_RUNNING_TEXT.encode(), (("Content-Type", "text/plain; charset=utf-8"),)
        ),
        too_large=PlatformAnswer(413),
        max_request_bytes=MAX_REQUEST_BYTES,
    )

    def __init__(
        self,
        target: str,
        env: Mapping[str, str] | None = None,
        *,
        name: str | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        front_end_timeout: float = FRONT_END_TIMEOUT,
        function_key: str | None = None,
        startup_timeout: float = 30.0,
        log_path: str | os.PathLike[str] | None = None,
        throttle_first: int = 0,
    ) -> None:
        match = _TARGET.fullmatch(target)
        if match is None:
            raise ValueError(f"Azure Functions target must be 'package.module:app', got {target!r}")
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        if front_end_timeout <= 0:
            raise ValueError(f"front_end_timeout must be positive, got {front_end_timeout}")
        checked_throttle_first(throttle_first)
        require_local_extra("LocalAzureFunctionHost (azure-functions)", ("azure.functions",))
        super().__init__(
            name or match["module"].rsplit(".", 1)[-1].replace("_", "-").lower(),
            startup_timeout=startup_timeout,
            log_path=log_path,
        )
        self.target = target
        self.module: str = match["module"]
        self.app: str = match["app"]
        self.env = dict(env or {})
        self.concurrency = concurrency
        self.front_end_timeout = front_end_timeout
        self.function_key = function_key
        self.throttle_first = throttle_first
        self._instance_id = secrets.token_hex(32)

    @property
    def function_urls(self) -> dict[str, str]:
        """Each HTTP-triggered function's URL by function name (a route template's parameters
        stay in braces: `.../api/items/{id}`), as the app was indexed at start."""
        paths: dict[str, str] = json.loads((self.folder / "functions.json").read_text())
        return {name: f"{self.url}{path}" for name, path in paths.items()}

    def _prepare(self) -> None:
        self._write_settings()

    def _start_error(self, error: BaseException) -> BaseException | None:
        return self._refusal(error)

    def _write_settings(self) -> None:
        """The server's settings, in a file only this user reads (it may hold the key)."""
        settings = self.folder / "settings.json"
        settings.touch(mode=0o600)
        settings.write_text(
            json.dumps(
                {
                    "front_end_timeout": self.front_end_timeout,
                    "function_key": self.function_key,
                    "route_prefix": ROUTE_PREFIX,
                    "throttle_first": self.throttle_first,
                }
            )
        )

    def _refusal(self, error: BaseException) -> FunctionAppIndexError | None:
        """`error` as the app's refusal, where the server wrote one."""
        if not isinstance(error, ProcessStartError) or self._folder is None:
            return None
        try:
            reason = (self.folder / "refusal.txt").read_text().strip()
        except OSError:
            return None
        return FunctionAppIndexError(
            error.name, self.target, reason, error.returncode, error.output
        )

    def _server(self, port: int) -> ManagedProcess:
        refusal = self.folder / "refusal.txt"
        refusal.unlink(missing_ok=True)
        probe = http_ready(f"http://{LOCALHOST}:{port}{PING_PATH}")
        arguments = ["--module", self.module, "--app", self.app, "--port", str(port)]
        arguments += ["--settings", str(self.folder / "settings.json"), "--refusal", str(refusal)]
        arguments += ["--index", str(self.folder / "functions.json")]
        return ManagedProcess(
            [sys.executable, "-m", _SERVER, *arguments],
            name=f"azure-functions-{self.name}",
            env=self._function_env(port),
            ready=self._ready_or_stopping(probe),
            startup_timeout=self.startup_timeout,
            log_path=self.log_path,
        )

    def _function_env(self, port: int) -> dict[str, str]:
        """The Functions host's variables and `env` over them (see `function_env`), then the
        server's own: `WEBSITE_HOSTNAME` and `PYTHON_THREADPOOL_THREAD_COUNT`."""
        platform_vars = {
            "FUNCTIONS_WORKER_RUNTIME": "python",
            "FUNCTIONS_EXTENSION_VERSION": "~4",
            "AZURE_FUNCTIONS_ENVIRONMENT": "Development",
            "WEBSITE_SITE_NAME": self.name,
            "WEBSITE_INSTANCE_ID": self._instance_id,
            "PYTHONUNBUFFERED": "1",
        }
        env = function_env(platform_vars, self.env)
        env["WEBSITE_HOSTNAME"] = f"{LOCALHOST}:{self.public_port}"
        env["PYTHON_THREADPOOL_THREAD_COUNT"] = str(self.concurrency)
        return env
