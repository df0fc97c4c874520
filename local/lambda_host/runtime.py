"""One local Lambda function: its warm workers, invocations, timeouts and logs.

`FunctionRuntime.invoke` runs each invocation on a worker of its own: an idle warm one if there
is one, else a newly started one while fewer than `concurrency` run; past that a synchronous
invocation is refused (`ConcurrencyLimitError`) and a queued one waits for a worker to come
free. A worker is `python -m awslambdaric module.handler` (or our stdlib `worker.py`
where awslambdaric is not installed), kept warm after its invocation, and stopped when it exits,
times out or fails to load the handler. Each worker's output goes to a file of its own in the
function's log folder, with Lambda's START / END / REPORT lines around each invocation.
"""

from __future__ import annotations

import contextlib
import json
import math
import secrets
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from dagster_pipes_cloud.local._env import function_env
from dagster_pipes_cloud.local.lambda_host.runtime_api import UNHANDLED, Invocation, Worker

ACCOUNT_ID = "123456789012"
MEMORY_SIZE_MB = 128
LOG_TAIL_BYTES = 4096

_BUILTIN_WORKER = Path(__file__).with_name("worker.py")


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


class ConcurrencyLimitError(RuntimeError):
    """Every worker the function may run is busy (its reserved concurrency is reached)."""


