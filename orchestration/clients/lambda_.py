"""`PipesLambdaClient`: run an AWS Lambda function as a Dagster Pipes process."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dagster import PipesContextInjector, PipesMessageReader

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
    PipesFunctionClient,
    PipesFunctionInvocation,
)

if TYPE_CHECKING:
    from dagster_pipes_cloud.adapters.lambda_ import LambdaClient


class PipesLambdaClient(PipesFunctionClient):
    """Invokes a Lambda function with the Pipes bootstrap in its event and reads its messages.

        lambda_pipes = PipesLambdaClient(
            message_reader=PipesS3MessageReader(bucket="my-pipes-bucket"),
        )
        invocation = lambda_pipes.run(context=context, function_name="totals", event={"rows": 9})
        return invocation.get_materialize_result()

    `client` is a boto3 Lambda client; by default one made on first use that waits out Lambda's
    15-minute maximum and never sends an invoke twice (`default_lambda_client`; it follows boto3's
    configuration: credentials chain, `AWS_REGION`, `AWS_ENDPOINT_URL_LAMBDA`). A client you pass
    says where and as whom: its endpoint, region and credentials are used with those same invoke
    settings, whatever its own timeout and retries. The context travels in the event up to Lambda's
    request limit (6 MB synchronous, 1 MB `Event`), else through the reader's bucket. The Dagster
    run id, asset keys and retry number go in the Lambda client context
    (`context.client_context.custom`; Lambda passes it to synchronous invocations only, and
    `pipes.run_id` always has the run id), and `lambda_handler` logs them. Lambda's throttling
    (`TooManyRequestsException`) is resent a few times within seconds, then fails the step naming
    it: a Dagster `RetryPolicy` retries it. `invoker=` replaces the whole `LambdaInvoker` (for
    example `LambdaInvoker(client, resend_attempts=0)`). An `Event` invocation ends on the "closed"
    message or fails after `event_timeout` seconds (default 16 minutes); Lambda retries a failed
    `Event` invocation up to twice on its own, so give functions run this way 0 retry attempts (`aws
    lambda put-function-event-invoke-config --maximum-retry-attempts 0`).
    Terminating the run asks the function to stop (`forward_termination`, default True; see
    `PipesFunctionClient`).
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
        """Invoke `function_name` (name or ARN; `qualifier`: version or alias) once.

        `invocation_type` "RequestResponse" waits for the function and returns its response;
        "Event" queues it and waits for its Pipes session to close.
        """
        if invocation_type not in REQUEST_LIMITS:
            raise ValueError(
                f"invocation_type must be 'RequestResponse' or 'Event', got {invocation_type!r}"
            )
        client_context = attribution_client_context(run_attribution(context))
        return self._run_function(
            context=context,
            extras=extras,
            event=event,
            request_limit=REQUEST_LIMITS[invocation_type],
            wait_timeout=self.event_timeout,
            function=f"Lambda function {function_name!r}",
            invoke=lambda payload: self._invoker.invoke(
                function_name,
                payload,
                invocation_type=invocation_type,
                qualifier=qualifier,
                client_context=client_context,
                log_tail=True,
            ),
            metadata=lambda invocation: (
                {"aws_lambda_request_id": invocation.request_id} if invocation.request_id else {}
            ),
        )
