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
from dagster_pipes_cloud.local.azure_functions_host.throttle import checked_limit

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

    Each HTTP-triggered function answers at `url` + `/api/<route>` (`function_urls`), run as the
    Azure Python worker runs it: indexed first (a function the worker would refuse fails `start`),
    warm, in its thread pool, cut at the front end after `front_end_timeout`, and served again
    after a crash. host.json's HTTP throttle applies: at most `maxConcurrentRequests` run at
    once, and past `maxOutstandingRequests` (running and waiting) a request gets the host's 429.
    More: [How it behaves](behaviour.md#localazurefunctionhost).

    ```python
    with AzuriteEmulator() as azurite:
        with LocalAzureFunctionHost("function_app:app", env=azurite.env) as host:
            requests.post(host.function_urls["totals"], json={"rows": 9})
    ```

    Args:
        target: The app, `"package.module:app"`: an `azure.functions.FunctionApp` (or another
            `FunctionRegister`).
        env: The function's environment on top of a clean base (no cloud credentials) and the
            variables the Functions host sets for a Python app. Default: none.
        name: The app's name, `WEBSITE_SITE_NAME` (default: the module's last part with `-`
            for `_`).
        concurrency: Threads for sync functions, `PYTHON_THREADPOOL_THREAD_COUNT` (default
            `DEFAULT_CONCURRENCY`, the worker's).
        front_end_timeout: Seconds after which a request not yet answered gets the front end's
            500 while the function runs on (default 230, Azure's).
        function_key: The key functions of auth level `function` or `admin` require, as header
            `x-functions-key` or query `code` (default: none, no key checked, as Core Tools).
        startup_timeout: Seconds each start of the server may take (default 30).
        log_path: The file the server's output is appended to (default: a temporary file
            removed on `stop`).
        port: The port `url` listens on (default: a free one; Core Tools' own default is 7071).
        throttle_first: Answer the first this many function requests as the host's HTTP
            throttle does (429), without running the function (default 0).
        max_concurrent_requests: Function requests run at once, over host.json's
            `extensions.http.maxConcurrentRequests` in the app's folder (default: the file's;
            -1: no bound).
        max_outstanding_requests: Function requests held at once, running and waiting, over
            host.json's `extensions.http.maxOutstandingRequests` (default: the file's; -1: no
            bound).

    Raises:
        ValueError: `target` is not `"package.module:app"`, or `concurrency` is below 1,
            `front_end_timeout` not positive, `throttle_first` below 0, or a request limit
            neither -1 nor from 1.
        MissingDependencyError: azure-functions (the `[local]` extra) is not installed.
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
        port: int | None = None,
        throttle_first: int = 0,
        max_concurrent_requests: int | None = None,
        max_outstanding_requests: int | None = None,
    ) -> None:
        match = _TARGET.fullmatch(target)
        if match is None:
            raise ValueError(f"Azure Functions target must be 'package.module:app', got {target!r}")
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        if front_end_timeout <= 0:
            raise ValueError(f"front_end_timeout must be positive, got {front_end_timeout}")
        checked_throttle_first(throttle_first)
        checked_limit("max_concurrent_requests", max_concurrent_requests)
        checked_limit("max_outstanding_requests", max_outstanding_requests)
        require_local_extra("LocalAzureFunctionHost (azure-functions)", ("azure.functions",))
        super().__init__(
            name or match["module"].rsplit(".", 1)[-1].replace("_", "-").lower(),
            startup_timeout=startup_timeout,
            log_path=log_path,
            port=port,
        )
        self.target = target
        self.module: str = match["module"]
        self.app: str = match["app"]
        self.env = dict(env or {})
        self.concurrency = concurrency
        self.front_end_timeout = front_end_timeout
        self.function_key = function_key
        self.throttle_first = throttle_first
        self.http_limits = {
            "max_concurrent_requests": max_concurrent_requests,
            "max_outstanding_requests": max_outstanding_requests,
        }
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
                    "http_limits": self.http_limits,
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
