"""`cloud_function`: the entrypoint decorator for HTTP Google Cloud Functions."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from dagster_pipes_cloud.adapters.wire import Attribution
from dagster_pipes_cloud.external._http import (
    CONFLICT,
    JSON_CONTENT_TYPE,
    attribution_from_request,
    error_body,
    event_from_body,
    refusal_body,
)
from dagster_pipes_cloud.external.entrypoint import Channels, Entrypoint, EntrypointDecorator
from dagster_pipes_cloud.external.errors import PipesSessionClaimedError
from dagster_pipes_cloud.external.gcs import PipesGCSContextLoader, PipesGCSMessageWriter

HttpFunction = Callable[[Any], Any]
"""`(request: flask.Request) -> response`, what functions-framework calls."""
_JSON = {"Content-Type": JSON_CONTENT_TYPE}


def _gcs_channels(client: Any | None) -> Channels:
    return PipesGCSContextLoader(client), PipesGCSMessageWriter(client)


def _event(request: Any) -> Any:
    return event_from_body(request.get_data(as_text=True))


def _attribution(request: Any) -> Attribution:
    return attribution_from_request(request.headers)


def _answer(result: Any) -> tuple[str, int, dict[str, str]]:
    return json.dumps(result), 200, _JSON


def _answer_error(exc: Exception) -> tuple[str, int, dict[str, str]]:
    return error_body(exc), 500, _JSON


def _answer_refused(exc: PipesSessionClaimedError) -> tuple[str, int, dict[str, str]]:
    return refusal_body(exc), CONFLICT, _JSON


cloud_function: EntrypointDecorator[HttpFunction] = EntrypointDecorator(
    Entrypoint(
        channels=_gcs_channels,
        event=_event,
        answer=_answer,
        answer_error=_answer_error,
        answer_refused=_answer_refused,
        attribution=_attribution,
    ),
    "cloud_function",
    """Turn `fn(pipes, payload) -> result` into an HTTP Cloud Function `(request) -> response`.

    The event is the request's JSON body (`{}` for an empty body, the text for one that is not
    JSON); `payload` is that body without Dagster's bootstrap keys. The result is answered as JSON
    with status 200. An exception is reported to Dagster in the "closed" message (type, message and
    trace), logged, and answered with status 500 and `{"errorType", "errorMessage"}`. A second
    delivery of a request whose session an earlier one claimed is answered with 409 and the same
    shape, without running `fn`. Each invocation gets its own `PipesContext`, so a warm instance
    serves request after request, and two requests served at once keep their messages and printed
    output apart. The run id, asset keys and retry number (`X-Dagster-*` headers from
    `PipesCloudFunctionClient`) go on one line of the function's log, `[dagster-pipes] Dagster run
    <id> ...`. Invoked without a bootstrap payload, `fn` still runs. `client` is the
    `google.cloud.storage.Client` to use (default: one from the environment, on first use). Stacks
    under functions-framework's own decorator:

        @functions_framework.http
        @cloud_function
        def main(pipes, payload):
            pipes.log.info("hello")
            return {"ok": True}
    """,
)
