"""`PipesCloudFunctionClient`: run an HTTP Google Cloud Function as a Dagster Pipes process."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from dagster import PipesContextInjector, PipesMessageReader
from dagster._core.errors import DagsterPipesExecutionError

from dagster_pipes_cloud.adapters import PipesCloudError
from dagster_pipes_cloud.adapters.cloud_functions import (
    CLOUD_FUNCTIONS_MAX_SECONDS,
    CLOUD_FUNCTIONS_REQUEST_LIMIT,
    CloudFunctionInvoker,
)
from dagster_pipes_cloud.adapters.wire import attribution_headers
from dagster_pipes_cloud.orchestration.clients._attribution import run_attribution
from dagster_pipes_cloud.orchestration.clients.base import (
    Context,
    PipesFunctionClient,
    PipesFunctionInvocation,
    refuse_beside_invoker,
)

if TYPE_CHECKING:
    import requests


class PipesCloudFunctionClient(PipesFunctionClient):
    """POSTs the event, with the Pipes bootstrap, to an HTTP Cloud Function and reads its
    messages.

        gcf_pipes = PipesCloudFunctionClient(
            message_reader=PipesGCSMessageReader(bucket="my-pipes-bucket"),
        )
        invocation = gcf_pipes.run(context=context, function_url=URL, event={"rows": 9})
        return invocation.get_materialize_result()

    Each request carries an ID token for the function's URL, from google-auth's application default
    credentials (a service account key, workload identity or the metadata server; the caller needs
    `roles/run.invoker` on the function); none is fetched for a loopback URL (a local function host,
    such as `dagster-pipes-cloud local --cloud gcp` serves); `id_token_source=` (a callable from
    the audience to an ID token) replaces google-auth's. `session=` (a `requests.Session`) is the
    transport: a given `id_token_source` is still asked for each request's token; without one the
    session is trusted to authenticate its requests and no token is fetched. `invoker=` replaces
    the whole `CloudFunctionInvoker` (its timeouts, its token source, its session, its functions
    client for resource names); given with `session` or `id_token_source`, ValueError.
    The request waits out a 2nd gen function's 60 minutes and is sent once; only what never
    reached the function is sent again: a 429 (no instance free) a few times within seconds, then
    the step fails naming the throttling, for a Dagster `RetryPolicy` to retry. Each request carries
    the run id, asset keys and retry number as `X-Dagster-Run-Id`, `X-Dagster-Asset-Keys` and
    `X-Dagster-Retry-Number`, which `cloud_function` logs. The context travels in the event up to
    the platform's 32 MB request limit, else through the reader's bucket.
    Terminating the run asks the function to stop (`forward_termination`, default True; see
    `PipesFunctionClient`)."""

    def __init__(
        self,
        *,
        message_reader: PipesMessageReader,
        context_injector: PipesContextInjector | None = None,
        session: requests.Session | None = None,
        id_token_source: Callable[[str], str] | None = None,
        invoker: CloudFunctionInvoker | None = None,
        forward_termination: bool = True,
    ) -> None:
        super().__init__(
            message_reader=message_reader,
            context_injector=context_injector,
            forward_termination=forward_termination,
        )
        refuse_beside_invoker(invoker, {"session": session, "id_token_source": id_token_source})
        self._invoker = invoker or CloudFunctionInvoker(
            session=session, id_token_source=id_token_source
        )

    def run(  # type: ignore[override]
        self,
        *,
        context: Context,
        function_url: str | None = None,
        function_name: str | None = None,
        event: Mapping[str, Any] | None = None,
        extras: Mapping[str, Any] | None = None,
    ) -> PipesFunctionInvocation:
        """Invoke the function at `function_url`, or the one with the full resource name
        `function_name` (`projects/P/locations/L/functions/F`, resolved once to its URL)."""
        try:
            url = self._invoker.resolve_url(function_url, function_name)
        except PipesCloudError as exc:
            raise DagsterPipesExecutionError(str(exc)) from exc
        headers = attribution_headers(run_attribution(context))
        return self._run_function(
            context=context,
            extras=extras,
            event=event,
            request_limit=CLOUD_FUNCTIONS_REQUEST_LIMIT,
            wait_timeout=CLOUD_FUNCTIONS_MAX_SECONDS,  # for a delivery answered by another
            function=url,
            invoke=lambda payload: self._invoker.invoke(url, payload, headers=headers),
            metadata=lambda invocation: (
                {"gcp_execution_id": invocation.request_id} if invocation.request_id else {}
            ),
        )