class FunctionRuntime:
    """One function: up to `concurrency` warm workers, each running one invocation at a time.

    An invocation takes the most recently used idle worker, else starts a new one while fewer
    than `concurrency` run (see `invoke` for what happens past that). `timeout` bounds each
    invocation from the moment the worker takes it; past it the worker is killed and the
    invocation answers Lambda's timeout error. `init_timeout` bounds the wait for a freshly
    started worker to load the handler's module and ask for its first invocation. Each worker
    logs to `log_dir/<its log stream id>.log`.
    """

    def __init__(
        self,
        name: str,
        handler: str,
        *,
        env: dict[str, str],
        timeout: float,
        init_timeout: float,
        concurrency: int,
        builtin_worker: bool,
        log_dir: Path,
        region: str,
    ) -> None:
        self.name = name
        self.handler = handler
        self.timeout = timeout
        self.init_timeout = init_timeout
        self.concurrency = concurrency
        self.log_dir = log_dir
        self.region = region
        self.arn = f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{name}"
        self.env = _worker_env(name, handler, region, env)
        if builtin_worker:
            self.worker_command = [sys.executable, str(_BUILTIN_WORKER), handler]
        else:
            self.worker_command = [sys.executable, "-m", "awslambdaric", handler]
        self._cond = threading.Condition()
        self._workers: set[Worker] = set()
        """Every worker started and not yet stopped, busy or idle."""
        self._idle: list[Worker] = []
        """The workers waiting for an invocation, the most recently used last."""
        self._closed = False

    def invoke(
        self,
        event: bytes,
        client_context: str | None,
        qualifier: str | None = None,
        request_id: str | None = None,
        *,
        queue: bool = False,
    ) -> InvocationResult:
        """Run one invocation on a worker of its own and wait for its outcome.

        When all `concurrency` workers are busy, raises `ConcurrencyLimitError`, or with `queue`
        (an `Event` invocation) waits for one to come free. Raises `HostStoppedError` once closed.
        """
        worker, cold = self._acquire(queue)
        try:
            log_start = 0 if cold else worker.log_size()
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
                log=worker.read_log(log_start, LOG_TAIL_BYTES),
            )
        finally:
            self._release(worker)

    def _acquire(self, queue: bool) -> tuple[Worker, bool]:
        """An idle warm worker (and False), or a newly started one (and True)."""
        stale: list[Worker] = []
        try:
            with self._cond:
                while True:
                    if self._closed:
                        raise HostStoppedError(
                            f"the local host of Lambda function {self.name} is stopped"
                        )
                    while self._idle:
                        worker = self._idle.pop()
                        if worker.usable:
                            return worker, False
                        self._workers.discard(worker)
                        stale.append(worker)
                    if len(self._workers) < self.concurrency:
                        return self._start_worker(), True
                    if not queue:
                        raise ConcurrencyLimitError(
                            f"all {self.concurrency} workers of Lambda function {self.name} "
                            "are busy"
                        )
                    self._cond.wait()
        finally:
            for worker in stale:
                worker.close()

    def _start_worker(self) -> Worker:
        """Start a worker and count it (called holding `_cond`, so `close` cannot miss it)."""
        stream_id = secrets.token_hex(16)
        day = datetime.now(timezone.utc).strftime("%Y/%m/%d")
        env = {**self.env, "AWS_LAMBDA_LOG_STREAM_NAME": f"{day}/[$LATEST]{stream_id}"}
        worker = Worker(
            self.name,
            self.worker_command,
            env,
            log_path=self.log_dir / f"{stream_id}.log",
            timeout=self.timeout,
        )
        worker.start()
        self._workers.add(worker)
        return worker

    def _release(self, worker: Worker) -> None:
        """Put a worker back among the idle ones, or stop it when it cannot serve again.

        Whoever takes a worker out of `_workers` stops it: here, `_acquire` or `close`.
        """
        with self._cond:
            if worker not in self._workers:  # `close` took it
                return
            keep = worker.usable
            if keep:
                self._idle.append(worker)
            else:
                self._workers.discard(worker)
            self._cond.notify()
        if not keep:
            worker.close()

    def _await(self, worker: Worker, invocation: Invocation) -> None:
        init_deadline = time.monotonic() + self.init_timeout
        while not invocation.wait(0.05):
            now = time.monotonic()
            if invocation.taken_at is None and now > init_deadline:
                worker.kill()
                what = f"Init timed out after {self.init_timeout:.2f} seconds"
                self._time_out(worker, invocation, what)
            elif invocation.taken_at is not None and now > invocation.taken_at + self.timeout:
                worker.kill()
                self._time_out(
                    worker, invocation, f"Task timed out after {self.timeout:.2f} seconds"
                )
            returncode = worker.process.returncode
            if returncode is not None:
                message = f"RequestId: {invocation.request_id} Error: Runtime exited with error: "
                message += _describe_exit(returncode)
                if self._fail(invocation, "Runtime.ExitError", message, "error"):
                    worker.append_log(message, "Runtime.ExitError")

    def _time_out(self, worker: Worker, invocation: Invocation, what: str) -> None:
        message = f"RequestId: {invocation.request_id} Error: {what}"
        if self._fail(invocation, "Sandbox.Timedout", message, "timeout"):
            worker.append_log(f"{_timestamp()} {invocation.request_id} {what}")

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
        peak = _peak_memory_mb(worker.process.pid) if worker.process.running else None
        if peak is not None:
            report += f"\tMax Memory Used: {peak} MB"
        if cold:
            report += f"\tInit Duration: {(taken_at - worker.started_at) * 1000:.2f} ms"
        if invocation.status is not None:
            report += f"\tStatus: {invocation.status}"
        if invocation.taken_at is None:  # failed before START (module import, init timeout)
            worker.log_start(invocation)
        worker.append_log(f"END RequestId: {invocation.request_id}", report)

    def close(self) -> None:
        """Stop every worker (invocations in flight end with an exit error). Idempotent."""
        with self._cond:
            self._closed = True
            workers = list(self._workers)
            self._workers.clear()
            self._idle.clear()
            self._cond.notify_all()
        for worker in workers:
            worker.close()


def _worker_env(name: str, handler: str, region: str, user_env: dict[str, str]) -> dict[str, str]:
    """Lambda's variables and the user's `env` over them, on `function_env`'s clean base."""
    lambda_vars = {
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
    return function_env(lambda_vars, user_env)


def _peak_memory_mb(pid: int) -> int | None:
    """The peak resident memory of process `pid` in MB (rounded up), as Lambda reports its Max
    Memory Used; None where the system does not tell (no `/proc`, as on macOS)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            kilobytes = int(line.split()[1])
            return math.ceil(kilobytes / 1024)
    return None


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
