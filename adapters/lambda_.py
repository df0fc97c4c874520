"""`LambdaInvoker`: invokes an AWS Lambda function through boto3, exactly once per call."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from dagster_pipes_cloud.adapters._aws import (
    boto3_module,
    botocore_exceptions,
    error_code,
    translate,
    with_our_settings,
)
from dagster_pipes_cloud.adapters._lazy import Lazy
from dagster_pipes_cloud.adapters._pools import DEFAULT_POOL_CONNECTIONS, PoolSize
from dagster_pipes_cloud.adapters._resend import DEFAULT_RESEND_ATTEMPTS, Unsent, send_until_sent
from dagster_pipes_cloud.adapters.errors import PipesCloudError, ThrottledError
from dagster_pipes_cloud.adapters.http import parse_retry_after, throttled_message
from dagster_pipes_cloud.adapters.invocation import (
    Ending,
    FunctionInvocation,
    decode_function_error,
    decode_payload,
)
from dagster_pipes_cloud.adapters.wire import (
    CLIENT_CONTEXT_KEYS,
    Attribution,
    attribution_client_context_custom,
)

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient as LambdaClient

InvocationType = Literal["RequestResponse", "Event"]

# Lambda's limits, in one place: the longest run, and the request size per invocation type.
LAMBDA_MAX_SECONDS = 15 * 60
REQUEST_LIMITS: dict[InvocationType, int] = {
    "RequestResponse": 6 * 1024 * 1024,
    "Event": 1024 * 1024,
}
RESPONSE_LIMIT = 6 * 1024 * 1024 + 100
"""The largest response Lambda's Runtime API accepts from a function (6 MB and 100 bytes)."""
CLIENT_CONTEXT_MAX_BYTES = 3583  # base64-encoded, as Lambda counts it
ENDINGS: Mapping[str, Ending] = {
    "Sandbox.Timedout": "timed_out",
    "Runtime.ExitError": "crashed",
    "Runtime.OutOfMemory": "crashed",
}
"""Lambda's error types for a run that neither returned nor raised, and what each means."""


def _invoke_config() -> Any:
    """botocore settings for invokes: wait out the longest run, and never resend by itself."""
    from botocore.config import Config

    return Config(
        read_timeout=LAMBDA_MAX_SECONDS + 60,
        retries={"total_max_attempts": 1},
        tcp_keepalive=True,
    )


def default_lambda_client(pool_connections: int = DEFAULT_POOL_CONNECTIONS) -> LambdaClient:
    """A boto3 Lambda client that waits out Lambda's 15-minute maximum and never retries.

    botocore's defaults (a 60 s read timeout, then retries) would run a slow function again; this
    client gives up nothing it sent. It follows boto3's own configuration: credentials chain,
    `AWS_REGION`, `AWS_ENDPOINT_URL_LAMBDA`.

    Args:
        pool_connections: Connections kept open for invokes under way at once (default 10).
    """
    from botocore.config import Config

    config = Config(connect_timeout=10, max_pool_connections=pool_connections).merge(
        _invoke_config()
    )
    client: LambdaClient = boto3_module().client("lambda", config=config)
    return client


def invoke_client_like(client: Any) -> LambdaClient:
    """A Lambda client with the endpoint, region, credentials and other settings of `client`,
    but the invoke settings of `default_lambda_client` (read timeout past Lambda's 15 minutes,
    no retries of an invoke that may have arrived): see `with_our_settings`.

    Args:
        client: A boto3 Lambda client. Event hooks registered on it are not carried over. One
            that is not a botocore client (a test double) is returned as it is, with a
            `GivenClientWarning`: its own timeouts and retries then apply.
    """
    rebuilt: LambdaClient = with_our_settings(client, "lambda", _invoke_config(), "Lambda")
    return rebuilt


def encode_client_context(custom: Mapping[str, str]) -> str | None:
    """Lambda's `ClientContext` with `custom` set, or None when it would not fit 3,583 bytes."""
    body = json.dumps({"client": {}, "custom": dict(custom), "env": {}}).encode()
    encoded = base64.b64encode(body).decode()
    return encoded if len(encoded) <= CLIENT_CONTEXT_MAX_BYTES else None


