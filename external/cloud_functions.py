"""`cloud_function`: the entrypoint decorator for HTTP Google Cloud Functions."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from dagster_pipes_cloud.adapters.wire import EXECUTION_ID_HEADER, Attribution
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


def _identify(answer: tuple[str, int, dict[str, str]], request: Any) -> Any:
    """The answer with the request's execution id as a header of its own, for the caller."""
    execution_id = request.headers.get(EXECUTION_ID_HEADER)
    if not execution_id:
        return answer
    body, status, headers = answer
    return body, status, {**headers, EXECUTION_ID_HEADER: execution_id}


cloud_function: EntrypointDecorator[HttpFunction] = EntrypointDecorator(
    Entrypoint(
        channels=_gcs_channels,
        event=_event,
        answer=_answer,
        answer_error=_answer_error,
        answer_refused=_answer_refused,
        attribution=_attribution,
        identify=_identify,
    ),
    "cloud_function",
    """Turn `fn(pipes, payload) -> result` into an HTTP Cloud Function `(request) -> response`.

    The event is the request's JSON body; the result is answered as JSON with status 200, and an
    exception is reported to Dagster with its trace and answered with 500. Each invocation gets its
    own `PipesContext`, so requests served at once keep their messages apart. Stacks under
    functions-framework's own decorator. More: [How it behaves](behaviour.md#the-entrypoints).

        @functions_framework.http
        @cloud_function
        def main(pipes, payload):
            pipes.log.info("hello")
            return {"ok": True}

    Args:
        fn: The function to wrap, positional only: `pipes` is the invocation's
            `PipesCloudContext`, `payload` the request's body without Dagster's bootstrap keys,
            and its result is answered as JSON. Left out, the call takes the other arguments and
            returns the decorator (`@cloud_function(client=...)`).
        client: The `google.cloud.storage.Client` the default loader and writer use (default:
            one from the environment, made on first use).
        context_loader: Replaces the default `PipesGCSContextLoader` (default: one over
            `client`).
        message_writer: Replaces the default `PipesGCSMessageWriter` (default: one over
            `client`).

    Returns:
        The HTTP function, or, without `fn`, a decorator that makes one.
    """,
)
