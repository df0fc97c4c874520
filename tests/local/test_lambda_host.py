"""LocalLambdaHost driven by a real boto3 Lambda client, with both worker kinds.

The handlers live in `lambda_handlers.py` next to this file; the hosts put this folder on the
workers' PYTHONPATH (through `env`), so a worker imports them as `lambda_handlers`.
"""

from __future__ import annotations

import base64
import http.client
import importlib.util
import json
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.config import Config
from local.cli_imports import hide_module
from local.process_endings import ENDINGS

from dagster_pipes_cloud.local import LocalLambdaHost, S3Emulator
from dagster_pipes_cloud.local.lambda_host import WorkerKind

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_lambda.type_defs import InvocationResponseTypeDef

HANDLERS_DIR = str(Path(__file__).parent)
FUNCTIONS = {
    "echo": "lambda_handlers:echo",
    "dotted-echo": "lambda_handlers.echo",
    "warm": "lambda_handlers:warm",
    "fail": "lambda_handlers:fail",
    "shout": "lambda_handlers:shout",
    "client-context": "lambda_handlers:client_context",
    "put-object": "lambda_handlers:put_object",
    "exit": "lambda_handlers:exit_or_pid",
    "broken-import": "lambda_broken_handler:handler",
    "missing-module": "module_nowhere_to_be_found:handler",
    "unserializable": "lambda_handlers:unserializable",
    "chatty": "lambda_handlers:chatty",
}
HAS_AWSLAMBDARIC = importlib.util.find_spec("awslambdaric") is not None
WORKERS = [
    pytest.param(
        "awslambdaric",
        marks=pytest.mark.skipif(not HAS_AWSLAMBDARIC, reason="awslambdaric is Linux-only"),
    ),
    "builtin",
]


def lambda_client(host: LocalLambdaHost) -> LambdaClient:
    return boto3.client(
        "lambda",
        endpoint_url=host.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1}, read_timeout=60),
    )


def invoke(client: LambdaClient, name: str, event: Any = None, **kwargs: Any) -> Any:
    """Invoke synchronously and return the decoded payload (asserting no function error)."""
    response = client.invoke(FunctionName=name, Payload=json.dumps(event or {}), **kwargs)
    assert "FunctionError" not in response, response["Payload"].read()
    return json.loads(response["Payload"].read())


def tail(response: InvocationResponseTypeDef) -> str:
    return base64.b64decode(response["LogResult"]).decode()


@pytest.fixture(scope="module", params=WORKERS)
def host(request: pytest.FixtureRequest, s3_emulator: S3Emulator) -> Iterator[LocalLambdaHost]:
    worker: WorkerKind = request.param
    env = {**s3_emulator.env, "PYTHONPATH": HANDLERS_DIR}
    with LocalLambdaHost(FUNCTIONS, env=env, worker=worker) as started:
        yield started


@pytest.fixture
def client(host: LocalLambdaHost) -> LambdaClient:
    return lambda_client(host)


def test_sync_invoke_returns_the_result_and_lambda_context(client: LambdaClient) -> None:
    response = client.invoke(FunctionName="echo", Payload=b'{"answer": 42}')
    assert response["StatusCode"] == 200
    assert response["ExecutedVersion"] == "$LATEST"
    assert "FunctionError" not in response
    result = json.loads(response["Payload"].read())
    assert result["event"] == {"answer": 42}
    assert result["function_name"] == "echo"
    assert result["invoked_function_arn"] == "arn:aws:lambda:us-east-1:123456789012:function:echo"
    assert result["aws_request_id"] == response["ResponseMetadata"]["RequestId"]
    assert result["memory_limit_in_mb"] == "128"
    assert result["log_group_name"] == "/aws/lambda/echo"
    assert result["remaining_ms"] > 0


def test_invoke_without_payload_gets_an_empty_event(client: LambdaClient) -> None:
    response = client.invoke(FunctionName="echo")
    assert json.loads(response["Payload"].read())["event"] == {}