def attribution_client_context(attribution: Attribution) -> str | None:
    """A `ClientContext` carrying the attribution fields under `CLIENT_CONTEXT_KEYS`; without the
    asset keys where all would not fit, None where even that does not."""
    custom = attribution_client_context_custom(attribution)
    encoded = encode_client_context(custom)
    if encoded is None:
        custom.pop(CLIENT_CONTEXT_KEYS["asset_keys"], None)
        encoded = encode_client_context(custom)
    return encoded


def decode_log_tail(encoded: str, *, drop_error_report: bool) -> str:
    """The `LogType=Tail` log (base64) as readable lines.

    The Python runtime writes a multi-line record (its report of an unhandled error) as one log
    event: lines joined by carriage returns, indented with no-break spaces. Those become
    newlines and spaces again. With `drop_error_report`, that error record is left out: the
    error itself is reported on its own, with its trace, and is not repeated here.
    """
    text = base64.b64decode(encoded).decode("utf-8", errors="replace")
    records = text.split("\n")
    if drop_error_report:
        records = [r for r in records if not _is_error_report(r)]
    return "\n".join(records).replace("\r", "\n").replace("\u00a0", " ")


_REPORT_FIELD = re.compile(r"^([A-Za-z][A-Za-z ]*?): ([0-9]+(?:\.[0-9]+)?) (ms|MB)$")


def parse_report(log_tail: str) -> dict[str, float]:
    """The figures of Lambda's `REPORT` line in `log_tail`, as numbers keyed by their name and
    unit (`duration_ms`, `billed_duration_ms`, `memory_size_mb`, `max_memory_used_mb`, and
    `init_duration_ms` on a cold start); empty where the tail has no such line (it was cut).

    Args:
        log_tail: The decoded log tail (`decode_log_tail`).
    """
    lines = [line for line in log_tail.splitlines() if line.startswith("REPORT RequestId:")]
    if not lines:
        return {}
    figures: dict[str, float] = {}
    for field_text in lines[-1].split("\t")[1:]:
        match = _REPORT_FIELD.match(field_text.strip())
        if match:
            name, value, unit = match.groups()
            key = f"{name.strip().lower().replace(' ', '_')}_{unit.lower()}"
            figures[key] = float(value) if "." in value else int(value)
    return figures


def _is_error_report(record: str) -> bool:
    head = record.split("\r", 1)[0]
    return "[ERROR]" in head and "\rTraceback (most recent call last):" in record


