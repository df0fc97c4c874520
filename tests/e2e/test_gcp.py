"""GCP end to end: Dagster `materialize` -> PipesCloudFunctionClient -> LocalCloudFunctionHost
(functions-framework) -> GCS (gcp-storage-emulator): what only Cloud Functions does. What it does
as Azure Functions does is in test_http_platforms.py."""

import json
import threading
from typing import Any

import pytest
import requests
from support.dagster_testing import failure_text, logs_of, materialization_metadata, materialize_run
from support.faults import FaultProxy

from dagster_pipes_cloud.adapters.cloud_functions import CloudFunctionInvoker
from dagster_pipes_cloud.adapters.wire import CLAIMS_FOLDER
from dagster_pipes_cloud.local import LocalCloudFunctionHost
from dagster_pipes_cloud.orchestration import (
    PipesCloudFunctionClient,
    PipesGCSMessageReader,
)


def pipes_client(gcp_stack: Any, bucket: str | None = None, **reader: Any) -> Any:
    return PipesCloudFunctionClient(
        message_reader=PipesGCSMessageReader(
            bucket=bucket or gcp_stack.bucket, client=gcp_stack.storage_client(), **reader
        ),
        session=requests.Session(),
    )


def session_messages(gcp_stack: Any, prefix: str) -> list[dict[str, Any]]:
    """Every Pipes message written under `prefix`, read straight from the bucket."""
    storage = gcp_stack.storage_client()
    messages = []
    for blob in storage.list_blobs(gcp_stack.bucket, prefix=prefix):
        is_chunk = blob.name.endswith(".json") and f"{CLAIMS_FOLDER}/" not in blob.name
        if is_chunk and "/messages-" in blob.name:
            text = blob.download_as_bytes().decode()
            messages.extend(json.loads(line) for line in text.split("\n") if line.strip())
    return messages


def run(gcp_stack: Any, function: str, client: Any = None, **run_kwargs: Any) -> Any:
    client = client or pipes_client(gcp_stack)
    return materialize_run(client, "gcf_asset", function_url=gcp_stack.url(function), **run_kwargs)


