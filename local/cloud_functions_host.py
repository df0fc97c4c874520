"""`LocalCloudFunctionHost`: an HTTP Cloud Function served by functions-framework on 127.0.0.1."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping

from dagster_pipes_cloud.local._env import function_env
from dagster_pipes_cloud.local._front_end import PlatformAnswer, PlatformAnswers
from dagster_pipes_cloud.local._process import (
    LOCALHOST,
    ManagedProcess,
    http_ready,
    require_local_extra,
)
from dagster_pipes_cloud.local._supervised import SupervisedServer
from dagster_pipes_cloud.local._throttle import checked_throttle_first

DEFAULT_CONCURRENCY = 8
"""Requests one instance serves at once unless told otherwise (gunicorn threads)."""
QUEUE_TIMEOUT = 60.0
"""Seconds Cloud Run holds a request that finds every instance full before answering 429."""
DEFAULT_TIMEOUT = 60 * 60.0
"""The request timeout unless told otherwise: the longest a 2nd gen HTTP function may have."""
INSTANCE_LOST_TEXT = (
    "The request failed because either the HTTP response was malformed or connection to the"
    " instance had an error."
)
"""Cloud Run's words, with status 503, for a request whose instance ended while serving it."""
REQUEST_TIMEOUT_TEXT = "upstream request timeout"
"""Cloud Run's answer, with status 504, to a request that ran past the request timeout."""
NO_INSTANCE_TEXT = "The request was aborted because there was no available instance."
"""Cloud Run's words, with status 500, when no instance could take a request."""
THROTTLED_TEXT = "Rate exceeded."
"""Cloud Run's answer, with status 429, to a request no instance may take (max instances all
serving `concurrency` requests)."""
_TEXT = (("Content-Type", "text/plain"),)
_HTML = (("Content-Type", "text/html; charset=UTF-8"),)

_TARGET = re.compile(r"(?P<module>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):(?P<function>[A-Za-z_]\w*)")
# functions-framework loads a source file as its own module (named after the file); ours only
# imports the user's module, so its name must not be one a user's code could import.
_SOURCE_NAME = "_local_cloud_function_source"
# With `throttle_first`: the function behind a gate that refuses the first requests as Cloud
# Run's front end refuses one no instance may take.
_THROTTLING_SOURCE = """\
from dagster_pipes_cloud.local._throttle import FirstRefusals
from {module} import {function} as _function

_refusals = FirstRefusals({count})


def {function}(request):
    if _refusals.take():
        return {text!r}, 429, {{"Content-Type": "text/html; charset=UTF-8"}}
    return _function(request)
"""


