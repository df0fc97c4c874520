"""`LambdaInvoker`: invokes an AWS Lambda function through boto3, exactly once per call."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from dagster_pipes_cloud.adapters._aws import (
    boto3_module,
    botocore_exceptions,
    error_code,
    translate,
)
from dagster_pipes_cloud.adapters.errors import PipesCloudError
from dagster_pipes_cloud.adapters.invocation import FunctionInvocation, RemoteError

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient

InvocationType = Literal["RequestResponse", "Event"]

LAMBDA_MAX_SECONDS = 15 * 60
CLIENT_CONTEXT_MAX_BYTES = 3583  # base64-encoded, as Lambda counts it
_RESEND_ATTEMPTS = 4


def default_lambda_client() -> LambdaClient:
    """A boto3 Lambda client that waits out Lambda's 15-minute maximum and never retries.

    botocore's defaults (60 s read timeout, then retries) would run a slow function again; this
    client gives up nothing it sent. `LambdaInvoker` itself resends only what never arrived.
    """
    boto3 = boto3_module()
    from botocore.config import Config

    config = Config(
        connect_timeout=10,
        read_timeout=LAMBDA_MAX_SECONDS + 60,
        retries={"total_max_attempts": 1},
        tcp_keepalive=True,
    )
    client: LambdaClient = boto3.client("lambda", config=config)
    return client


def encode_client_context(custom: Mapping[str, str]) -> str | None:
    """Lambda's `ClientContext` with `custom` set, or None when it would not fit 3,583 bytes."""
    body = json.dumps({"client": {}, "custom": dict(custom), "env": {}}).encode()
    encoded = base64.b64encode(body).decode()
    return encoded if len(encoded) <= CLIENT_CONTEXT_MAX_BYTES else None


def decode_payload(payload: bytes) -> Any:
    """The function's return value: JSON where it is JSON, else the text, None when empty."""
    if not payload:
        return None
    text = payload.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def decode_function_error(function_error: str, payload: bytes) -> RemoteError:
    """Lambda's error payload (`errorType`, `errorMessage`, `stackTrace`) as a `RemoteError`."""
    body = decode_payload(payload)
    if isinstance(body, dict):
        trace = body.get("stackTrace") or []
        return RemoteError(
            type=str(body.get("errorType") or function_error),
            message=str(body.get("errorMessage") or ""),
            trace=[str(line) for line in trace] if isinstance(trace, list) else [str(trace)],
        )
    return RemoteError(type=function_error, message="" if body is None else str(body))


class LambdaInvoker:
    """Invoke Lambda functions; `client` defaults to `default_lambda_client()`.

    A request is resent only when it cannot have reached the function: the connection could not
    be opened, or Lambda throttled it (up to 4 attempts, with backoff). A read timeout or a
    dropped connection after sending is an error, never a second run.
    """

    def __init__(self, client: Any | None = None) -> None:
        self._given_client = client
        self._default_client: LambdaClient | None = None

    @property
    def client(self) -> LambdaClient:
        """The client in use; the default one is made on first use, not at construction."""
        if self._given_client is not None:
            given: LambdaClient = self._given_client
            return given
        if self._default_client is None:
            self._default_client = default_lambda_client()
        return self._default_client

    def invoke(
        self,
        function_name: str,
        payload: bytes,
        *,
        invocation_type: InvocationType = "RequestResponse",
        qualifier: str | None = None,
        client_context: str | None = None,
        log_tail: bool = False,
    ) -> FunctionInvocation:
        kwargs: dict[str, Any] = {
            "FunctionName": function_name,
            "InvocationType": invocation_type,
            "Payload": payload,
        }
        if qualifier:
            kwargs["Qualifier"] = qualifier
        if client_context:
            kwargs["ClientContext"] = client_context
        if log_tail and invocation_type == "RequestResponse":
            kwargs["LogType"] = "Tail"
        what = f"Lambda function {function_name!r}" + (f" ({qualifier})" if qualifier else "")
        response = self._send(kwargs, what)
        body = response["Payload"].read() if "Payload" in response else b""
        tail = response.get("LogResult")
        function_error = response.get("FunctionError")
        metadata = response.get("ResponseMetadata", {})
        return FunctionInvocation(
            function=what,
            response=None if function_error else decode_payload(body),
            error=decode_function_error(function_error, body) if function_error else None,
            completed=invocation_type == "RequestResponse",
            log_tail=base64.b64decode(tail).decode("utf-8", errors="replace") if tail else None,
            request_id=metadata.get("RequestId"),
            details={
                "status_code": response.get("StatusCode"),
                "executed_version": response.get("ExecutedVersion"),
            },
        )

    def _send(self, kwargs: dict[str, Any], what: str) -> Any:
        exceptions = botocore_exceptions()
        never_arrived = (exceptions.EndpointConnectionError, exceptions.ConnectTimeoutError)
        for attempt in range(1, _RESEND_ATTEMPTS + 1):
            try:
                return self.client.invoke(**kwargs)
            except Exception as exc:
                throttled = error_code(exc) == "TooManyRequestsException"
                if (isinstance(exc, never_arrived) or throttled) and attempt < _RESEND_ATTEMPTS:
                    time.sleep(0.5 * 2 ** (attempt - 1))
                    continue
                if error_code(exc) == "RequestTooLargeException":
                    size = len(kwargs["Payload"])
                    raise PipesCloudError(
                        f"the request to {what} is too large for Lambda ({size} bytes)"
                    ) from exc
                raise translate(exc, what) from exc
        raise AssertionError("unreachable")
