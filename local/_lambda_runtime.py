"""One local Lambda function: invocations, its warm worker, timeouts and its log.

`FunctionRuntime.invoke` runs one invocation at a time (callers queue on a lock). The worker is
`python -m awslambdaric module.handler` (or our stdlib `_lambda_worker.py` where awslambdaric is
not installed), started on the first invocation, kept warm, and started afresh after it exits or
fails to load the handler. Worker output is appended to one log file per function, with Lambda's
START / END / REPORT lines around each invocation.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from dagster_pipes_cloud.local._lambda_runtime_api import UNHANDLED, Invocation, Worker

ACCOUNT_ID = "123456789012"
MEMORY_SIZE_MB = 128
LOG_TAIL_BYTES = 4096

# What a worker inherits from the host's own environment; everything else comes from Lambda's
# variables and the user's `env` (so a developer's real AWS settings never reach a function).
_INHERITED_ENV = (
    "PATH",
    "HOME",
    "USER",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TMPDIR",
    "TEMP",
    "TMP",
    "TZ",
    "SYSTEMROOT",
    "VIRTUAL_ENV",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
)
_BUILTIN_WORKER = Path(__file__).with_name("_lambda_worker.py")


@dataclass(frozen=True)
class InvocationResult:
    """What one invocation returned: the payload as the runtime posted it, and its log."""

    request_id: str
    payload: bytes
    content_type: str
    function_error: str | None
    """`"Unhandled"` when the function failed (raised, exited, timed out), else None."""
    log: bytes
    """The last 4 KB of this invocation's log: output between START and END/REPORT lines."""


class HostStoppedError(RuntimeError):
    """The function's host was stopped before the invocation could run."""


