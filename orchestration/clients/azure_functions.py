"""`PipesAzureFunctionClient`: run an HTTP-triggered Azure Function as a Dagster Pipes process."""

from __future__ import annotations

import base64
import gzip
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from dagster import MetadataValue, PipesContextInjector, PipesMessageReader

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
    FunctionTarget,
    PipesFunctionClient,
    PipesFunctionInvocation,
    refuse_beside_invoker,
)

if TYPE_CHECKING:
    import requests


class PipesAzureFunctionClient(PipesFunctionClient):
    """Invokes an HTTP-triggered Azure Function with the Pipes bootstrap and reads its messages.

    The request is sent once; a response cut by Azure's front end at 230 s does not fail the
    step: the client reads on until the function's "closed" message, up to `function_timeout`.
    The context travels in the event up to the platform's 100 MB, else through the reader's
    container. Keys, tokens and resends:
    [How it behaves](behaviour.md#azure-functions-pipesazurefunctionclient).

    ```python
    azure_pipes = PipesAzureFunctionClient(
        message_reader=PipesAzureBlobStorageMessageReader(container="dagster-pipes"),
    )
    invocation = azure_pipes.run(context=context, function_url=URL, event={"rows": 9})
    return invocation.get_materialize_result()
    ```

    Args:
        message_reader: Where the function's messages are read from, usually a
            `PipesAzureBlobStorageMessageReader`.
        context_injector: How the function gets its context (default: a
            `PipesEventContextInjector`, falling back to the reader's container).
        session: A `requests.Session` to send with (proxies, adapters, headers); without
            `function_key` or `scope` it is trusted to authenticate its requests, and the
            environment's key is not added. Default: a session of the invoker's own.
        function_key: The function key, sent as `x-functions-key` (default: the
            `AZURE_FUNCTIONS_KEY` environment variable; none for an anonymous function).
        scope: Ask azure-identity's `DefaultAzureCredential` for an Entra ID token of this scope
            instead of a key, for an app behind App Service authentication
            (`api://<client id>/.default`). Default: none.
        function_timeout: Seconds to read on after the front end cut the response, waiting for
            the function's "closed" message (default 30 minutes; set it to your app's
            `functionTimeout`).
        invoker: An `AzureFunctionInvoker` to use in place of the default one (its timeouts,
            credential and session); not with `session`, `function_key` or `scope`.
        application_insights: The resource id of the function app's Application Insights
            (`/subscriptions/S/resourceGroups/G/providers/microsoft.insights/components/N`), for
            a link to each invocation's logs beside its id. Default: none (no link).
        forward_termination: Terminating the run asks the function to stop, with a cancel marker
            in its session (default True).

    Raises:
        ValueError: A combination that cannot work: `function_key` with `scope`, or `invoker`
            with any of `session`, `function_key` and `scope`, or a `session` that sets the
            header `function_key` or `scope` would send.
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
        application_insights: str | None = None,
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
        self.application_insights = application_insights

    def run(  # type: ignore[override]
        self,
        *,
        context: Context,
        function_url: str,
        event: Mapping[str, Any] | None = None,
        extras: Mapping[str, Any] | None = None,
    ) -> PipesFunctionInvocation:
        """Invoke an Azure Function once and return when every message it sent has been read.

        The Dagster run id, asset keys and retry number go in `X-Dagster-*` headers, which
        `azure_function` logs.

        Args:
            context: The asset's or op's execution context.
            function_url: The function's URL (`https://APP.azurewebsites.net/api/ROUTE`); a key
                in it (`?code=`) is sent as a header, and the URL is shown without it.
            event: The JSON body the function gets as its payload (default: empty).
            extras: Extra values for the function's `pipes.extras` (default: none).

        Returns:
            The completed invocation: its Pipes results, and the function's own response as
            `.response` (None when the front end cut the response).

        Raises:
            ValueError: `function_url` is not an http(s) URL.
            DagsterPipesExecutionError: The function failed (with its own exception where it
                sent one), never opened Pipes, did not close it within `function_timeout` after
                a cut response, or could not be invoked (throttled: caused by a
                `ThrottledError`, for a `RetryPolicy`).
        """
        return self._run_function(
            context=context,
            event=event,
            target=self._target(context, function_url=function_url, extras=extras),
        )

    def _target(  # type: ignore[override]
        self, context: Context, *, function_url: str, extras: Mapping[str, Any] | None = None
    ) -> FunctionTarget:
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

        return FunctionTarget(
            function=shown,
            invoke=invoke,
            request_limit=AZURE_FUNCTIONS_REQUEST_LIMIT,
            wait_timeout=self.function_timeout,
            extras=extras,
            metadata=self._metadata,
            reserve_connections=self._invoker.reserve_connections,
        )

    def _metadata(self, invocation: FunctionInvocation) -> dict[str, Any]:
        """The invocation id, and a link to its logs in Application Insights where the client
        was told which resource that is."""
        if not invocation.request_id:
            return {}
        metadata: dict[str, Any] = {"azure_functions_invocation_id": invocation.request_id}
        if self.application_insights:
            link = application_insights_url(self.application_insights, invocation.request_id)
            metadata["azure_application_insights"] = MetadataValue.url(link)
        return metadata


def application_insights_url(resource_id: str, invocation_id: str) -> str:
    """The Azure portal's Logs view of an Application Insights resource, running a query for
    what one function invocation logged (its request, traces and exceptions).

    Args:
        resource_id: The Application Insights resource id.
        invocation_id: The function invocation's id.
    """
    query = (
        "union requests, traces, exceptions\n"
        f'| where tostring(customDimensions.InvocationId) == "{invocation_id}"\n'
        "| order by timestamp asc"
    )
    packed = base64.b64encode(gzip.compress(query.encode(), mtime=0)).decode()
    return (
        "https://portal.azure.com/#blade/Microsoft_OperationsManagementSuite_Workspace"
        f"/Logs.ReactView/resourceId/{quote(resource_id, safe='')}"
        f"/source/LogsBlade.AnalyticsShareLinkToQuery/q/{quote(packed, safe='')}"
    )