def test_3000_messages_and_200kb_of_stdout_all_arrive(
    gcp_stack: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    result = run(gcp_stack, "chatty", event={"messages": 3000, "stdout_bytes": 200_000})
    assert result.success, failure_text(result)
    logs = logs_of(result)
    assert all(f"message {i}\n" in logs + "\n" for i in range(3000))
    assert capfd.readouterr().out.count("x" * 99 + "\n") >= 200_000 // 100
    assert materialization_metadata(result, "gcf_asset")["sent"] == 3000


@pytest.mark.parametrize("execution_id", [False, True], ids=["plain", "LOG_EXECUTION_ID"])
def test_two_invocations_at_once_keep_their_messages_and_output_apart(
    gcp_stack: Any, execution_id: bool
) -> None:
    """Also with functions-framework's LOG_EXECUTION_ID, which swaps the process's streams for
    each request."""
    results: dict[str, Any] = {}
    env = {**gcp_stack.env, "LOG_EXECUTION_ID": "true"} if execution_id else gcp_stack.env
    host = LocalCloudFunctionHost("e2e.gcp_functions:tagged", env=env)
    prefix = f"apart-{execution_id}"

    def invoke(tag: str) -> None:
        client = pipes_client(gcp_stack, key_prefix=f"{prefix}-{tag}", cleanup=False)
        results[tag] = materialize_run(
            client, "gcf_asset", function_url=host.url, event={"tag": tag}
        )

    threads = [threading.Thread(target=invoke, args=(tag,)) for tag in ("aaa", "bbb")]
    with host:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    for tag, other in (("aaa", "bbb"), ("bbb", "aaa")):
        result = results[tag]
        assert result.success, failure_text(result)
        logs = logs_of(result)
        assert all(f"log {tag} {i}" in logs for i in range(20))
        assert other not in logs, f"{tag}'s run received {other}'s messages"
        assert materialization_metadata(result, "gcf_asset")["tag"] == tag
        printed = "".join(
            message["params"]["text"]
            for message in session_messages(gcp_stack, f"{prefix}-{tag}/")
            if message["method"] == "log_external_stream"
        )
        assert [f"printed {tag} {i}" in printed for i in range(20)] == [True] * 20
        assert printed.count(f"printed {tag} 0\n") == 1, "captured once"
        assert other not in printed, f"{tag}'s run captured {other}'s output"


def test_the_run_id_is_in_the_function_log(gcp_stack: Any) -> None:
    result = run(gcp_stack, "paced", event={"messages": 1})
    assert result.success, failure_text(result)
    host = gcp_stack._hosts["paced"]
    assert f"Dagster run {result.run_id}" in host.log_path.read_text()


def test_400_messages_through_503s_on_both_sides_arrive_once_in_order(gcp_stack: Any) -> None:
    """GCS answers 30-50 % of the calls with 503, for the function's writer and Dagster's
    reader alike; every message still arrives exactly once, in order."""
    with (
        FaultProxy(gcp_stack.gcs.endpoint_url, probability=0.4, seed=7) as writer_side,
        FaultProxy(gcp_stack.gcs.endpoint_url, probability=0.4, seed=11) as reader_side,
        LocalCloudFunctionHost(
            "e2e.gcp_functions:paced", env={"STORAGE_EMULATOR_HOST": writer_side.url}
        ) as host,
    ):
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        reader_storage = storage.Client(
            project=gcp_stack.gcs.project,
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options={"api_endpoint": reader_side.url},
        )
        client = PipesCloudFunctionClient(
            message_reader=PipesGCSMessageReader(bucket=gcp_stack.bucket, client=reader_storage),
            session=requests.Session(),
        )
        result = materialize_run(
            client, "gcf_asset", function_url=host.url, event={"messages": 400, "pace": 0.01}
        )
        print(
            "400 messages through 40 % 503s:"
            f" writer side {dict(writer_side.injected)} injected of {dict(writer_side.counts)},"
            f" reader side {dict(reader_side.injected)} of {dict(reader_side.counts)}"
        )
    assert result.success, failure_text(result)
    assert writer_side.injected and reader_side.injected, "both sides met 503s"
    lines = [line for line in logs_of(result).split("\n") if line.startswith("paced ")]
    assert lines == [f"paced {i}" for i in range(400)], "every message once, in order"


def test_a_session_carries_the_id_token_of_the_given_source(gcp_stack: Any) -> None:
    audiences: list[str] = []

    def id_token_source(audience: str) -> str:
        audiences.append(audience)
        return "token-for-the-function"

    sent: list[requests.PreparedRequest] = []

    class RecordingAdapter(requests.adapters.HTTPAdapter):
        def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
            sent.append(request)
            return super().send(request, **kwargs)

    with requests.Session() as session:
        session.mount("http://", RecordingAdapter())
        client = PipesCloudFunctionClient(
            message_reader=PipesGCSMessageReader(
                bucket=gcp_stack.bucket, client=gcp_stack.storage_client()
            ),
            session=session,
            id_token_source=id_token_source,
        )
        result = materialize_run(client, "gcf_asset", function_url=gcp_stack.url("counting"))
    assert result.success, failure_text(result)
    assert [request.headers["Authorization"] for request in sent] == [
        "Bearer token-for-the-function"
    ]
    assert audiences == [gcp_stack.url("counting")]


def test_an_invoker_beside_a_session_is_refused_naming_both(gcp_stack: Any) -> None:
    reader = PipesGCSMessageReader(bucket=gcp_stack.bucket)
    with requests.Session() as session, pytest.raises(ValueError, match="invoker= and session="):
        PipesCloudFunctionClient(
            message_reader=reader, session=session, invoker=CloudFunctionInvoker()
        )
