"""`PipesCloudFunctionClient`: run an HTTP Google Cloud Function as a Dagster Pipes process."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from dagster import MetadataValue, PipesContextInjector, PipesMessageReader
from dagster._core.errors import DagsterPipesExecutionError

from dagster_pipes_cloud.adapters import FunctionInvocation, PipesCloudError
from dagster_pipes_cloud.adapters.cloud_functions import (
    CLOUD_FUNCTIONS_MAX_SECONDS,
    CLOUD_FUNCTIONS_REQUEST_LIMIT,
    CloudFunctionInvoker,
)
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


class PipesCloudFunctionClient(PipesFunctionClient):
    """Invokes an HTTP Cloud Function with the Pipes bootstrap in its event and reads its messages.

    Each request carries an ID token for the function's URL (none for a loopback URL, a local
    host) and is sent once, waiting out a 2nd gen function's 60 minutes; the context travels in
    the event up to the platform's 32 MB, else through the reader's bucket. Tokens, sessions and
    resends: [How it behaves](behaviour.md#cloud-functions-pipescloudfunctionclient).

    ```python
    gcf_pipes = PipesCloudFunctionClient(
        message_reader=PipesGCSMessageReader(bucket="my-pipes-bucket"),
    )
    invocation = gcf_pipes.run(context=context, function_url=URL, event={"rows": 9})
    return invocation.get_materialize_result()
    ```

    Args:
        message_reader: Where the function's messages are read from, usually a
            `PipesGCSMessageReader`.
        context_injector: How the function gets its context (default: a
            `PipesEventContextInjector`, falling back to the reader's bucket).
        session: A `requests.Session` to send with (proxies, adapters, tests); without
            `id_token_source` it is trusted to authenticate its requests, and no token is
            fetched. Default: a session of the invoker's own.
        id_token_source: A callable from the audience (the function's URL) to an ID token,
            asked for each request (default: google-auth's application default credentials).
        invoker: A `CloudFunctionInvoker` to use in place of the default one (its timeouts,
            token source, session and functions client); not with `session` or
            `id_token_source`.
        forward_termination: Terminating the run asks the function to stop, with a cancel marker
            in its session (default True).

    Raises:
        ValueError: `invoker` is given with `session` or `id_token_source`, or a `session`
            that sets `Authorization` is given with `id_token_source`.
    """

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
        """Invoke a Cloud Function once and return when every message it sent has been read.

        The Dagster run id, asset keys and retry number go in `X-Dagster-*` headers, which
        `cloud_function` logs.

        Args:
            context: The asset's or op's execution context.
            function_url: The function's URL (`https://NAME-HASH-REGION.a.run.app`).
            function_name: The function's full resource name
                (`projects/P/locations/L/functions/F`), resolved once to its URL; give it or
                `function_url`, not both.
            event: The JSON body the function gets as its payload (default: empty).
            extras: Extra values for the function's `pipes.extras` (default: none).

        Returns:
            The completed invocation: its Pipes results, and the function's own response as
            `.response`.

        Raises:
            ValueError: Neither or both of `function_url` and `function_name` are given.
            DagsterPipesExecutionError: The function failed (with its own exception where it
                sent one), never opened Pipes, or could not be invoked (throttled: caused by a
                `ThrottledError`, for a `RetryPolicy`).
        """
        return self._run_function(
            context=context,
            event=event,
            target=self._target(
                context, function_url=function_url, function_name=function_name, extras=extras
            ),
        )

    def _target(  # type: ignore[override]
        self,
        context: Context,
        *,
        function_url: str | None = None,
        function_name: str | None = None,
        extras: Mapping[str, Any] | None = None,
    ) -> FunctionTarget:
        try:
            url = self._invoker.resolve_url(function_url, function_name)
        except PipesCloudError as exc:
            raise DagsterPipesExecutionError(str(exc)) from exc
        headers = attribution_headers(run_attribution(context))
        return FunctionTarget(
            function=url,
            invoke=lambda payload: self._invoker.invoke(url, payload, headers=headers),
            request_limit=CLOUD_FUNCTIONS_REQUEST_LIMIT,
            wait_timeout=CLOUD_FUNCTIONS_MAX_SECONDS,  # for a delivery answered by another
            extras=extras,
            metadata=lambda invocation: _metadata(url, function_name, invocation),
            reserve_connections=self._invoker.reserve_connections,
        )


def _metadata(
    url: str, function_name: str | None, invocation: FunctionInvocation
) -> dict[str, Any]:
    """The execution id, and a link to its log lines in Cloud Logging where the project is
    known."""
    if not invocation.request_id:
        return {}
    metadata: dict[str, Any] = {"gcp_execution_id": invocation.request_id}
    project = project_of(url, function_name)
    if project is not None:
        link = cloud_logging_url(project, invocation.request_id)
        metadata["gcp_cloud_logging"] = MetadataValue.url(link)
    return metadata


_RESOURCE_NAME = re.compile(r"^projects/([^/]+)/locations/[^/]+/functions/[^/]+$")
_FUNCTIONS_HOST = re.compile(r"^[a-z]+-[a-z]+\d+-(.+)\.cloudfunctions\.net$")


def project_of(url: str, function_name: str | None = None) -> str | None:
    """The function's project, from its full resource name or its `cloudfunctions.net` URL
    (`https://REGION-PROJECT.cloudfunctions.net/NAME`); None where neither tells (a `run.app`
    URL, a local host)."""
    match = _RESOURCE_NAME.match(function_name or "")
    if match:
        return match.group(1)
    host = urlsplit(url).hostname or ""
    match = _FUNCTIONS_HOST.match(host)
    return match.group(1) if match else None


def cloud_logging_url(project: str, execution_id: str) -> str:
    """Cloud Logging's Logs Explorer in `project`, showing the log lines of one execution."""
    query = quote(f'labels.execution_id="{execution_id}"', safe="")
    return f"https://console.cloud.google.com/logs/query;query={query}?project={quote(project)}"
