"""`LocalLambdaHost`: the AWS Lambda Invoke API on 127.0.0.1, in front of warm local workers."""

from __future__ import annotations

import base64
import binascii
import importlib.util
import json
import logging
import re
import shutil
import tempfile
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import parse_qs, unquote, urlsplit

from dagster_pipes_cloud.adapters.lambda_ import REQUEST_LIMITS
from dagster_pipes_cloud.local._http import LocalHTTPServer, RequestHandler
from dagster_pipes_cloud.local._process import LocalService, remove_at_owner_exit
from dagster_pipes_cloud.local._throttle import FirstRefusals, checked_throttle_first
from dagster_pipes_cloud.local.lambda_host.runtime import (
    ACCOUNT_ID,
    ConcurrencyLimitError,
    FunctionRuntime,
    HostStoppedError,
)

if TYPE_CHECKING:
    from typing_extensions import Self

logger = logging.getLogger(__name__)

WorkerKind = Literal["auto", "awslambdaric", "builtin"]


_INVOKE_PATH = re.compile(r"/2015-03-31/functions/(?P<name>[^/]+)/invocations")
_FUNCTION_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
# `package.module:function`, ours; `package.module.function` (or `folder/module.function`), the
# form of a Lambda function's Handler setting.
_COLON_HANDLER = re.compile(
    rf"(?P<module>{_IDENTIFIER}(?:\.{_IDENTIFIER})*):(?P<function>{_IDENTIFIER})"
)
_LAMBDA_HANDLER = re.compile(rf"{_IDENTIFIER}(?:[./]{_IDENTIFIER})*\.{_IDENTIFIER}")


