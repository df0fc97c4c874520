"""The entrypoint decorators called as their platforms call them, without Dagster."""

import json
from typing import Any

import flask
import pytest
from dagster_pipes import PipesContext

from dagster_pipes_cloud.examples.aws.handler import handler as example_lambda_handler
from dagster_pipes_cloud.examples.gcp.main import main as example_cloud_function
from dagster_pipes_cloud.external import cloud_function, lambda_handler


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
