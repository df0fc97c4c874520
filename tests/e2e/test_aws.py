"""AWS end to end: Dagster `materialize` -> PipesLambdaClient -> LocalLambdaHost -> S3 (moto)."""

from typing import Any

import pytest
from support.aws_testing import materialize_lambda
from support.dagster_testing import failure_text, logs_of, materialization_metadata

from dagster_pipes_cloud.orchestration import (
    PipesEventContextInjector,
    PipesLambdaClient,
    PipesS3ContextInjector,
    PipesS3MessageReader,
)


def pipes_client(aws_stack: Any, bucket: str | None = None, **reader: Any) -> PipesLambdaClient:
    return PipesLambdaClient(
        client=aws_stack.lambda_client,
        message_reader=PipesS3MessageReader(
            bucket=bucket or aws_stack.bucket, client=aws_stack.s3_client, **reader
        ),
    )


def test_a_warm_function_serves_six_invocations_in_a_row(aws_stack: Any) -> None:
    client = pipes_client(aws_stack)
    results = [materialize_lambda(client, "counting") for _ in range(6)]
    assert all(result.success for result in results), failure_text(
        next(r for r in results if not r.success)
    )
    counts = [materialization_metadata(r, "lambda_asset")["invocation"] for r in results]
    pids = {materialization_metadata(r, "lambda_asset")["pid"] for r in results}
    assert counts == list(range(counts[0], counts[0] + 6)), "one warm worker served them all"
    assert len(pids) == 1
    assert results[-1].responses == [{"invocation": counts[-1], "pid": pids.pop()}]


def test_a_warm_function_works_again_after_an_exception(aws_stack: Any) -> None:
    client = pipes_client(aws_stack)
    failed = materialize_lambda(client, "fails_on_request", event={"fail": True})
    assert not failed.success
    assert "RuntimeError: failing as asked" in failure_text(failed)
    results = [
        materialize_lambda(client, "fails_on_request", event={"fail": False}) for _ in range(2)
    ]
    assert all(result.success for result in results)
    assert "asked to fail: False" in logs_of(results[0])
    assert results[0].responses == results[1].responses, "the same warm worker served both"


def test_context_through_an_explicit_s3_injector(aws_stack: Any) -> None:
    client = PipesLambdaClient(
        client=aws_stack.lambda_client,
        message_reader=PipesS3MessageReader(bucket=aws_stack.bucket, client=aws_stack.s3_client),
        context_injector=PipesS3ContextInjector(
            bucket=aws_stack.bucket, client=aws_stack.s3_client, key_prefix="contexts"
        ),
    )
    result = materialize_lambda(client, "context_size", extras={"blob": "abc"})
    assert result.success, failure_text(result)
    assert materialization_metadata(result, "lambda_asset")["blob"] == 3
    listed = aws_stack.s3_client.list_objects_v2(Bucket=aws_stack.bucket, Prefix="contexts/")
    assert listed.get("KeyCount") == 0, "the context blob is deleted when the session ends"