class LocalLambdaHost(LocalService):
    """Lambda functions run locally behind the AWS Lambda Invoke API, as a context manager.

    `endpoint_url` is for `boto3.client("lambda", endpoint_url=...)`: synchronous and `Event`
    invocations, `LogType="Tail"`, `ClientContext` and Lambda's error shapes and limits. Each
    invocation runs in a warm worker process of its own, reused while idle and started afresh
    after it exits. More: [How it behaves](behaviour.md#locallambdahost).

    ```python
    with S3Emulator() as s3, LocalLambdaHost({"totals": "handler.main"}, env=s3.env) as host:
        client = boto3.client("lambda", endpoint_url=host.endpoint_url)
        client.invoke(FunctionName="totals", Payload=b'{"rows": 9}')
    ```

    Args:
        functions: Each function's name and handler, `"package.module.function"` (the form of
            Lambda's Handler setting, `folder/module.function` too) or
            `"package.module:function"`.
        env: Every function's environment on top of the variables Lambda sets (for example an
            emulator's endpoint); its `PYTHONPATH` goes before this process's `sys.path`.
            Default: none.
        timeout: Seconds an invocation may run before its worker is killed and the call answers
            Lambda's timeout error (default 900, Lambda's maximum).
        init_timeout: Seconds to load the handler (default 30).
        concurrency: Workers per function at most, like a reserved concurrency (default 10).
            Past it a synchronous invocation gets Lambda's 429 `TooManyRequestsException`
            (`ReservedFunctionConcurrentInvocationLimitExceeded`), and an `Event` one is
            accepted (202) and waits for a worker, as Lambda queues it and retries it itself.
        worker: "auto" (the default) runs awslambdaric where installed (Linux), else our stdlib
            worker speaking the same Runtime API; "builtin" forces ours, "awslambdaric" requires
            it.
        log_dir: Where each function's workers write their output, one folder per function
            (`log_path(name)`); default: a temporary folder removed on exit.
        port: The port `endpoint_url` listens on (default: a free one).
        throttle_first: Refuse each function's first this many synchronous invocations as
            throttled (429 `TooManyRequestsException`), to try a caller's retry policy (default
            0).

    Raises:
        ValueError: A function name Lambda would refuse, a handler in neither form, or
            `concurrency` below 1 or `throttle_first` below 0.
        RuntimeError: `worker="awslambdaric"` where awslambdaric is not installed.
    """

    region = "us-east-1"

    def __init__(
        self,
        functions: Mapping[str, str],
        env: Mapping[str, str] | None = None,
        *,
        timeout: float = 900.0,
        init_timeout: float = 30.0,
        concurrency: int = 10,
        worker: WorkerKind = "auto",
        log_dir: str | Path | None = None,
        port: int | None = None,
        throttle_first: int = 0,
    ) -> None:
        for name in functions:
            if not _FUNCTION_NAME.fullmatch(name):
                raise ValueError(
                    f"invalid Lambda function name {name!r}: use [A-Za-z0-9_-]{{1,64}}"
                )
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        checked_throttle_first(throttle_first)
        handlers = {name: _lambda_handler(name, target) for name, target in functions.items()}
        has_awslambdaric = importlib.util.find_spec("awslambdaric") is not None
        if worker == "awslambdaric" and not has_awslambdaric:
            raise RuntimeError("awslambdaric is not installed (it ships Linux wheels only)")
        self.functions = dict(functions)
        self.env = dict(env or {})
        self.timeout = timeout
        self.init_timeout = init_timeout
        self.concurrency = concurrency
        self._handlers = handlers
        self.builtin_worker = worker == "builtin" or not has_awslambdaric
        self._log_dir = Path(log_dir) if log_dir is not None else None
        self.port = port
        self._temp_dir: str | None = None
        self._runtimes: dict[str, FunctionRuntime] = {}
        self._server: _InvokeServer | None = None
        self._background: set[threading.Thread] = set()
        self._background_lock = threading.Lock()
        self.throttle_first = throttle_first
        self._refusals = {name: FirstRefusals(throttle_first) for name in functions}

    @property
    def endpoint_url(self) -> str:
        """`http://127.0.0.1:PORT`, the Lambda endpoint for boto3 (`endpoint_url=`)."""
        if self._server is None:
            raise RuntimeError("LocalLambdaHost has not been started")
        return self._server.url

    def function_arn(self, name: str) -> str:
        """The ARN a function has on this host."""
        return f"arn:aws:lambda:{self.region}:{ACCOUNT_ID}:function:{name}"

    def log_path(self, name: str) -> Path:
        """The log folder of a function (known once started), like its CloudWatch log group.

        It holds one file per worker, `<log stream id>.log`, with the worker's output and the
        START/END/REPORT lines of each invocation it ran.
        """
        return self._runtimes[name].log_dir

    def start(self) -> Self:
        """Start serving the Invoke API (workers start on their first invocation); OSError
        when `port` is taken."""
        if self._server is not None:
            raise RuntimeError("LocalLambdaHost was already started")
        if self._log_dir is None:
            self._temp_dir = tempfile.mkdtemp(prefix="local-lambda-")
            remove_at_owner_exit(self._temp_dir)  # even if this process is killed
        log_dir = self._log_dir or Path(str(self._temp_dir))
        log_dir.mkdir(parents=True, exist_ok=True)
        for name, handler in self._handlers.items():
            function_log_dir = log_dir / name
            function_log_dir.mkdir(exist_ok=True)
            self._runtimes[name] = FunctionRuntime(
                name,
                handler,
                env=self.env,
                timeout=self.timeout,
                init_timeout=self.init_timeout,
                concurrency=self.concurrency,
                builtin_worker=self.builtin_worker,
                log_dir=function_log_dir,
                region=self.region,
            )
        try:
            self._server = _InvokeServer(self)
        except BaseException:
            self.stop()
            raise
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop serving, stop every worker and wait for background invocations. Idempotent."""
        if self._server is not None:
            self._server.stop()
            self._server = None
        for runtime in self._runtimes.values():
            runtime.close()
        with self._background_lock:
            background = list(self._background)
        for thread in background:
            thread.join(timeout=5.0)
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None

    def _takes_throttle(self, name: str) -> bool:
        """Whether this invocation of `name` is one of its first `throttle_first`."""
        return name in self._refusals and self._refusals[name].take()

    def _run_in_background(
        self,
        runtime: FunctionRuntime,
        event: bytes,
        context: str | None,
        qualifier: str | None,
        request_id: str,
    ) -> None:
        def run() -> None:
            try:
                result = runtime.invoke(event, context, qualifier, request_id, queue=True)
                if result.function_error is not None:
                    error = result.payload.decode(errors="replace")
                    logger.warning("Event invocation of %s failed: %s", runtime.name, error)
            except HostStoppedError:
                pass
            finally:
                with self._background_lock:
                    self._background.discard(threading.current_thread())

        thread = threading.Thread(target=run, name=f"event-invoke-{runtime.name}", daemon=True)
        with self._background_lock:
            self._background.add(thread)
        thread.start()


class _InvokeServer(LocalHTTPServer):
    def __init__(self, host: LocalLambdaHost) -> None:
        super().__init__(_InvokeHandler, host.port or 0)
        self.host = host


class _InvokeHandler(RequestHandler):
    """`Invoke` of the AWS Lambda API (rest-json), as boto3 sends and parses it."""

    server: _InvokeServer

    def do_POST(self) -> None:
        self.request_id = str(uuid.uuid4())
        body = self.read_body()
        url = urlsplit(self.path)
        match = _INVOKE_PATH.fullmatch(url.path)
        if match is None:
            self._error(404, "UnknownOperationException", f"Unknown operation {url.path}")
            return
        host = self.server.host
        name, qualifier = _parse_function_name(unquote(match["name"]))
        qualifier = qualifier or parse_qs(url.query).get("Qualifier", [None])[0]
        runtime = host._runtimes.get(name)
        if runtime is None:
            message = f"Function not found: {host.function_arn(name)}"
            self._error(404, "ResourceNotFoundException", message)
            return
        invocation_type = self.headers.get("X-Amz-Invocation-Type") or "RequestResponse"
        if invocation_type not in ("RequestResponse", "Event", "DryRun"):
            message = f"Unsupported invocation type {invocation_type!r}"
            self._error(400, "InvalidParameterValueException", message)
            return
        limit = REQUEST_LIMITS["Event" if invocation_type == "Event" else "RequestResponse"]
        if len(body) > limit:
            message = (
                f"{len(body)} byte payload is too large for the {invocation_type} invocation "
                f"type (limit {limit} bytes)"
            )
            self._error(413, "RequestTooLargeException", message)
            return
        event = body or b"{}"
        try:
            json.loads(event)
        except ValueError as error:
            message = f"Could not parse request body into json: {error}"
            self._error(400, "InvalidRequestContentException", message)
            return
        try:
            client_context = _client_context(self.headers.get("X-Amz-Client-Context"))
        except ValueError as error:
            self._error(400, "InvalidRequestContentException", str(error))
            return
        if invocation_type == "DryRun":
            self.respond(204)
        elif invocation_type == "Event":
            # Lambda passes the client context to synchronous invocations only
            host._run_in_background(runtime, event, None, qualifier, self.request_id)
            self.respond(202, headers={"x-amzn-RequestId": self.request_id})
        else:
            self._invoke(runtime, event, client_context, qualifier)

    def _invoke(
        self,
        runtime: FunctionRuntime,
        event: bytes,
        client_context: str | None,
        qualifier: str | None,
    ) -> None:
        try:
            if self.server.host._takes_throttle(runtime.name):
                raise ConcurrencyLimitError("throttled on purpose (throttle_first)")
            result = runtime.invoke(event, client_context, qualifier, self.request_id)
        except ConcurrencyLimitError as error:
            logger.info("invocation of %s refused: %s", runtime.name, error)
            reason = "ReservedFunctionConcurrentInvocationLimitExceeded"
            self._error(429, "TooManyRequestsException", "Rate Exceeded.", reason=reason)
            return
        except HostStoppedError as error:
            self._error(503, "ServiceException", str(error))
            return
        except Exception as error:  # a worker that cannot even be started
            logger.exception("invocation of %s failed", runtime.name)
            self._error(500, "ServiceException", f"{type(error).__name__}: {error}")
            return
        headers = {"x-amzn-RequestId": result.request_id, "X-Amz-Executed-Version": "$LATEST"}
        if result.function_error is not None:
            headers["X-Amz-Function-Error"] = result.function_error
        if (self.headers.get("X-Amz-Log-Type") or "None") == "Tail":
            headers["X-Amz-Log-Result"] = base64.b64encode(result.log).decode()
        self.respond(200, result.payload, headers, content_type=result.content_type)

    def _error(
        self, status: int, error_type: str, message: str, *, reason: str | None = None
    ) -> None:
        """Lambda's error response: boto3 raises `client.exceptions.<error_type>`."""
        body = {"Type": "User", "message": message}
        if reason is not None:
            body["Reason"] = reason
        self.respond_json(
            status, body, {"x-amzn-RequestId": self.request_id, "x-amzn-ErrorType": error_type}
        )


