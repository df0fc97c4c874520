"""A stdlib-only Lambda runtime worker, for where awslambdaric is not installed (macOS).

Run as `python worker.py package.module.function` with `AWS_LAMBDA_RUNTIME_API` set, as
awslambdaric is: it imports the handler (posting Lambda's init error and exiting 1 on failure),
then loops over `/runtime/invocation/next`, calling `handler(event, context)` and posting the
JSON result or Lambda's error shape. It runs by path, not as a package module, so the handler's
process imports nothing of ours. Linux uses the real awslambdaric; this is its stand-in only.
"""

from __future__ import annotations

import http.client
import importlib
import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from typing import Any

_API = "/2018-06-01/runtime"
Handler = Callable[[Any, "LambdaContext"], Any]


class Client:
    """`context.client_context.client`: the calling app's identity (attributes may be None)."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.installation_id = values.get("installation_id")
        self.app_title = values.get("app_title")
        self.app_version_name = values.get("app_version_name")
        self.app_version_code = values.get("app_version_code")
        self.app_package_name = values.get("app_package_name")


class ClientContext:
    """`context.client_context`: `custom`, `env` and `client` from the invoker's ClientContext."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.custom = values.get("custom")
        self.env = values.get("env")
        client = values.get("client")
        self.client = Client(client) if isinstance(client, Mapping) else None


class LambdaContext:
    """The handler's `context`, with the attributes and method of awslambdaric's."""

    def __init__(self, headers: Mapping[str, str]) -> None:
        self.aws_request_id = headers.get("Lambda-Runtime-Aws-Request-Id", "")
        self.invoked_function_arn = headers.get("Lambda-Runtime-Invoked-Function-Arn")
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.identity = None
        self.tenant_id = headers.get("Lambda-Runtime-Aws-Tenant-Id")
        self._deadline_ms = int(headers.get("Lambda-Runtime-Deadline-Ms") or 0)
        client_context = headers.get("Lambda-Runtime-Client-Context")
        self.client_context = ClientContext(json.loads(client_context)) if client_context else None

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the invocation times out (0 once past)."""
        return max(0, self._deadline_ms - int(time.time() * 1000))


class _RuntimeAPI:
    """The few Runtime API calls a worker makes, one connection per call."""

    def __init__(self, address: str) -> None:
        self.address = address

    def call(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[bytes, dict[str, str]]:
        connection = http.client.HTTPConnection(self.address)
        try:
            connection.request(method, f"{_API}{path}", body=body, headers=dict(headers or {}))
            response = connection.getresponse()
            data = response.read()
            if response.status >= 300:
                raise RuntimeError(
                    f"Runtime API {method} {path} answered {response.status}: {data!r}"
                )
            return data, dict(response.getheaders())
        finally:
            connection.close()

    def post_error(self, path: str, error: Mapping[str, Any]) -> None:
        headers = {
            "Content-Type": "application/json",
            "Lambda-Runtime-Function-Error-Type": str(error["errorType"]),
        }
        self.call("POST", path, json.dumps(error).encode(), headers)


def _error(error_type: str, message: str, trace: list[str], request_id: str = "") -> dict[str, Any]:
    return {
        "errorMessage": message,
        "errorType": error_type,
        "requestId": request_id,
        "stackTrace": trace,
    }


def _exception_error(error: BaseException, request_id: str = "") -> dict[str, Any]:
    frames = traceback.extract_tb(error.__traceback__)
    own = os.path.abspath(__file__)
    user_frames = [frame for frame in frames if os.path.abspath(frame.filename) != own]
    trace = traceback.format_list(user_frames)
    return _error(type(error).__name__, str(error), trace, request_id)


def _log_error(error: Mapping[str, Any]) -> None:
    """Write the error to stdout as awslambdaric does (lines joined by carriage returns)."""
    lines = [f"[ERROR] {error['errorType']}: {error['errorMessage']}"]
    if error["stackTrace"]:
        lines.append("Traceback (most recent call last):")
        lines.extend(line for entry in error["stackTrace"] for line in entry.splitlines())
    sys.stdout.write("\r".join(lines) + "\n")
    sys.stdout.flush()


def _load_handler(name: str) -> Handler:
    """Import `module.function`; raises `_InitError` carrying Lambda's init error on failure."""
    module_name, _, function_name = name.rpartition(".")
    if not module_name:
        message = f"Bad handler '{name}': not enough values to unpack (expected 2, got 1)"
        raise _InitError(_error("Runtime.MalformedHandlerName", message, []))
    try:
        module = importlib.import_module(module_name.replace("/", "."))
    except ImportError as error:
        message = f"Unable to import module '{module_name}': {error}"
        raise _InitError(_error("Runtime.ImportModuleError", message, [])) from error
    except SyntaxError as error:
        message = f"Syntax error in module '{module_name}': {error}"
        trace = [f'  File "{error.filename}" Line {error.lineno}\n    {error.text}']
        raise _InitError(_error("Runtime.UserCodeSyntaxError", message, trace)) from error
    except Exception as error:
        raise _InitError(_exception_error(error)) from error
    handler = getattr(module, function_name, None)
    if handler is None:
        message = f"Handler '{function_name}' missing on module '{module_name}'"
        raise _InitError(_error("Runtime.HandlerNotFound", message, []))
    handler_function: Handler = handler
    return handler_function


