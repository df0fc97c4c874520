"""`PipesAzureFunctionClient`: run an HTTP-triggered Azure Function as a Dagster Pipes process."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dagster import PipesContextInjector, PipesMessageReader

from dagster_pipes_cloud.adapters import FunctionInvocation
from dagster_pipes_cloud.adapters.azure_functions import (
    AZURE_FUNCTION_TIMEOUT,
    AZURE_FUNCTIONS_REQUEST_LIMIT,
    AzureFunctionInvoker,
    without_function_key,
)
from dagster_pipes_cloud.adapters.http import require_http_url
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


class PipesAzureFunctionClient(PipesFunctionClient):
    """POSTs the event, with the Pipes bootstrap, to an HTTP-triggered Azure Function and reads
    its messages.

        azure_pipes = PipesAzureFunctionClient(
            message_reader=PipesAzureBlobStorageMessageReader(container="dagster-pipes"),
        )
        invocation = azure_pipes.run(context=context, function_url=URL, event={"rows": 9})
        return invocation.get_materialize_result()

    Authentication: `function_key` is sent as `x-functions-key` (default: the
    `AZURE_FUNCTIONS_KEY` environment variable; none for an anonymous function); `scope` asks
    azure-identity's `DefaultAzureCredential` for an Entra ID token instead (a function app behind
    App Service authentication: `api://<client id>/.default`). `session=` (a `requests.Session`)
    is the transport (proxies, adapters, headers): `function_key` or `scope` given beside it are
    sent with its requests; without them the session is trusted to authenticate them (the
    environment's key is not added). `invoker=` replaces the whole `AzureFunctionInvoker` (its
    timeouts, its credential, its session). A combination that cannot work (`function_key` with
    `scope`, `invoker` with any of `session`, `function_key`, `scope`) raises ValueError naming
    both.

    The 230-second limit: Azure's front end ends an HTTP request that has not been answered after
    230 s, while the function runs on. The step does not fail then: the client logs that the
    response was cut and reads the function's messages until its "closed" message, up to
    `function_timeout` seconds (default 30 minutes, the Premium plan's default `functionTimeout`;
    set it to your function app's), and fails the step with the function's own exception if it sent
    one. `.response` is then None. The request is sent once; only what never reached the function is
    sent again: a 429 (the host's HTTP throttle) a few times within seconds, then the step fails
    naming the throttling, for a Dagster `RetryPolicy` to retry. Each request carries the run id,
    asset keys and retry number as `X-Dagster-Run-Id`, `X-Dagster-Asset-Keys` and
    `X-Dagster-Retry-Number`, which `azure_function` logs. The context travels in the event up to
    the platform's 100 MB request limit, else through the reader's container.
    Terminating the run asks the function to stop (`forward_termination`, default True; see
    `PipesFunctionClient`).
    """

    def __init__(
        self,
        *,
        message_reader: PipesMessageReader,
        context_injector: PipesContextInjector | None = None,
        session: requests.Session | None = None,
        function_key: str | None = None,
        scope: str | None = None,
        function_timeout: float = AZURE_FUNCTION_TIMEOUT,
        invoker: AzureFunctionInvoker | None = None,
        forward_termination: bool = True,
    ) -> None:
        super().__init__(
            message_reader=message_reader,
            context_injector=context_injector,
            forward_termination=forward_termination,
        )
        given = {"session": session, "function_key": function_key, "scope": scope}
        refuse_beside_invoker(invoker, given)
        self._invoker = invoker or AzureFunctionInvoker(
            session=session,
            function_key=function_key,
            scope=scope,
            function_timeout=function_timeout,
        )
        self.function_timeout = function_timeout

    def run(  # type: ignore[override]
        self,
        *,
        context: Context,
        function_url: str,
        event: Mapping[str, Any] | None = None,
        extras: Mapping[str, Any] | None = None,
    ) -> PipesFunctionInvocation:
        """Invoke the function at `function_url` (`https://APP.azurewebsites.net/api/ROUTE`; a
        key in it, `?code=`, is sent as a header and named in no event)."""
        shown, _ = without_function_key(function_url)
        require_http_url(shown)
        url = function_url
        headers = attribution_headers(run_attribution(context))

        def invoke(payload: bytes) -> FunctionInvocation:
            invocation = self._invoker.invoke(url, payload, headers=headers)
            if not invocation.completed:
                context.log.warning(
                    f"The response from {shown} was cut: {invocation.details['unfinished']}."
                    " Reading its messages until it closes Dagster Pipes, for up to"
                    f" {self.function_timeout:g}s."
                )
            return invocation

        return self._run_function(
            context=context,
            extras=extras,
            event=event,
            request_limit=AZURE_FUNCTIONS_REQUEST_LIMIT,
            wait_timeout=self.function_timeout,
            function=shown,
            invoke=invoke,
        )
