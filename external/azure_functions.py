"""`azure_function`: the entrypoint decorator for HTTP-triggered Azure Functions (v2 model)."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any

from dagster_pipes_cloud.adapters._imports import require
from dagster_pipes_cloud.adapters.wire import INVOCATION_ID_HEADER, Attribution
from dagster_pipes_cloud.external._http import (
    CONFLICT,
    JSON_CONTENT_TYPE,
    attribution_from_request,
    error_body,
    event_from_body,
    refusal_body,
)
from dagster_pipes_cloud.external.azure_blob import (
    PipesAzureBlobStorageContextLoader,
    PipesAzureBlobStorageMessageWriter,
)
from dagster_pipes_cloud.external.entrypoint import Channels, Entrypoint, EntrypointDecorator
from dagster_pipes_cloud.external.errors import PipesSessionClaimedError

if TYPE_CHECKING:
    import azure.functions as func

AzureHttpFunction = Callable[["func.HttpRequest"], "func.HttpResponse"]
"""What the Azure Python worker calls for an HTTP trigger."""
TRIGGER_ARG_NAME = "req"
"""The parameter name the worker binds the request to: `app.route`'s default
`trigger_arg_name`."""
CONTEXT_ARG_NAME = "context"
"""The parameter name the worker passes the invocation context to (its `invocation_id`)."""


def _functions() -> ModuleType:
    """`azure.functions`, imported when a function is decorated or called, never before."""
    return require("azure.functions", "azure")


def _channels(client: Any | None) -> Channels:
    return PipesAzureBlobStorageContextLoader(client), PipesAzureBlobStorageMessageWriter(client)


def _event(req: func.HttpRequest, context: func.Context | None = None) -> Any:
    return event_from_body(req.get_body().decode("utf-8", errors="replace"))


def _attribution(req: func.HttpRequest, context: func.Context | None = None) -> Attribution:
    return attribution_from_request(req.headers)


def _identify(
    answer: func.HttpResponse, req: func.HttpRequest, context: func.Context | None = None
) -> func.HttpResponse:
    """The answer with the invocation's id as a header, for the caller: Azure's front end does
    not say it, and it is what the function app's Application Insights records."""
    if context is not None and context.invocation_id:
        answer.headers[INVOCATION_ID_HEADER] = context.invocation_id
    return answer


def _answer(result: Any) -> func.HttpResponse:
    if isinstance(result, _functions().HttpResponse):
        given: func.HttpResponse = result
        return given
    return _json_response(json.dumps(result), 200)


def _answer_error(exc: Exception) -> func.HttpResponse:
    return _json_response(error_body(exc), 500)


def _answer_refused(exc: PipesSessionClaimedError) -> func.HttpResponse:
    return _json_response(refusal_body(exc), CONFLICT)


def _json_response(body: str, status: int) -> func.HttpResponse:
    response: func.HttpResponse = _functions().HttpResponse(
        body, status_code=status, mimetype=JSON_CONTENT_TYPE
    )
    return response


def _signature() -> inspect.Signature:
    """`(req: HttpRequest, context: Context) -> HttpResponse`: the worker matches these names
    and types against the function's bindings (and passes the invocation context to a
    `context` parameter), so it must not see the user's `(pipes, payload)`."""
    functions = _functions()
    keyword = inspect.Parameter.POSITIONAL_OR_KEYWORD
    request = inspect.Parameter(TRIGGER_ARG_NAME, keyword, annotation=functions.HttpRequest)
    context = inspect.Parameter(CONTEXT_ARG_NAME, keyword, annotation=functions.Context)
    return inspect.Signature([request, context], return_annotation=functions.HttpResponse)


azure_function: EntrypointDecorator[AzureHttpFunction] = EntrypointDecorator(
    Entrypoint(
        channels=_channels,
        event=_event,
        answer=_answer,
        answer_error=_answer_error,
        answer_refused=_answer_refused,
        signature=_signature,
        attribution=_attribution,
        identify=_identify,
    ),
    "azure_function",
    """Turn `fn(pipes, payload) -> result` into an HTTP-triggered Azure Function (v2 model).

    The wrapper shows the worker the signature
    `(req: func.HttpRequest, context: func.Context) -> func.HttpResponse`, so it goes under the
    app's route decorator with `app.route`'s default `trigger_arg_name` ("req"); the answer
    carries the invocation id (`X-Azure-Functions-InvocationId`).
    The event is the request's JSON body; the result is answered as JSON with status 200, and an
    exception is reported to Dagster with its trace and answered with 500. More:
    [How it behaves](behaviour.md#the-entrypoints).

        app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

        @app.route(route="acc", methods=["POST"])
        @azure_function
        def acc(pipes, payload):
            pipes.log.info("hello")
            return {"ok": True}

    Args:
        fn: The function to wrap, positional only: `pipes` is the invocation's
            `PipesCloudContext`, `payload` the request's body without Dagster's bootstrap keys,
            and its result is answered as JSON (a `func.HttpResponse` as it is). Left out, the
            call takes the other arguments and returns the decorator
            (`@azure_function(client=...)`).
        client: The `azure.storage.blob.BlobServiceClient` the default loader and writer use
            (default: one from `AZURE_STORAGE_CONNECTION_STRING`, else from the account URL with
            `DefaultAzureCredential`, made on first use).
        context_loader: Replaces the default `PipesAzureBlobStorageContextLoader` (default: one
            over `client`).
        message_writer: Replaces the default `PipesAzureBlobStorageMessageWriter` (default: one
            over `client`).

    Returns:
        The function for the worker, or, without `fn`, a decorator that makes one.
    """,
)