def test_3000_messages_and_200kb_of_stdout_all_arrive(
    aws_stack: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    result = materialize_lambda(
        pipes_client(aws_stack), "chatty", event={"messages": 3000, "stdout_bytes": 200_000}
    )
    assert result.success, failure_text(result)
    logs = logs_of(result)
    missing = [i for i in range(3000) if f"message {i}\n" not in logs + "\n"]
    assert not missing, f"{len(missing)} messages missing, first {missing[:5]}"
    assert materialization_metadata(result, "lambda_asset")["sent"] == 3000
    out = capfd.readouterr().out
    assert out.count("x" * 99 + "\n") >= 200_000 // 100


def test_a_raised_error_fails_with_its_message_after_the_messages_before_it(
    aws_stack: Any,
) -> None:
    result = materialize_lambda(pipes_client(aws_stack), "failing")
    assert not result.success
    failure = failure_text(result)
    assert "ValueError" in failure and "the function's own problem" in failure
    assert "aws_handlers.py" in failure, "the remote stack trace is shown"
    assert "sent before the error" in logs_of(result)


def test_a_missing_bucket_is_named_before_the_function_runs(aws_stack: Any) -> None:
    # a drain timeout it cannot wait out: only the bucket's check as the session opens can end it
    client = pipes_client(aws_stack, bucket="no-such-pipes-bucket", drain_timeout=3600)
    result = materialize_lambda(client, "counting")
    assert not result.success
    said = "cannot read Pipes messages: S3 bucket 'no-such-pipes-bucket' does not exist"
    assert said in failure_text(result)


def test_event_invocation_ends_on_the_closed_message(aws_stack: Any) -> None:
    result = materialize_lambda(
        pipes_client(aws_stack), "event_target", event={"tag": "async"}, invocation_type="Event"
    )
    assert result.success, failure_text(result)
    assert "running without a caller, tag=async" in logs_of(result)
    assert materialization_metadata(result, "lambda_asset")["tag"] == "async"
    assert result.responses == [None]


def test_a_function_that_never_opens_pipes_is_named(aws_stack: Any) -> None:
    client = PipesLambdaClient(
        client=aws_stack.lambda_client,
        message_reader=PipesS3MessageReader(
            bucket=aws_stack.bucket, client=aws_stack.s3_client, drain_timeout=1
        ),
    )
    result = materialize_lambda(client, "not_pipes")
    assert not result.success
    assert "never opened Dagster Pipes" in failure_text(result)


def test_run_id_and_asset_key_travel_in_the_client_context(aws_stack: Any) -> None:
    result = materialize_lambda(pipes_client(aws_stack), "stacked")
    assert result.success, failure_text(result)
    [custom] = result.responses
    assert custom["dagster_run_id"] == result.run_id
    assert custom["dagster_asset_keys"] == "lambda_asset"
    assert "stacked under another decorator" in logs_of(result)


@pytest.mark.parametrize("injector", [None, PipesEventContextInjector()], ids=["default", "event"])
def test_large_context_goes_through_s3(
    aws_stack: Any, injector: PipesEventContextInjector | None
) -> None:
    extras = {"blob": "".join(f"{i:x}" for i in range(400_000))}  # over 1 MB for Event
    client = pipes_client(aws_stack)
    client.context_injector = injector or client.context_injector
    result = materialize_lambda(client, "context_size", extras=extras, invocation_type="Event")
    assert result.success, failure_text(result)
    assert materialization_metadata(result, "lambda_asset")["blob"] == len(extras["blob"])


def test_without_dagster_the_function_still_runs(aws_stack: Any) -> None:
    response = aws_stack.lambda_client.invoke(FunctionName="plain_call", Payload=b'{"a": 1}')
    assert "FunctionError" not in response
    assert response["Payload"].read() == b'{"echo": {"a": 1}}'


def test_unknown_function_is_named(aws_stack: Any) -> None:
    result = materialize_lambda(pipes_client(aws_stack), "no-such-function")
    assert not result.success
    assert "no-such-function" in failure_text(result)


def test_default_clients_follow_the_environment(
    aws_stack: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in aws_stack.env.items():
        monkeypatch.setenv(key, value)
    client = PipesLambdaClient(message_reader=PipesS3MessageReader(bucket=aws_stack.bucket))
    result = materialize_lambda(client, "counting")
    assert result.success, failure_text(result)


def test_without_dagster_every_report_is_accepted_and_dropped(aws_stack: Any) -> None:
    response = aws_stack.lambda_client.invoke(FunctionName="reports_everything", Payload=b"{}")
    assert "FunctionError" not in response, response["Payload"].read()
    assert response["Payload"].read() == b'"reported"'


def test_the_materialization_says_where_to_look_and_what_lambda_reported(aws_stack: Any) -> None:
    result = materialize_lambda(pipes_client(aws_stack), "counting")
    assert result.success, failure_text(result)
    metadata = materialization_metadata(result, "lambda_asset")
    request_id = metadata["aws_lambda_request_id"]
    assert len(request_id) == 36, request_id
    assert "aws_lambda_logs" not in metadata, "a local endpoint gets no console link"
    assert metadata["aws_lambda_billed_duration_ms"] >= 1
    assert metadata["aws_lambda_duration_ms"] > 0
    assert metadata["aws_lambda_memory_size_mb"] == 128
    assert metadata["aws_lambda_max_memory_used_mb"] > 1
    assert f"aws_lambda_request_id {request_id}" in logs_of(result)
