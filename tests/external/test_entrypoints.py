"""The entrypoint decorators called as their platforms call them, without Dagster."""

import inspect
import json
import typing
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import azure.functions as func
import flask
import pytest
from dagster_pipes import PipesContext, encode_param
from support.inprocess_platform import local_store

from dagster_pipes_cloud.examples.aws.function.handler import handler as example_lambda_handler
from dagster_pipes_cloud.examples.azure.function.function_app import app as example_azure_app
from dagster_pipes_cloud.examples.gcp.function.main import main as example_cloud_function
from dagster_pipes_cloud.external import azure_function, cloud_function, lambda_handler
from dagster_pipes_cloud.external.loader import PipesBlobStoreContextLoader
from dagster_pipes_cloud.external.writer import PipesChunkedMessageWriter
from dagster_pipes_cloud.local.azure_functions_host.indexing import index_app


def test_the_example_lambda_handler_runs_when_invoked_directly() -> None:
    assert example_lambda_handler({"rows": 4}, None) == {"total": 6}


def call_http(function: Any, body: bytes | str) -> tuple[int, Any]:
    """Call `function` with a real Flask request, as functions-framework does."""
    app = flask.Flask(__name__)
    with app.test_request_context("/", method="POST", data=body):
        response = app.make_response(function(flask.request))
    text = response.get_data(as_text=True)
    return response.status_code, json.loads(text)


def test_the_example_cloud_function_runs_when_called_directly() -> None:
    assert call_http(example_cloud_function, '{"rows": 4}') == (200, {"total": 6})


@cloud_function
def echo(pipes: PipesContext, payload: Any) -> Any:
    return {"payload": payload}


@pytest.mark.parametrize(
    ("body", "payload"),
    [("", {}), ('{"a": 1}', {"a": 1}), ("plain text", "plain text"), ("[1, 2]", [1, 2])],
)
def test_a_cloud_function_payload_is_the_body(body: str, payload: Any) -> None:
    assert call_http(echo, body) == (200, {"payload": payload})


@cloud_function
def raising(pipes: PipesContext, payload: Any) -> None:
    raise ValueError("boom-123")


def test_a_cloud_function_error_is_a_500_naming_it() -> None:
    status, body = call_http(raising, "{}")
    assert status == 500
    assert body == {"errorType": "ValueError", "errorMessage": "boom-123"}


@lambda_handler
def documented(pipes: PipesContext, payload: Any) -> None:
    """A handler with a docstring."""


def test_decorated_functions_keep_their_name_and_docstring() -> None:
    assert documented.__name__ == "documented"
    assert documented.__doc__ == "A handler with a docstring."
    assert lambda_handler.__name__ == "lambda_handler" and "Lambda" in (
        lambda_handler.__doc__ or ""
    )


def test_a_decorator_refuses_what_is_not_a_function() -> None:
    with pytest.raises(TypeError, match="cloud_function decorates a function"):
        cloud_function(42)  # type: ignore[call-overload]


def call_azure(function: Any, body: bytes) -> tuple[int, Any]:
    """Call `function` as the Azure Python worker does: the request bound by name."""
    request = func.HttpRequest("POST", "http://127.0.0.1/api/fn", body=body)
    response = function(req=request)
    return response.status_code, json.loads(response.get_body())


def test_the_example_azure_function_runs_when_called_directly() -> None:
    [function] = example_azure_app.get_functions()
    assert call_azure(function.get_user_function(), b'{"rows": 4}') == (200, {"total": 6})


