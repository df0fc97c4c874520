"""`LambdaInvoker` against `LocalLambdaHost`, and the default client's settings."""

import base64
import io
import json
from typing import Any

import pytest
from support.aws_testing import local_client, unreachable_client

from dagster_pipes_cloud.adapters import (
    GivenClientWarning,
    ResourceNotFoundError,
    ThrottledError,
    TransientError,
)
from dagster_pipes_cloud.adapters.lambda_ import (
    CLIENT_CONTEXT_MAX_BYTES,
    LAMBDA_MAX_SECONDS,
    LambdaInvoker,
    attribution_client_context,
    default_lambda_client,
    encode_client_context,
)
from dagster_pipes_cloud.adapters.wire import attribution_from_client_context
from dagster_pipes_cloud.local import LocalLambdaHost


def test_a_synchronous_invoke_decodes_the_response(aws_stack: Any) -> None:
    invocation = LambdaInvoker(aws_stack.lambda_client).invoke(
        "plain_call", json.dumps({"n": 1}).encode(), log_tail=True
    )
    assert invocation.completed and invocation.error is None
    assert invocation.response == {"echo": {"n": 1}}
    assert invocation.log_tail is not None and "START RequestId" in invocation.log_tail


def test_a_function_error_is_decoded(aws_stack: Any) -> None:
    invocation = LambdaInvoker(aws_stack.lambda_client).invoke("failing", b"{}")
    assert invocation.error is not None
    assert invocation.error.type == "ValueError"
    assert invocation.error.message == "the function's own problem"
    assert any("aws_handlers.py" in line for line in invocation.error.trace)


def test_an_event_invoke_does_not_wait(aws_stack: Any) -> None:
    invocation = LambdaInvoker(aws_stack.lambda_client).invoke(
        "plain_call", b"{}", invocation_type="Event"
    )
    assert not invocation.completed and invocation.response is None


def test_an_unknown_function_is_named(aws_stack: Any) -> None:
    with pytest.raises(ResourceNotFoundError, match="nope-function"):
        LambdaInvoker(aws_stack.lambda_client).invoke("nope-function", b"{}")


def test_a_request_that_never_arrived_is_resent_then_reported() -> None:
    client = unreachable_client("lambda")
    with pytest.raises(TransientError, match="fn"):
        LambdaInvoker(client).invoke("fn", b"{}")


def test_the_default_client_waits_out_lambda_and_never_retries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    config = default_lambda_client().meta.config
    assert config.read_timeout >= LAMBDA_MAX_SECONDS
    assert config.retries["total_max_attempts"] == 1


def test_client_context_carries_all_three_sections() -> None:
    import base64

    encoded = encode_client_context({"dagster_run_id": "r"})
    assert encoded is not None
    assert json.loads(base64.b64decode(encoded)) == {
        "client": {},
        "custom": {"dagster_run_id": "r"},
        "env": {},
    }
    assert encode_client_context({"k": "v" * 4000}) is None


@pytest.mark.parametrize(("resends", "throttled"), [(0, True), (2, False)])
def test_too_many_requests_is_resent_briefly_then_raised_as_throttling(
    s3_emulator: Any, resends: int, throttled: bool
) -> None:
    functions = {"plain_call": "e2e.aws_handlers:plain_call"}
    with LocalLambdaHost(functions, env=s3_emulator.env, throttle_first=2) as host:
        invoker = LambdaInvoker(local_client("lambda", host.endpoint_url), resend_attempts=resends)
        if throttled:
            with pytest.raises(ThrottledError) as raised:
                invoker.invoke("plain_call", b"{}")
            message = str(raised.value)
            assert "'plain_call' throttled the invocation (TooManyRequestsException" in message
            assert "ReservedFunctionConcurrentInvocationLimitExceeded" in message
            assert "RetryPolicy" in message
            assert raised.value.retry_after is None
        else:
            assert invoker.invoke("plain_call", b"{}").response == {"echo": {}}


def test_the_attribution_rides_in_the_client_context_and_drops_asset_keys_to_fit() -> None:
    attribution = {"run_id": "r1", "asset_keys": "a,b", "retry_number": "1"}
    encoded = attribution_client_context(attribution)
    assert encoded is not None
    custom = json.loads(base64.b64decode(encoded))["custom"]
    assert attribution_from_client_context(custom) == attribution
    many = {**attribution, "asset_keys": "k" * CLIENT_CONTEXT_MAX_BYTES}
    encoded = attribution_client_context(many)
    assert encoded is not None
    custom = json.loads(base64.b64decode(encoded))["custom"]
    assert attribution_from_client_context(custom) == {"run_id": "r1", "retry_number": "1"}


class FakeLambdaClient:
    """A user's test double of a Lambda client, as dagster-aws's own tests pass one."""

    def __init__(self) -> None:
        self.invokes: list[dict[str, Any]] = []

    def invoke(self, **request: Any) -> dict[str, Any]:
        self.invokes.append(request)
        return {"StatusCode": 200, "Payload": io.BytesIO(b'{"ok": true}')}


def test_a_client_that_is_not_a_boto3_client_is_used_as_it_is() -> None:
    client = FakeLambdaClient()
    invoker = LambdaInvoker(client)
    with pytest.warns(GivenClientWarning, match="FakeLambdaClient.*own timeouts and retries"):
        invocation = invoker.invoke("fn", b"{}")
    assert invocation.response == {"ok": True} and invocation.error is None
    assert [request["FunctionName"] for request in client.invokes] == ["fn"]


def test_reserved_connections_size_the_default_client_not_a_given_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    invoker = LambdaInvoker()
    assert invoker.client.meta.config.max_pool_connections == 10
    invoker.reserve_connections(40)
    assert invoker.client.meta.config.max_pool_connections == 40, "made again with the pool"
    invoker.reserve_connections(20)
    assert invoker.client.meta.config.max_pool_connections == 40, "a pool never shrinks"
    given = LambdaInvoker(unreachable_client("lambda"))
    given.reserve_connections(40)
    assert given.client.meta.config.max_pool_connections == 10
