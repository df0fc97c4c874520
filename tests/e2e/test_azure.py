"""Azure end to end: Dagster `materialize` -> PipesAzureFunctionClient -> LocalAzureFunctionHost
(an `azure.functions` app) -> Azure Blob Storage (Azurite): what only Azure Functions does. What
it does as Cloud Functions does is in test_http_platforms.py."""

import json
import threading
from typing import Any

import pytest
import requests
from support.dagster_testing import failure_text, logs_of, materialization_metadata, materialize_run
from support.faults import FaultProxy, azure_error

from dagster_pipes_cloud.adapters.azure_functions import AzureFunctionInvoker
from dagster_pipes_cloud.adapters.wire import CLAIMS_FOLDER
from dagster_pipes_cloud.local import LocalAzureFunctionHost
from dagster_pipes_cloud.orchestration import (
    PipesAzureBlobStorageMessageReader,
    PipesAzureFunctionClient,
)

APP = "e2e.azure_function_apps:app"


def pipes_client(azure_stack: Any, container: str | None = None, **reader: Any) -> Any:
    return PipesAzureFunctionClient(
        message_reader=PipesAzureBlobStorageMessageReader(
            container=container or azure_stack.container,
            client=azure_stack.blob_client(),
            **reader,
        ),
        function_key=azure_stack.function_key,
    )


def session_messages(azure_stack: Any, prefix: str) -> list[dict[str, Any]]:
    """Every Pipes message written under `prefix`, read straight from the container."""
    container = azure_stack.blob_client().get_container_client(azure_stack.container)
    messages = []
    for blob in container.list_blobs(name_starts_with=prefix):
        if f"{CLAIMS_FOLDER}/" in blob.name:
            continue  # the session's claim, no message
        text = container.download_blob(blob.name).readall().decode()
        messages.extend(json.loads(line) for line in text.split("\n") if line.strip())
    return messages


def run(azure_stack: Any, route: str, client: Any = None, **run_kwargs: Any) -> Any:
    client = client or pipes_client(azure_stack)
    return materialize_run(client, "azure_asset", function_url=azure_stack.url(route), **run_kwargs)


def test_3000_messages_and_200kb_of_stdout_all_arrive(azure_stack: Any) -> None:
    client = pipes_client(azure_stack, key_prefix="chatty", cleanup=False)
    result = run(
        azure_stack, "chatty", client=client, event={"messages": 3000, "stdout_bytes": 200_000}
    )
    assert result.success, failure_text(result)
    logs = logs_of(result)
    assert all(f"message {i}\n" in logs + "\n" for i in range(3000))
    printed = "".join(
        message["params"]["text"]
        for message in session_messages(azure_stack, "chatty/")
        if message["method"] == "log_external_stream"
    )
    assert printed.count("x" * 99 + "\n") == 200_000 // 100
    assert materialization_metadata(result, "azure_asset")["sent"] == 3000


def test_a_call_without_the_function_key_is_refused_by_name(azure_stack: Any) -> None:
    client = PipesAzureFunctionClient(
        message_reader=PipesAzureBlobStorageMessageReader(
            container=azure_stack.container, client=azure_stack.blob_client()
        )
    )
    result = run(azure_stack, "counting", client=client)
    assert not result.success
    failure = failure_text(result)
    assert "HTTP 401" in failure and "function_key=" in failure, failure