@azure_function
def azure_echo(pipes: PipesContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Echoes its payload."""
    return {"payload": payload}


@azure_function
def azure_raising(pipes: PipesContext, payload: Any) -> None:
    raise ValueError("boom-123")


def test_an_azure_function_answers_json_and_its_errors_with_500() -> None:
    assert call_azure(azure_echo, b'{"a": 1}') == (200, {"payload": {"a": 1}})
    assert call_azure(azure_echo, b"") == (200, {"payload": {}})
    status, body = call_azure(azure_raising, b"{}")
    assert (status, body) == (500, {"errorType": "ValueError", "errorMessage": "boom-123"})


def test_an_azure_function_shows_the_worker_its_own_signature() -> None:
    """What the worker indexes: parameter names and annotations, not the user's."""
    signature = inspect.signature(azure_echo)
    assert list(signature.parameters) == ["req", "context"]
    assert signature.parameters["req"].annotation is func.HttpRequest
    assert signature.parameters["context"].annotation is func.Context
    assert signature.return_annotation is func.HttpResponse
    assert typing.get_type_hints(azure_echo) == {
        "req": func.HttpRequest,
        "context": func.Context,
        "return": func.HttpResponse,
    }
    assert azure_echo.__name__ == "azure_echo" and azure_echo.__doc__ == "Echoes its payload."


def test_an_annotated_azure_function_passes_the_workers_indexing() -> None:
    app = func.FunctionApp()
    app.route(route="echo", methods=["POST"])(azure_echo)
    [indexed] = index_app(app)
    assert indexed.name == "azure_echo" and list(indexed.parameters) == ["req"]
    assert indexed.requires_context, "the worker passes the invocation context"


def second_delivery_answers(
    decorator: Any, call: Any, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> tuple[Any, Any, list[str]]:
    """Deliver one Dagster event twice to `fn` decorated by `decorator` (over a local bucket),
    calling it as its platform does (`call(function, body)`); returns both answers and what the
    function recorded of its runs."""
    store = local_store(tmp_path)
    runs: list[str] = []

    def fn(pipes: PipesContext, payload: Any) -> str:
        runs.append(payload["tag"])
        return "ran"

    function = decorator(
        context_loader=PipesBlobStoreContextLoader(lambda bucket: store),
        message_writer=PipesChunkedMessageWriter(lambda bucket: store, interval=60),
    )(fn)
    body = json.dumps(
        {
            "DAGSTER_PIPES_CONTEXT": encode_param({"data": {**CONTEXT, "run_id": "run-1"}}),
            "DAGSTER_PIPES_MESSAGES": encode_param({"bucket": "bucket", "key_prefix": "s"}),
            "tag": "delivered",
        }
    )
    first = call(function, body.encode())
    capfd.readouterr()
    second = call(function, body.encode())
    assert "[dagster-pipes] not run: the Pipes session" in capfd.readouterr().err
    return first, second, runs


CONTEXT = {
    key: None
    for key in (
        "asset_keys",
        "code_version_by_asset_key",
        "provenance_by_asset_key",
        "partition_key",
        "partition_key_range",
        "partition_time_window",
        "job_name",
    )
} | {"retry_number": 0, "extras": {}}


def call_lambda(function: Any, body: bytes) -> Any:
    return function(json.loads(body), None)


REFUSED = {"errorType": "PipesSessionClaimedError", "errorMessage": ANY}
PLATFORMS = {
    "lambda": (lambda_handler, call_lambda, "ran", REFUSED),
    "cloud_function": (cloud_function, call_http, (200, "ran"), (409, REFUSED)),
    "azure_function": (azure_function, call_azure, (200, "ran"), (409, REFUSED)),
}


@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_a_second_delivery_is_answered_without_running_the_function(
    platform: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Lambda returns the refusal (raising would have its asynchronous queue retry it); the
    HTTP platforms answer 409, which proxies do not retry."""
    decorator, call, ran, refused = PLATFORMS[platform]
    first, second, runs = second_delivery_answers(decorator, call, tmp_path, capfd)
    assert runs == ["delivered"]
    assert (first, second) == (ran, refused)
    message = second["errorMessage"] if platform == "lambda" else second[1]["errorMessage"]
    assert "/bucket/s was already claimed" in message