class FunctionRuntime:
    """One function: invocations served one at a time by a warm, lazily started worker.

    `timeout` bounds each invocation from the moment the worker takes it; past it the worker is
    killed and the invocation answers Lambda's timeout error. `init_timeout` bounds the wait for a
    freshly started worker to load the handler's module and ask for its first invocation.
    """

    def __init__(
        self,
        name: str,
        handler: str,
        *,
        env: dict[str, str],
        timeout: float,
        init_timeout: float,
        builtin_worker: bool,
        log_path: Path,
        region: str,
    ) -> None:
        self.name = name
        self.handler = handler
        self.timeout = timeout
        self.init_timeout = init_timeout
        self.log_path = log_path
        self.region = region
        self.arn = f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{name}"
        self.env = _worker_env(name, handler, region, env)
        if builtin_worker:
            self.worker_command = [sys.executable, str(_BUILTIN_WORKER), handler]
        else:
            self.worker_command = [sys.executable, "-m", "awslambdaric", handler]
        self._invoke_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._worker: Worker | None = None
        self._closed = False

    def invoke(
        self,
        event: bytes,
        client_context: str | None,
        qualifier: str | None = None,
        request_id: str | None = None,
    ) -> InvocationResult:
        """Run one invocation and wait for its outcome (queued behind any running invocation)."""
        with self._invoke_lock:
            log_start = self._log_size()
            worker, cold = self._warm_worker()
            arn = f"{self.arn}:{qualifier}" if qualifier else self.arn
            invocation = Invocation(request_id or str(uuid.uuid4()), event, client_context, arn)
            worker.offer(invocation)
            self._await(worker, invocation)
            self._append_report(worker, invocation, cold)
            return InvocationResult(
                request_id=invocation.request_id,
                payload=invocation.payload,
                content_type=invocation.content_type,
                function_error=invocation.function_error,
                log=self._read_log(log_start),
            )

    def _warm_worker(self) -> tuple[Worker, bool]:
        """The warm worker, or a new one (and True) when there is none or it cannot serve."""
        with self._state_lock:
            if self._closed:
                raise HostStoppedError(f"the local host of Lambda function {self.name} is stopped")
            worker = self._worker
            if worker is not None and worker.usable:
                return worker, False
            if worker is not None:
                worker.close()
            env = {**self.env, "AWS_LAMBDA_LOG_STREAM_NAME": _log_stream_name()}
            self._worker = worker = Worker(
                self.name,
                self.worker_command,
                env,
                log_path=self.log_path,
                timeout=self.timeout,
                on_take=self._log_start,
            )
            worker.start()
            return worker, True

    def _log_start(self, invocation: Invocation) -> None:
        self.append_log(f"START RequestId: {invocation.request_id} Version: $LATEST")

    def _await(self, worker: Worker, invocation: Invocation) -> None:
        init_deadline = time.monotonic() + self.init_timeout
        while not invocation.wait(0.05):
            now = time.monotonic()
            if invocation.taken_at is None and now > init_deadline:
                worker.kill()
                self._time_out(invocation, f"Init timed out after {self.init_timeout:.2f} seconds")
            elif invocation.taken_at is not None and now > invocation.taken_at + self.timeout:
                worker.kill()
                self._time_out(invocation, f"Task timed out after {self.timeout:.2f} seconds")
            returncode = worker.process.returncode
            if returncode is not None:
                message = f"RequestId: {invocation.request_id} Error: Runtime exited with error: "
                message += _describe_exit(returncode)
                if self._fail(invocation, "Runtime.ExitError", message, "error"):
                    self.append_log(message, "Runtime.ExitError")

    def _time_out(self, invocation: Invocation, what: str) -> None:
        message = f"RequestId: {invocation.request_id} Error: {what}"
        if self._fail(invocation, "Sandbox.Timedout", message, "timeout"):
            self.append_log(f"{_timestamp()} {invocation.request_id} {what}")

    def _fail(self, invocation: Invocation, error_type: str, message: str, status: str) -> bool:
        payload = json.dumps({"errorType": error_type, "errorMessage": message}).encode()
        return invocation.finish(payload, function_error=UNHANDLED, status=status)

    def _append_report(self, worker: Worker, invocation: Invocation, cold: bool) -> None:
        now = time.monotonic()
        taken_at = invocation.taken_at if invocation.taken_at is not None else now
        duration_ms = (now - taken_at) * 1000
        report = (
            f"REPORT RequestId: {invocation.request_id}\tDuration: {duration_ms:.2f} ms\t"
            f"Billed Duration: {math.ceil(duration_ms)} ms\tMemory Size: {MEMORY_SIZE_MB} MB"
        )
        if cold:
            report += f"\tInit Duration: {(taken_at - worker.started_at) * 1000:.2f} ms"
        if invocation.status is not None:
            report += f"\tStatus: {invocation.status}"
        if invocation.taken_at is None:  # failed before START (module import, init timeout)
            self._log_start(invocation)
        self.append_log(f"END RequestId: {invocation.request_id}", report)

    def append_log(self, *lines: str) -> None:
        """Append lines to the function's log file."""
        with open(self.log_path, "ab") as log:
            log.write("".join(f"{line}\n" for line in lines).encode())

    def _log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def _read_log(self, start: int) -> bytes:
        """The last `LOG_TAIL_BYTES` of the log written since offset `start`."""
        with open(self.log_path, "rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(start, log.tell() - LOG_TAIL_BYTES))
            return log.read()

    def close(self) -> None:
        """Stop the worker (an invocation in flight ends with an exit error). Idempotent."""
        with self._state_lock:
            self._closed = True
            worker, self._worker = self._worker, None
        if worker is not None:
            worker.close()


def _worker_env(name: str, handler: str, region: str, user_env: dict[str, str]) -> dict[str, str]:
    """Lambda's variables, the user's `env` over them, PYTHONPATH = theirs + our sys.path."""
    env = {key: os.environ[key] for key in _INHERITED_ENV if key in os.environ}
    env.update(
        {
            "AWS_LAMBDA_FUNCTION_NAME": name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(MEMORY_SIZE_MB),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_python{sys.version_info[0]}.{sys.version_info[1]}",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "_HANDLER": handler,
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(user_env)
    paths = [p for p in user_env.get("PYTHONPATH", "").split(os.pathsep) if p]
    for entry in sys.path:
        path = os.path.abspath(entry or os.getcwd())
        if os.path.exists(path) and path not in paths:
            paths.append(path)
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def _describe_exit(returncode: int) -> str:
    """Exit status as Lambda words it: `exit status 3`, `signal: killed`."""
    if returncode >= 0:
        return f"exit status {returncode}"
    with contextlib.suppress(ValueError):
        description = signal.strsignal(-returncode)
        if description:
            return f"signal: {description.lower()}"
    return f"signal: {-returncode}"


def _timestamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _log_stream_name() -> str:
    day = datetime.now(timezone.utc).strftime("%Y/%m/%d")
    return f"{day}/[$LATEST]{secrets.token_hex(16)}"