def test_arns_and_qualifiers_reach_the_same_function(client: LambdaClient) -> None:
    arn = "arn:aws:lambda:us-east-1:123456789012:function:echo"
    assert invoke(client, arn)["function_name"] == "echo"
    assert invoke(client, f"{arn}:prod")["invoked_function_arn"] == f"{arn}:prod"
    assert invoke(client, "123456789012:function:echo")["function_name"] == "echo"
    assert invoke(client, "echo", Qualifier="$LATEST")["invoked_function_arn"] == f"{arn}:$LATEST"


def test_warm_worker_is_reused(client: LambdaClient) -> None:
    results = [invoke(client, "warm") for _ in range(6)]
    assert len({result["pid"] for result in results}) == 1
    counts = [result["count"] for result in results]
    assert counts == list(range(counts[0], counts[0] + 6))


def test_event_invoke_answers_202_and_runs_in_the_background(
    client: LambdaClient, s3_emulator: S3Emulator
) -> None:
    s3 = boto3.client(
        "s3",
        endpoint_url=s3_emulator.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    bucket = f"event-{secrets.token_hex(4)}"
    s3.create_bucket(Bucket=bucket)
    event = {"bucket": bucket, "key": "out.txt", "body": "written by an Event invocation"}

    response = client.invoke(
        FunctionName="put-object", InvocationType="Event", Payload=json.dumps(event)
    )

    assert response["StatusCode"] == 202
    assert response["Payload"].read() == b""
    deadline = time.monotonic() + 30
    while not s3.list_objects_v2(Bucket=bucket).get("Contents") and time.monotonic() < deadline:
        time.sleep(0.05)
    body = s3.get_object(Bucket=bucket, Key="out.txt")["Body"].read()
    assert body == b"written by an Event invocation"


def test_dry_run_answers_204(client: LambdaClient) -> None:
    response = client.invoke(FunctionName="echo", InvocationType="DryRun")
    assert response["StatusCode"] == 204


def test_log_tail_has_the_printed_lines(client: LambdaClient) -> None:
    response = client.invoke(FunctionName="shout", Payload=b'{"word": "hi"}', LogType="Tail")
    log = tail(response)
    request_id = response["ResponseMetadata"]["RequestId"]
    assert "hello from shout: hi" in log
    assert "a line on stderr" in log
    assert f"START RequestId: {request_id} Version: $LATEST" in log
    assert f"END RequestId: {request_id}" in log
    assert f"REPORT RequestId: {request_id}\tDuration: " in log
    report = log[log.index("REPORT") :]
    assert "\tBilled Duration: " in report and "\tMemory Size: 128 MB\tMax Memory Used: " in report
    assert log.index("START") < log.index("hello from shout") < log.index("END")


def test_log_tail_is_the_last_4_kb(client: LambdaClient) -> None:
    response = client.invoke(FunctionName="chatty", Payload=b'{"lines": 200}', LogType="Tail")
    log = tail(response)
    assert len(log.encode()) <= 4096
    assert "line 00199 " in log
    assert "line 00000 " not in log
    assert log.rstrip("\n").split("\n")[-1].startswith("REPORT RequestId: ")


def test_log_tail_only_when_asked(client: LambdaClient) -> None:
    response = client.invoke(FunctionName="shout", Payload=b'{"word": "hi"}')
    assert "LogResult" not in response


def test_raised_exception_is_an_unhandled_function_error(client: LambdaClient) -> None:
    response = client.invoke(
        FunctionName="fail", Payload=b'{"message": "bad input"}', LogType="Tail"
    )
    assert response["StatusCode"] == 200
    assert response["FunctionError"] == "Unhandled"
    error = json.loads(response["Payload"].read())
    assert error["errorType"] == "ValueError"
    assert error["errorMessage"] == "bad input"
    assert error["requestId"] == response["ResponseMetadata"]["RequestId"]
    assert any("lambda_handlers.py" in frame for frame in error["stackTrace"])
    assert "ValueError: bad input" in tail(response)
    assert invoke(client, "echo", {"after": "error"})["event"] == {"after": "error"}


def test_unserializable_result_is_a_marshal_error(client: LambdaClient) -> None:
    response = client.invoke(FunctionName="unserializable")
    assert response["FunctionError"] == "Unhandled"
    error = json.loads(response["Payload"].read())
    assert error["errorType"] == "Runtime.MarshalError"
    assert error["errorMessage"].startswith("Unable to marshal response:")


def test_client_context_custom_reaches_the_function(client: LambdaClient) -> None:
    context = {"custom": {"run_id": "abc"}, "env": {"locale": "en"}}
    encoded = base64.b64encode(json.dumps(context).encode()).decode()
    assert invoke(client, "client-context", ClientContext=encoded) == context
    assert invoke(client, "client-context") is None


def test_invalid_client_context_is_rejected(client: LambdaClient) -> None:
    with pytest.raises(client.exceptions.InvalidRequestContentException):
        client.invoke(FunctionName="echo", ClientContext="not base64 json")


def test_invalid_json_payload_is_rejected(client: LambdaClient) -> None:
    with pytest.raises(client.exceptions.InvalidRequestContentException, match="parse"):
        client.invoke(FunctionName="echo", Payload=b"{not json")


def test_payload_over_the_limit_is_rejected(client: LambdaClient) -> None:
    too_big = json.dumps({"data": "x" * (6 * 1024 * 1024)})
    with pytest.raises(client.exceptions.RequestTooLargeException):
        client.invoke(FunctionName="echo", Payload=too_big)


def test_unknown_function_is_resource_not_found(client: LambdaClient) -> None:
    with pytest.raises(client.exceptions.ResourceNotFoundException) as raised:
        client.invoke(FunctionName="no-such-function")
    assert raised.value.response["Error"]["Message"] == (
        "Function not found: arn:aws:lambda:us-east-1:123456789012:function:no-such-function"
    )


def test_dead_worker_is_an_exit_error_and_is_replaced(client: LambdaClient) -> None:
    first_pid = invoke(client, "exit")
    response = client.invoke(FunctionName="exit", Payload=b'{"exit": 3}')
    assert response["FunctionError"] == "Unhandled"
    error = json.loads(response["Payload"].read())
    assert error["errorType"] == "Runtime.ExitError"
    assert "Runtime exited with error: exit status 3" in error["errorMessage"]
    second_pid = invoke(client, "exit")
    assert second_pid != first_pid
    assert invoke(client, "exit") == second_pid


@pytest.mark.parametrize("ending", ENDINGS)
def test_a_worker_that_ends_fails_its_invocation_only(client: LambdaClient, ending: str) -> None:
    before = invoke(client, "exit")
    payload = json.dumps({"ending": ending}).encode()
    response = client.invoke(FunctionName="exit", Payload=payload)
    assert response["FunctionError"] == "Unhandled"
    error = json.loads(response["Payload"].read())
    assert error["errorType"] == "Runtime.ExitError"
    assert "Runtime exited with error: " in error["errorMessage"]
    assert invoke(client, "exit") != before


def test_import_failure_names_the_missing_module(client: LambdaClient) -> None:
    response = client.invoke(FunctionName="broken-import", LogType="Tail")
    assert response["FunctionError"] == "Unhandled"
    error = json.loads(response["Payload"].read())
    assert error["errorType"] == "Runtime.ImportModuleError"
    assert error["errorMessage"] == (
        "Unable to import module 'lambda_broken_handler': "
        "No module named 'module_that_is_not_installed'"
    )
    assert "Unable to import module" in tail(response)
    # Lambda tries again on the next invocation, with a fresh worker.
    again = client.invoke(FunctionName="broken-import")
    assert json.loads(again["Payload"].read())["errorType"] == "Runtime.ImportModuleError"


def test_missing_handler_module(client: LambdaClient) -> None:
    response = client.invoke(FunctionName="missing-module")
    error = json.loads(response["Payload"].read())
    assert error["errorType"] == "Runtime.ImportModuleError"
    assert "module_nowhere_to_be_found" in error["errorMessage"]


@pytest.mark.parametrize("worker", WORKERS)
def test_timeout_kills_the_worker_and_the_next_invocation_works(worker: WorkerKind) -> None:
    functions = {"sleep": "lambda_handlers:sleep"}
    env = {"PYTHONPATH": HANDLERS_DIR}
    with LocalLambdaHost(functions, env=env, timeout=1.0, worker=worker) as host:
        client = lambda_client(host)
        first_pid = invoke(client, "sleep")["pid"]
        response = client.invoke(FunctionName="sleep", Payload=b'{"seconds": 60}', LogType="Tail")
        assert response["FunctionError"] == "Unhandled"
        error = json.loads(response["Payload"].read())
        assert error["errorType"] == "Sandbox.Timedout"
        assert error["errorMessage"].endswith("Task timed out after 1.00 seconds")
        assert "Task timed out after 1.00 seconds" in tail(response)
        assert invoke(client, "sleep")["pid"] != first_pid


@pytest.mark.parametrize("worker", WORKERS)
def test_stop_ends_the_workers(worker: WorkerKind) -> None:
    env = {"PYTHONPATH": HANDLERS_DIR}
    with LocalLambdaHost({"warm": "lambda_handlers:warm"}, env=env, worker=worker) as host:
        pid = invoke(lambda_client(host), "warm")["pid"]
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_stop_is_prompt_with_an_invocation_in_flight() -> None:
    env = {"PYTHONPATH": HANDLERS_DIR}
    with LocalLambdaHost({"sleep": "lambda_handlers:sleep"}, env=env) as host:
        client = lambda_client(host)
        client.invoke(FunctionName="sleep", InvocationType="Event", Payload=b'{"seconds": 600}')
        log_dir = host.log_path("sleep")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if any("START RequestId" in log.read_text() for log in log_dir.glob("*.log")):
                break
            time.sleep(0.05)
    # Leaving the block returned: the in-flight invocation did not hold the host open.
    assert not log_dir.exists()


def test_worker_env_has_lambda_variables_and_the_users_env() -> None:
    functions = {"env": "lambda_handlers:environment"}
    env = {"PYTHONPATH": HANDLERS_DIR, "MY_SETTING": "on"}
    with LocalLambdaHost(functions, env=env) as host:
        seen = invoke(lambda_client(host), "env")
    assert seen["AWS_LAMBDA_FUNCTION_NAME"] == "env"
    assert seen["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert seen["AWS_REGION"] == seen["AWS_DEFAULT_REGION"] == "us-east-1"
    assert seen["AWS_ACCESS_KEY_ID"] == "testing"
    assert seen["_HANDLER"] == "lambda_handlers.environment"
    assert seen["MY_SETTING"] == "on"
    assert seen["PYTHONPATH"].split(os.pathsep)[0] == HANDLERS_DIR


def test_lambdas_own_handler_spelling_is_served(client: LambdaClient) -> None:
    result = invoke(client, "dotted-echo", {"spelled": "package.module.function"})
    assert result["event"] == {"spelled": "package.module.function"}
    assert result["function_name"] == "dotted-echo"


@pytest.mark.parametrize("handler", ["lambda_handlers", "lambda_handlers:", "a.b:c.d", "a b.c"])
def test_bad_handler_spec_is_rejected_at_construction(handler: str) -> None:
    with pytest.raises(ValueError) as raised:
        LocalLambdaHost({"fn": handler})
    message = str(raised.value)
    assert "'fn'" in message and repr(handler) in message
    assert "'package.module.function'" in message and "'package.module:function'" in message


def test_both_handler_spellings_are_accepted() -> None:
    for handler in ("package.module.function", "folder/module.function", "package.module:function"):
        assert LocalLambdaHost({"fn": handler}).functions == {"fn": handler}


def test_bad_function_name_is_rejected_at_construction() -> None:
    with pytest.raises(ValueError, match="invalid Lambda function name"):
        LocalLambdaHost({"bad name": "lambda_handlers:echo"})


def test_chunked_request_body_is_read(host: LocalLambdaHost) -> None:
    port = urlsplit(host.endpoint_url).port
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        chunks = iter([b'{"chunked":', b" true}"])
        connection.request(
            "POST", "/2015-03-31/functions/echo/invocations", body=chunks, encode_chunked=True
        )
        response = connection.getresponse()
        assert response.status == 200
        assert json.loads(response.read())["event"] == {"chunked": True}
    finally:
        connection.close()


def test_auto_falls_back_to_the_builtin_worker_without_awslambdaric(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hide_module(monkeypatch, "awslambdaric")
    assert LocalLambdaHost({"echo": "lambda_handlers:echo"}).builtin_worker
    with pytest.raises(RuntimeError, match="awslambdaric is not installed"):
        LocalLambdaHost({"echo": "lambda_handlers:echo"}, worker="awslambdaric")