def _lambda_handler(name: str, target: str) -> str:
    """A handler as Lambda's Handler setting spells it, `package.module.function`.

    Takes that form or `package.module:function`; raises ValueError naming the function otherwise.
    """
    colon_form = _COLON_HANDLER.fullmatch(target)
    if colon_form is not None:
        return f"{colon_form['module']}.{colon_form['function']}"
    if _LAMBDA_HANDLER.fullmatch(target):
        return target
    raise ValueError(
        f"handler of Lambda function {name!r} must be 'package.module.function' "
        f"(as Lambda's Handler setting) or 'package.module:function', got {target!r}"
    )


def _parse_function_name(function_name: str) -> tuple[str, str | None]:
    """Name and qualifier of a function name, full ARN or partial ARN (`ACCOUNT:function:NAME`)."""
    parts = function_name.split(":")
    if parts[0] == "arn" and len(parts) >= 7:
        return parts[6], parts[7] if len(parts) > 7 else None
    if len(parts) >= 3 and parts[1] == "function":
        return parts[2], parts[3] if len(parts) > 3 else None
    return parts[0], parts[1] if len(parts) > 1 else None


def _client_context(header: str | None) -> str | None:
    """The runtime's `Lambda-Runtime-Client-Context` JSON from `X-Amz-Client-Context` (base64).

    Lambda hands the function an object with `client`, `custom` and `env`; missing ones are `{}`.
    Raises ValueError when the header is not base64 of a JSON object.
    """
    if not header:
        return None
    try:
        value = json.loads(base64.b64decode(header, validate=True))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValueError("Client context must be a valid Base64-encoded JSON object.") from None
    if not isinstance(value, dict):
        raise ValueError("Client context must be a valid Base64-encoded JSON object.")
    for key in ("client", "custom", "env"):
        if value.get(key) is None:
            value[key] = {}
    return json.dumps(value)