class _InitError(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error["errorMessage"])
        self.error = error


class _RequestIdFilter(logging.Filter):
    request_id = ""

    def filter(self, record: logging.LogRecord) -> bool:
        record.aws_request_id = self.request_id
        return True


def _setup_logging() -> _RequestIdFilter:
    """Root logging to stdout in awslambdaric's text format, with the request id on each line."""
    logging.Formatter.converter = time.gmtime
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        logging.Formatter(
            "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s",
            "%Y-%m-%dT%H:%M:%S",
        )
    )
    request_filter = _RequestIdFilter()
    handler.addFilter(request_filter)
    logging.getLogger().addHandler(handler)
    return request_filter


def _marshal(result: Any) -> tuple[bytes, str]:
    """The response body and content type: bytes as they are, anything else as JSON."""
    if isinstance(result, bytes):
        return result, "application/unknown"
    return json.dumps(result).encode(), "application/json"


def _serve(api: _RuntimeAPI, handler: Handler, request_filter: _RequestIdFilter) -> None:
    while True:
        body, headers = api.call("GET", "/invocation/next")
        request_id = headers.get("Lambda-Runtime-Aws-Request-Id", "")
        request_filter.request_id = request_id
        if "Lambda-Runtime-Trace-Id" in headers:
            os.environ["_X_AMZN_TRACE_ID"] = headers["Lambda-Runtime-Trace-Id"]
        failure: dict[str, Any] | None = None
        try:
            context = LambdaContext(headers)
            event = json.loads(body) if body else {}
            result = handler(event, context)
        except Exception as error:
            failure = _exception_error(error, request_id)
        else:
            try:
                payload, content_type = _marshal(result)
            except (TypeError, ValueError) as error:
                message = f"Unable to marshal response: {error}"
                failure = _error("Runtime.MarshalError", message, [], request_id)
        if failure is not None:
            _log_error(failure)
            api.post_error(f"/invocation/{request_id}/error", failure)
            continue
        response_headers = {"Content-Type": content_type}
        api.call("POST", f"/invocation/{request_id}/response", payload, response_headers)


def main(argv: list[str]) -> None:
    """Import the handler named in `argv[1]` and serve invocations until killed."""
    sys.path[0] = os.getcwd()  # as `python -m awslambdaric` has it, not this file's folder
    api = _RuntimeAPI(os.environ["AWS_LAMBDA_RUNTIME_API"])
    request_filter = _setup_logging()
    try:
        handler = _load_handler(argv[1])
    except _InitError as failure:
        _log_error(failure.error)
        api.post_error("/init/error", failure.error)
        sys.exit(1)
    _serve(api, handler, request_filter)


if __name__ == "__main__":
    main(sys.argv)
