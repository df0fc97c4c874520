"""`PipesLambdaClient`: run an AWS Lambda function as a Dagster Pipes process."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from dagster import MetadataValue, PipesContextInjector, PipesMessageReader

from dagster_pipes_cloud.adapters import FunctionInvocation
from dagster_pipes_cloud.adapters.lambda_ import (
    LAMBDA_MAX_SECONDS,
    REQUEST_LIMITS,
    InvocationType,
    LambdaInvoker,
    attribution_client_context,
)
from dagster_pipes_cloud.orchestration.clients._attribution import run_attribution
from dagster_pipes_cloud.orchestration.clients.base import (
    Context,
    FunctionTarget,
    PipesFunctionClient,
    PipesFunctionInvocation,
)

if TYPE_CHECKING:
    from dagster_pipes_cloud.adapters.lambda_ import LambdaClient


class PipesLambdaClient(PipesFunctionClient):
    """Invokes an AWS Lambda function with the Pipes bootstrap in its event and reads its messages.

    The context travels in the event up to Lambda's request limit (6 MB synchronous, 1 MB
    `Event`), else through the reader's bucket. An invoke that may have reached the function is
    never sent again: see [How it behaves](behaviour.md#invoking-a-lambda-function).

    ```python
    lambda_pipes = PipesLambdaClient(
        message_reader=PipesS3MessageReader(bucket="my-pipes-bucket"),
    )
    invocation = lambda_pipes.run(context=context, function_name="totals", event={"rows": 9})
    return invocation.get_materialize_result()
    ```

    Args:
        message_reader: Where the function's messages are read from, usually a
            `PipesS3MessageReader`.
        context_injector: How the function gets its context (default: a
            `PipesEventContextInjector`, falling back to the reader's bucket).
        client: A boto3 Lambda client, which says where and as whom; invokes are sent with
            `default_lambda_client`'s settings whatever its own timeout and retries. Default:
            `default_lambda_client()`, made on first use.
        event_timeout: Seconds an `Event` invocation may take to send "closed" before the step
            fails (default 16 minutes).
        invoker: A `LambdaInvoker` to use in place of the default one, for example
            `LambdaInvoker(client, resend_attempts=0)`; not with `client`.
        forward_termination: Terminating the run asks the function to stop, with a cancel marker
            in its session (default True).

    Raises:
        ValueError: Both `client` and `invoker` are given.
    """

    def __init__(
        self,
        *,
        message_reader: PipesMessageReader,
        context_injector: PipesContextInjector | None = None,
        client: LambdaClient | Any | None = None,
        event_timeout: float = LAMBDA_MAX_SECONDS + 60,
        invoker: LambdaInvoker | None = None,
        forward_termination: bool = True,
    ) -> None:
        if client is not None and invoker is not None:
            raise ValueError("give client or invoker (which has its own client), not both")
        super().__init__(
            message_reader=message_reader,
            context_injector=context_injector,
            forward_termination=forward_termination,
        )
        self._invoker = invoker or LambdaInvoker(client)
        self.event_timeout = event_timeout

    def run(  # type: ignore[override]
        self,
        *,
        context: Context,
        function_name: str,
        event: Mapping[str, Any] | None = None,
        extras: Mapping[str, Any] | None = None,
        qualifier: str | None = None,
        invocation_type: InvocationType = "RequestResponse",
    ) -> PipesFunctionInvocation:
        """Invoke a Lambda function once and return when every message it sent has been read.

        The Dagster run id, asset keys and retry number go in the Lambda client context,
        which `lambda_handler` logs.

        Args:
            context: The asset's or op's execution context.
            function_name: The function's name or ARN.
            event: The event the function gets as its payload (default: empty).
            extras: Extra values for the function's `pipes.extras` (default: none).
            qualifier: A version or alias (default: `$LATEST`).
            invocation_type: "RequestResponse" (the default) waits for the function and returns
                its response; "Event" queues it and waits for its Pipes session to close.

        Returns:
            The completed invocation: its Pipes results, and the function's own response as
            `.response` (None for an `Event` invocation).

        Raises:
            ValueError: `invocation_type` is neither "RequestResponse" nor "Event".
            DagsterPipesExecutionError: The function failed (with its own exception where it
                sent one), never opened Pipes, or could not be invoked (throttled: caused by a
                `ThrottledError`, for a `RetryPolicy`).
        """
        return self._run_function(
            context=context,
            event=event,
            target=self._target(
                context,
                function_name=function_name,
                extras=extras,
                qualifier=qualifier,
                invocation_type=invocation_type,
            ),
        )

    def _target(  # type: ignore[override]
        self,
        context: Context,
        *,
        function_name: str,
        extras: Mapping[str, Any] | None = None,
        qualifier: str | None = None,
        invocation_type: InvocationType = "RequestResponse",
    ) -> FunctionTarget:
        if invocation_type not in REQUEST_LIMITS:
            raise ValueError(
                f"invocation_type must be 'RequestResponse' or 'Event', got {invocation_type!r}"
            )
        client_context = attribution_client_context(run_attribution(context))
        return FunctionTarget(
            function=f"Lambda function {function_name!r}",
            invoke=lambda payload: self._invoker.invoke(
                function_name,
                payload,
                invocation_type=invocation_type,
                qualifier=qualifier,
                client_context=client_context,
                log_tail=True,
            ),
            request_limit=REQUEST_LIMITS[invocation_type],
            wait_timeout=self.event_timeout,
            extras=extras,
            metadata=lambda invocation: self._metadata(function_name, invocation),
            reserve_connections=self._invoker.reserve_connections,
        )

    def _metadata(self, function_name: str, invocation: FunctionInvocation) -> dict[str, Any]:
        """The request id, a link to its log in CloudWatch Logs (on AWS's own endpoint, where
        the region is known) and the figures of Lambda's REPORT line."""
        metadata: dict[str, Any] = {}
        if invocation.request_id:
            metadata["aws_lambda_request_id"] = invocation.request_id
            meta = getattr(self._invoker.client, "meta", None)
            url = cloudwatch_logs_url(
                function_name,
                invocation.request_id,
                region=getattr(meta, "region_name", None),
                endpoint_url=getattr(meta, "endpoint_url", None),
            )
            if url is not None:
                metadata["aws_lambda_logs"] = MetadataValue.url(url)
        for name, value in invocation.details.get("report", {}).items():
            metadata[f"aws_lambda_{name}"] = value
        return metadata


def cloudwatch_logs_url(
    function_name: str, request_id: str, *, region: str | None, endpoint_url: str | None
) -> str | None:
    """The CloudWatch Logs console view of the function's log group (Lambda's default,
    `/aws/lambda/<name>`) filtered to the lines carrying `request_id`.

    Args:
        function_name: The function's name or ARN (whose region wins over `region`).
        request_id: The invocation's request id.
        region: The client's region.
        endpoint_url: The client's endpoint: a link is made only for AWS's own.

    Returns:
        The URL, or None where the region is unknown or the endpoint is not AWS's.
    """
    host = urlsplit(endpoint_url or "").hostname or ""
    if not (host.endswith(".amazonaws.com") or host.endswith(".amazonaws.com.cn")):
        return None
    parts = function_name.split(":")
    if "function" in parts:  # an ARN (arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER])
        at = parts.index("function")
        name = parts[at + 1] if at + 1 < len(parts) else ""
        region = parts[3] if parts[0] == "arn" and len(parts) > 3 and parts[3] else region
    else:
        name = function_name
    if not name or not region:
        return None
    console = "console.amazonaws.cn" if host.endswith(".cn") else "console.aws.amazon.com"
    group = _console_escape(f"/aws/lambda/{name}")
    pattern = _console_escape(f'"{request_id}"')
    return (
        f"https://{region}.{console}/cloudwatch/home?region={region}"
        f"#logsV2:log-groups/log-group/{group}/log-events$3FfilterPattern$3D{pattern}"
    )


def _console_escape(value: str) -> str:
    """A value as the CloudWatch console reads it in its URL fragment: percent-encoded twice,
    then each `%` written `$`."""
    return quote(quote(value, safe=""), safe="").replace("%", "$")