class LocalCloudFunctionHost(SupervisedServer):
    """An HTTP Cloud Function (`fn(request)`, a Flask request) served locally, as a context manager.

    functions-framework's own server, warm and threaded, answers at `url` (at `/` and any path)
    behind a front end that answers for the instance as Cloud Run does: 503 when its process
    ends, 504 past `timeout`, and a fresh instance after a crash. It takes `max_instances` x
    `concurrency` requests at once; one more waits up to `queue_timeout` seconds for a free
    slot, then gets Cloud Run's 429 "Rate exceeded.". More:
    [How it behaves](behaviour.md#localcloudfunctionhost).

    ```python
    with GCSEmulator() as gcs, LocalCloudFunctionHost("main:main", env=gcs.env) as host:
        requests.post(host.url, json={"rows": 9})
    ```

    Args:
        target: The function, `"package.module:function"`.
        env: The function's environment on top of a clean base (no cloud credentials) and the
            variables Cloud Run functions set; its `PYTHONPATH` comes first. Default: none.
        name: The service's name, `K_SERVICE` (default: the function's name with `-` for `_`).
        concurrency: Requests each instance serves at once (default 8; a function deployed
            through the Cloud Functions API serves 1 at a time by default).
        max_instances: Instances, worker processes of one server, serving at once (default 1).
        queue_timeout: Seconds a request past `max_instances` x `concurrency` waits for a free
            slot before the 429 (default 60, Cloud Run's; 0 refuses it at once).
        timeout: The function's request timeout in seconds, after which the request is answered
            504 while the function runs on (default 60 minutes, a 2nd gen function's).
        startup_timeout: Seconds each start of the server may take (default 30).
        log_path: The file the server's stdout and stderr are appended to (default: a temporary
            file removed on `stop`).
        port: The port `url` listens on (default: a free one; functions-framework's own
            default is 8080).
        throttle_first: Answer the first this many requests as Cloud Run answers one no instance
            may take (429), without running the function (default 0).

    Raises:
        ValueError: `target` is not `"package.module:function"`, or `concurrency` or
            `max_instances` is below 1, `timeout` not positive, `queue_timeout` negative or
            `throttle_first` below 0.
        MissingDependencyError: functions-framework (the `[local]` extra) is not installed.
    """

    kind = "Cloud Function"
    platform_answers = PlatformAnswers(
        lost=PlatformAnswer(503, INSTANCE_LOST_TEXT.encode(), _TEXT),
        timed_out=PlatformAnswer(504, REQUEST_TIMEOUT_TEXT.encode(), _TEXT),
        unavailable=PlatformAnswer(500, NO_INSTANCE_TEXT.encode(), _TEXT),
        throttled=PlatformAnswer(429, THROTTLED_TEXT.encode(), _HTML),
    )

    def __init__(
        self,
        target: str,
        env: Mapping[str, str] | None = None,
        *,
        name: str | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        max_instances: int = 1,
        queue_timeout: float = QUEUE_TIMEOUT,
        timeout: float = DEFAULT_TIMEOUT,
        startup_timeout: float = 30.0,
        log_path: str | os.PathLike[str] | None = None,
        port: int | None = None,
        throttle_first: int = 0,
    ) -> None:
        match = _TARGET.fullmatch(target)
        if match is None:
            raise ValueError(
                f"Cloud Function target must be 'package.module:function', got {target!r}"
            )
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        if max_instances < 1:
            raise ValueError(f"max_instances must be at least 1, got {max_instances}")
        if queue_timeout < 0:
            raise ValueError(f"queue_timeout must be 0 or more, got {queue_timeout}")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        checked_throttle_first(throttle_first)
        require_local_extra(
            "LocalCloudFunctionHost (functions-framework)", ("functions_framework",)
        )
        super().__init__(
            name or match["function"].replace("_", "-").lower(),
            startup_timeout=startup_timeout,
            log_path=log_path,
            port=port,
            request_timeout=timeout,
            capacity=max_instances * concurrency,
            queue_timeout=queue_timeout,
        )
        self.target = target
        self.module: str = match["module"]
        self.function: str = match["function"]
        self.env = dict(env or {})
        self.concurrency = concurrency
        self.max_instances = max_instances
        self.throttle_first = throttle_first

    def _prepare(self) -> None:
        source = f"from {self.module} import {self.function}\n"
        if self.throttle_first:
            source = _THROTTLING_SOURCE.format(
                module=self.module,
                function=self.function,
                count=self.throttle_first,
                text=THROTTLED_TEXT,
            )
        (self.folder / f"{_SOURCE_NAME}.py").write_text(source)
        (self.folder / "gcloud").mkdir()

    def _server(self, port: int) -> ManagedProcess:
        probe = http_ready(f"http://{LOCALHOST}:{port}/robots.txt")  # a 404 that skips the function
        return ManagedProcess(
            [
                sys.executable,
                "-m",
                "functions_framework",
                "--source",
                str(self.folder / f"{_SOURCE_NAME}.py"),
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
            ready=self._ready_or_stopping(probe),
            startup_timeout=self.startup_timeout,
            log_path=self.log_path,
        )

    def _function_env(self, port: int) -> dict[str, str]:
        """The platform's variables and `env` over them (see `function_env`), then the server's.

        `PORT`, `WORKERS` (`max_instances`) and `THREADS` (`concurrency`) are the server's own:
        they win over `env`.
        """
        platform_vars = {
            "K_SERVICE": self.name,
            "K_REVISION": f"{self.name}-00001-loc",
            "K_CONFIGURATION": self.name,
            "FUNCTION_TARGET": self.function,
            "FUNCTION_SIGNATURE_TYPE": "http",
            "CLOUDSDK_CONFIG": str(self.folder / "gcloud"),
            "PYTHONUNBUFFERED": "1",
        }
        env = function_env(platform_vars, self.env)
        env.update(
            {
                "PORT": str(port),
                "WORKERS": str(self.max_instances),
                "THREADS": str(self.concurrency),
            }
        )
        return env
