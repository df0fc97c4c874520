"""What a failed Lambda step says: the remote error once, nothing misleading, readable logs."""

from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config
from support.aws_testing import local_client, materialize_lambda
from support.dagster_testing import failure_text, logs_of

from dagster_pipes_cloud.local import LocalLambdaHost
from dagster_pipes_cloud.orchestration import PipesLambdaClient, PipesS3MessageReader


def pipes_client(aws_stack: Any, lambda_client: Any = None) -> PipesLambdaClient:
    return PipesLambdaClient(
        client=lambda_client or aws_stack.lambda_client,
        message_reader=PipesS3MessageReader(bucket=aws_stack.bucket, client=aws_stack.s3_client),
    )


def test_a_raised_error_is_shown_once_with_its_trace_and_a_readable_log(aws_stack: Any) -> None:
    result = materialize_lambda(pipes_client(aws_stack), "failing")
    assert not result.success
    failure = failure_text(result)
    assert failure.count("ValueError: the function's own problem") == 1, failure
    assert failure.count('raise ValueError("the function\'s own problem")') == 1, failure
    assert "End of the function's log:" in failure
    assert "\r" not in failure and "\u00a0" not in failure
    assert "did not receive" not in logs_of(result)


def test_an_event_failure_names_its_type_once(aws_stack: Any) -> None:
    result = materialize_lambda(pipes_client(aws_stack), "failing", invocation_type="Event")
    assert not result.success
    failure = failure_text(result)
    assert "ValueError: the function's own problem" in failure
    assert "ValueError: ValueError" not in failure
    assert "sent before the error" in logs_of(result)


def test_an_invoke_that_never_reached_the_function_gives_no_pipes_hint(aws_stack: Any) -> None:
    result = materialize_lambda(pipes_client(aws_stack), "no-such-function")
    assert not result.success
    assert "no-such-function" in failure_text(result)
    logs = logs_of(result)
    assert "did not receive any messages" not in logs
    assert "decorator" not in failure_text(result)


@pytest.mark.parametrize(
    ("handler", "timeout"),
    [
        # long enough to open Pipes on a loaded machine: the function has, when it times out
        ("slow", 5),
        # its writer holds every message: nothing has arrived when it times out
        ("slow_and_unsent", 1),
    ],
)
def test_a_timed_out_function_is_said_to_have_timed_out(
    s3_emulator: Any, aws_stack: Any, handler: str, timeout: int
) -> None:
    functions = {handler: f"e2e.aws_handlers:{handler}"}
    with LocalLambdaHost(functions, env=s3_emulator.env, timeout=timeout) as host:
        lambda_client = local_client(
            "lambda", host.endpoint_url, Config(retries={"total_max_attempts": 1})
        )
        result = materialize_lambda(
            pipes_client(aws_stack, lambda_client),
            handler,
            event={"seconds": 30, "runs": "/dev/null"},
        )
    assert not result.success
    failure = failure_text(result)
    assert f"Task timed out after {timeout}.00 seconds" in failure
    assert "It timed out: the platform ended it before it returned" in failure
    assert "before it opened Dagster Pipes" not in failure
    assert "open_dagster_pipes" not in logs_of(result)


def test_your_own_lambda_client_runs_a_slow_function_once(aws_stack: Any, tmp_path: Path) -> None:
    impatient = local_client(
        "lambda", aws_stack.env["AWS_ENDPOINT_URL_LAMBDA"], Config(read_timeout=1)
    )
    runs = tmp_path / "runs"
    result = materialize_lambda(
        pipes_client(aws_stack, impatient), "slow", event={"seconds": 2.5, "runs": str(runs)}
    )
    assert result.success, failure_text(result)
    assert result.responses == ["slept"]
    assert runs.read_text() == "run\n", "the invoke went out once"
