"""LocalLambdaHost runs concurrent invocations side by side, as Lambda does, within its limits.

The handlers live in `lambda_handlers.py` next to this file, on the workers' PYTHONPATH. Each
concurrent invocation leaves a marker file in the test's folder as it starts, so a test waits for
what it needs to have happened rather than for a length of time.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from botocore.config import Config
from support.aws_testing import local_client
from support.throttling import refused_past, wait_for

from dagster_pipes_cloud.adapters.lambda_ import LambdaInvoker
from dagster_pipes_cloud.local import LocalLambdaHost
from dagster_pipes_cloud.local.lambda_host import WorkerKind

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_lambda.type_defs import InvocationResponseTypeDef

HANDLERS_ENV = {"PYTHONPATH": str(Path(__file__).parent)}
FUNCTIONS = {
    "gather": "lambda_handlers.gather",
    "big-response": "lambda_handlers.big_response",
}


def lambda_client(host: LocalLambdaHost) -> LambdaClient:
    config = Config(retries={"total_max_attempts": 1}, read_timeout=120)
    client: LambdaClient = local_client("lambda", host.endpoint_url, config)
    return client


def payload(response: InvocationResponseTypeDef) -> Any:
    assert "FunctionError" not in response
    return json.loads(response["Payload"].read())


@pytest.fixture(scope="module", params=["auto", "builtin"])
def host(request: pytest.FixtureRequest) -> Iterator[LocalLambdaHost]:
    worker: WorkerKind = request.param
    with LocalLambdaHost(FUNCTIONS, env=HANDLERS_ENV, worker=worker) as started:
        yield started


@pytest.fixture
def client(host: LocalLambdaHost) -> LambdaClient:
    return lambda_client(host)


def gather(client: LambdaClient, folder: Path, count: int) -> list[InvocationResponseTypeDef]:
    """`count` concurrent invocations of `gather`, tagged `invocation-<i>`, each with its tail."""

    def call(index: int) -> InvocationResponseTypeDef:
        event = {"tag": f"invocation-{index}", "folder": str(folder), "seconds": 1, "peers": count}
        return client.invoke(FunctionName="gather", Payload=json.dumps(event), LogType="Tail")

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(call, range(count)))


def test_concurrent_invocations_run_side_by_side_in_their_own_workers(
    client: LambdaClient, tmp_path: Path
) -> None:
    results = [payload(response) for response in gather(client, tmp_path, 3)]
    assert len({result["pid"] for result in results}) == 3
    assert all(result["saw_peers"] for result in results), f"not all at once: {results}"


def test_each_concurrent_log_tail_holds_only_its_own_invocation(
    client: LambdaClient, tmp_path: Path
) -> None:
    responses = gather(client, tmp_path, 3)
    for index, response in enumerate(responses):
        log = base64.b64decode(response["LogResult"]).decode()
        request_id = response["ResponseMetadata"]["RequestId"]
        assert f"invocation-{index} started" in log
        assert f"invocation-{index} ending" in log
        assert f"START RequestId: {request_id} Version: $LATEST" in log
        assert f"REPORT RequestId: {request_id}\t" in log
        assert log.count("START RequestId") == 1, log
        others = [f"invocation-{other}" for other in range(3) if other != index]
        assert not [other for other in others if other in log], log


def test_sequential_invocations_reuse_one_of_several_warm_workers(
    client: LambdaClient, tmp_path: Path
) -> None:
    gather(client, tmp_path, 3)
    event = {"tag": "sequential", "folder": str(tmp_path), "seconds": 0, "peers": 0}
    pids = {
        payload(client.invoke(FunctionName="gather", Payload=json.dumps(event)))["pid"]
        for _ in range(6)
    }
    assert len(pids) == 1


def test_a_synchronous_invoke_past_the_concurrency_is_throttled_and_an_event_waits(
    tmp_path: Path,
) -> None:
    def event(tag: str) -> str:
        return json.dumps({"tag": tag, "folder": str(tmp_path)})

    functions = {"hold": "lambda_handlers.hold"}
    with LocalLambdaHost(functions, env=HANDLERS_ENV, concurrency=2) as host:
        client = lambda_client(host)
        with ThreadPoolExecutor(max_workers=2) as pool:
            held = [
                pool.submit(client.invoke, FunctionName="hold", Payload=event(f"held-{index}"))
                for index in range(2)
            ]
            wait_for(lambda: len(list(tmp_path.glob("held-*.started"))) == 2, "two running")

            with pytest.raises(client.exceptions.TooManyRequestsException) as raised:
                client.invoke(FunctionName="hold", Payload=event("refused"))
            queued = client.invoke(
                FunctionName="hold", InvocationType="Event", Payload=event("queued")
            )
            assert queued["StatusCode"] == 202
            assert not (tmp_path / "queued.started").exists(), "an Event waits for a free worker"
            (tmp_path / "release").touch()
            pids = {payload(future.result()) for future in held}
        wait_for((tmp_path / "queued.started").exists, "the queued Event invocation to run")

    error: Any = raised.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert error["Error"]["Message"] == "Rate Exceeded."
    assert error["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
    assert error["Type"] == "User"
    assert not (tmp_path / "refused.started").exists()
    assert len(pids) == 2


def test_the_invoker_sees_a_synchronous_invoke_past_the_concurrency_as_throttling(
    tmp_path: Path,
) -> None:
    with LocalLambdaHost({"hold": "lambda_handlers.hold"}, env=HANDLERS_ENV, concurrency=2) as host:
        invoker = LambdaInvoker(lambda_client(host), resend_attempts=0)
        error = refused_past(
            2, lambda event: invoker.invoke("hold", json.dumps(event).encode()), tmp_path
        )
    assert "'hold' throttled the invocation (TooManyRequestsException" in str(error)
    assert "ReservedFunctionConcurrentInvocationLimitExceeded" in str(error)


def test_a_response_over_6_mb_is_lambdas_response_size_error(client: LambdaClient) -> None:
    event = {"characters": 7 * 1024 * 1024}
    response = client.invoke(FunctionName="big-response", Payload=json.dumps(event))
    assert response["StatusCode"] == 200
    assert response["FunctionError"] == "Unhandled"
    assert json.loads(response["Payload"].read()) == {
        "errorMessage": (
            "Response payload size exceeded maximum allowed payload size (6291556 bytes)."
        ),
        "errorType": "Function.ResponseSizeTooLarge",
    }
    # The largest response Lambda accepts still arrives, from a fresh worker.
    largest = {"characters": 6291556 - 2}  # a JSON string: two quotes around the characters
    response = client.invoke(FunctionName="big-response", Payload=json.dumps(largest))
    assert len(payload(response)) == largest["characters"]


def test_stop_ends_every_worker(tmp_path: Path) -> None:
    with LocalLambdaHost({"gather": "lambda_handlers.gather"}, env=HANDLERS_ENV) as host:
        pids = {payload(response)["pid"] for response in gather(lambda_client(host), tmp_path, 2)}
    assert len(pids) == 2
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