class RecordingAdapter(requests.adapters.HTTPAdapter):
    """A transport adapter, as a user mounts one (retries, proxies), recording what it sends."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[requests.PreparedRequest] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        self.sent.append(request)
        return super().send(request, **kwargs)


def test_a_session_carries_the_function_key_given_beside_it(azure_stack: Any) -> None:
    adapter = RecordingAdapter()
    with requests.Session() as session:
        session.mount("http://", adapter)
        session.headers["X-Proxy-Route"] = "blue"
        client = PipesAzureFunctionClient(
            message_reader=PipesAzureBlobStorageMessageReader(
                container=azure_stack.container, client=azure_stack.blob_client()
            ),
            session=session,
            function_key=azure_stack.function_key,
        )
        result = run(azure_stack, "counting", client=client)
    assert result.success, failure_text(result)
    [sent] = adapter.sent
    assert sent.headers["x-functions-key"] == azure_stack.function_key
    assert sent.headers["X-Proxy-Route"] == "blue"


def test_credentials_that_cannot_go_together_are_refused_when_the_client_is_made(
    azure_stack: Any,
) -> None:
    reader = PipesAzureBlobStorageMessageReader(container=azure_stack.container)
    with pytest.raises(ValueError, match="function_key or scope"):
        PipesAzureFunctionClient(message_reader=reader, function_key="k", scope="api://a/.default")
    with requests.Session() as session, pytest.raises(ValueError, match="invoker= and session="):
        PipesAzureFunctionClient(
            message_reader=reader, session=session, invoker=AzureFunctionInvoker()
        )


def test_two_invocations_at_once_keep_their_messages_and_output_apart(azure_stack: Any) -> None:
    results: dict[str, Any] = {}

    def invoke(tag: str) -> None:
        client = pipes_client(azure_stack, key_prefix=f"apart-{tag}", cleanup=False)
        results[tag] = run(azure_stack, "tagged", client=client, event={"tag": tag})

    threads = [threading.Thread(target=invoke, args=(tag,)) for tag in ("aaa", "bbb")]
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
        printed = "".join(
            message["params"]["text"]
            for message in session_messages(azure_stack, f"apart-{tag}/")
            if message["method"] == "log_external_stream"
        )
        assert [f"printed {tag} {i}" in printed for i in range(20)] == [True] * 20
        assert printed.count(f"printed {tag} 0\n") == 1, "captured once"
        assert other not in printed, f"{tag}'s run captured {other}'s output"


def test_a_request_cut_by_the_front_end_is_read_to_the_end(azure_stack: Any) -> None:
    """The host's front end gives up after 1.5 s (Azure's: 230 s); the function runs 3 s."""
    with LocalAzureFunctionHost(
        APP, env=azure_stack.env, front_end_timeout=1.5, function_key=azure_stack.function_key
    ) as host:
        client = pipes_client(azure_stack)
        client._invoker.front_end_timeout = 1.5
        result = materialize_run(
            client, "azure_asset", function_url=f"{host.url}/api/outlasting", event={"seconds": 3}
        )
        failed = materialize_run(
            client,
            "azure_asset",
            function_url=f"{host.url}/api/outlasting",
            event={"seconds": 3, "fail": True},
        )
    assert result.success, failure_text(result)
    logs = logs_of(result)
    assert "was cut" in logs and "still running after the front end gave up" in logs
    assert materialization_metadata(result, "azure_asset") == {"finished": True}
    assert result.responses == [None]
    assert not failed.success
    failure = failure_text(failed)
    assert "RuntimeError: failed after the cut" in failure, failure


def test_400_messages_through_server_busy_on_both_sides_arrive_once_in_order(
    azure_stack: Any,
) -> None:
    """Azurite answers 30-50 % of the calls with 503 ServerBusy, for the function's writer and
    Dagster's reader alike; every message still arrives exactly once, in order."""
    busy = azure_error(503, "ServerBusy")
    with (
        FaultProxy(azure_stack.origin, probability=0.4, seed=7, fault=busy) as writer_side,
        FaultProxy(azure_stack.origin, probability=0.4, seed=11, fault=busy) as reader_side,
        LocalAzureFunctionHost(
            APP,
            env={"AZURE_STORAGE_CONNECTION_STRING": azure_stack.connection_string(writer_side)},
            function_key=azure_stack.function_key,
        ) as host,
    ):
        client = PipesAzureFunctionClient(
            message_reader=PipesAzureBlobStorageMessageReader(
                container=azure_stack.container, client=azure_stack.blob_client(reader_side)
            ),
            function_key=azure_stack.function_key,
        )
        result = materialize_run(
            client,
            "azure_asset",
            function_url=f"{host.url}/api/paced",
            event={"messages": 400, "pace": 0.01},
        )
        print(
            "400 messages through 40 % ServerBusy:"
            f" writer side {dict(writer_side.injected)} injected of {dict(writer_side.counts)},"
            f" reader side {dict(reader_side.injected)} of {dict(reader_side.counts)}"
        )
    assert result.success, failure_text(result)
    assert writer_side.injected and reader_side.injected, "both sides met ServerBusy"
    lines = [line for line in logs_of(result).split("\n") if line.startswith("paced ")]
    assert lines == [f"paced {i}" for i in range(400)], "every message once, in order"


def test_an_application_insights_resource_given_links_each_invocation_to_its_logs(
    azure_stack: Any,
) -> None:
    insights = "/subscriptions/s/resourceGroups/g/providers/microsoft.insights/components/app"
    client = pipes_client(azure_stack)
    client.application_insights = insights
    result = run(azure_stack, "counting", client=client)
    assert result.success, failure_text(result)
    metadata = materialization_metadata(result, "azure_asset")
    assert metadata["azure_application_insights"].startswith("https://portal.azure.com/#blade/")
    invocation_id = metadata["azure_functions_invocation_id"]
    assert f"Id={invocation_id}" in azure_stack._host.log_path.read_text(), "the host's own id"