class LambdaInvoker:
    """Invokes Lambda functions through boto3, never running one twice for one call.

    A request is sent again only when it cannot have reached the function (the connection could
    not be opened, or Lambda throttled it); a read timeout or a dropped connection after sending
    is an error, never a second run. More: docs/behaviour.md, "Invoking a Lambda function".

    Args:
        client: A boto3 Lambda client, which says where and as whom; invokes go through a copy
            of it with our invoke settings (`invoke_client_like`). Default:
            `default_lambda_client()`, made on first use.
        resend_attempts: How many times a request that never arrived is sent again, after
            0.5 s, doubling (default 3).

    Raises:
        ValueError: `resend_attempts` is negative.
    """

    def __init__(
        self,
        client: LambdaClient | Any | None = None,
        *,
        resend_attempts: int = DEFAULT_RESEND_ATTEMPTS,
    ) -> None:
        if resend_attempts < 0:
            raise ValueError(f"resend_attempts must be 0 or more, not {resend_attempts}")
        self.resend_attempts = resend_attempts
        self._given = client
        self._pool = PoolSize()
        self._client = Lazy(
            lambda: (
                default_lambda_client(self._pool.connections)
                if client is None
                else invoke_client_like(client)
            )
        )

    def reserve_connections(self, count: int) -> None:
        """Keep up to `count` connections open for invokes made at once (a fan-out's
        `max_concurrency`): the default client is made again with that pool (botocore keeps 10
        otherwise); a given client's pool (its `Config(max_pool_connections=...)`) is its own.

        Args:
            count: How many invokes may be under way at once.
        """
        if self._pool.reserve(count) and self._given is None:
            self._client.forget()  # calls under way finish on the old client

    @property
    def client(self) -> LambdaClient:
        """The client invokes are sent with, made on first use."""
        return self._client.get()

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
        """Invoke `function_name` once with `payload`.

        Args:
            function_name: The function's name or ARN.
            payload: The event, encoded as JSON.
            invocation_type: "RequestResponse" (the default) waits for the function;
                "Event" queues it and returns an invocation that is not `completed`.
            qualifier: A version or alias (default: `$LATEST`).
            client_context: Lambda's `ClientContext`, base64-encoded (Lambda passes it to
                synchronous invocations only).
            log_tail: Ask for the end of the function's log (`LogType=Tail`; synchronous only).

        Returns:
            The function's response or its error; a timeout or a crash as `ended`.

        Raises:
            ThrottledError: Lambda still throttled it after `resend_attempts`, or asked for a
                longer wait than `THROTTLED_WAIT_MAX_SECONDS`.
            PipesCloudError: The request is over Lambda's size limit, or the invoke failed
                (as `ResourceNotFoundError`, `AccessDeniedError`, `TransientError`).
        """
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
        tail_text = decode_log_tail(tail, drop_error_report=bool(function_error)) if tail else None
        metadata = response.get("ResponseMetadata", {})
        error = decode_function_error(function_error, body) if function_error else None
        return FunctionInvocation(
            function=what,
            response=None if function_error else decode_payload(body),
            error=error,
            ended=ENDINGS.get(error.type) if error else None,
            completed=invocation_type == "RequestResponse",
            log_tail=tail_text,
            request_id=metadata.get("RequestId"),
            details={
                "status_code": response.get("StatusCode"),
                "executed_version": response.get("ExecutedVersion"),
                "report": parse_report(tail_text) if tail_text else {},
            },
        )

    def _send(self, kwargs: dict[str, Any], what: str) -> Any:
        exceptions = botocore_exceptions()
        never_arrived = (exceptions.EndpointConnectionError, exceptions.ConnectTimeoutError)

        def send() -> Any:
            try:
                return self.client.invoke(**kwargs)
            except Exception as exc:
                failure = exc  # `exc` is unbound once the except clause ends
                if error_code(exc) == "TooManyRequestsException":
                    retry_after = _retry_after(exc)
                    return Unsent(
                        lambda attempts: _throttled(failure, what, attempts, retry_after),
                        retry_after,
                        cause=exc,
                    )
                if isinstance(exc, never_arrived):
                    return Unsent(lambda _: translate(failure, what), cause=exc)
                if error_code(exc) == "RequestTooLargeException":
                    size = len(kwargs["Payload"])
                    kind: InvocationType = kwargs["InvocationType"]
                    raise PipesCloudError(
                        f"the request to {what} is {size} bytes, over Lambda's limit of"
                        f" {REQUEST_LIMITS[kind]} bytes for {kind} invocations: pass large"
                        " inputs through S3 and put their keys in the event"
                    ) from exc
                raise translate(exc, what) from exc

        return send_until_sent(send, resend_attempts=self.resend_attempts)


def _retry_after(exc: Exception) -> float | None:
    """The delay Lambda suggested with a throttling error (its `Retry-After` header), if any."""
    response = getattr(exc, "response", None) or {}
    value = response.get("retryAfterSeconds")
    if value is None:
        headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        value = headers.get("retry-after")
    return parse_retry_after(None if value is None else str(value))


def _throttled(
    exc: Exception, what: str, attempts: int, retry_after: float | None
) -> ThrottledError:
    response = getattr(exc, "response", None) or {}
    message = response.get("Error", {}).get("Message") or response.get("message") or ""
    reason = response.get("Reason")
    answer = "TooManyRequestsException" + (f": {message}" if message else "")
    answer += f", {reason}" if reason else ""
    return ThrottledError(
        throttled_message(what, answer, attempts, retry_after), retry_after=retry_after
    )
