"""Our Azure Blob Storage writer, loader, reader and injector through Dagster, on Azurite.

Faults come from `FaultProxy`s in front of Azurite, one on the function's side and one on
Dagster's, answering Azure-shaped 503 ServerBusy to a share of the calls.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient
from dagster_pipes import PipesContext
from support.azure_testing import (
    azurite_client,
    azurite_connection_string,
    materialize_session,
    new_container,
    our_function_side,
)
from support.dagster_testing import failure_text, logs_of, materialization_metadata
from support.faults import FaultProxy, azure_error

from dagster_pipes_cloud.adapters.wire import CLAIMS_FOLDER
from dagster_pipes_cloud.local.azurite import ACCOUNT_KEY, AzuriteEmulator
from dagster_pipes_cloud.orchestration.azure_blob import (
    DEFAULT_KEY_PREFIX,
    PipesAzureBlobStorageContextInjector,
    PipesAzureBlobStorageMessageReader,
)

MESSAGES = 400
WRONG_KEY = ACCOUNT_KEY.replace("Eby8", "Xby8")


def reader_and_injector(
    container: str, client: BlobServiceClient, **options: Any
) -> dict[str, Any]:
    return {
        "message_reader": PipesAzureBlobStorageMessageReader(
            container=container, client=client, **options
        ),
        "context_injector": PipesAzureBlobStorageContextInjector(
            container=container, client=client, key_prefix="ctx"
        ),
    }


@pytest.fixture
def container(azurite: AzuriteEmulator) -> str:
    return new_container(azurite, "channel")


@pytest.fixture
def function_proxy(
    azurite: AzuriteEmulator, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FaultProxy]:
    """The function side's way to Azurite: its default client is pointed here."""
    with FaultProxy(azurite.endpoint_url, fault=azure_error()) as proxy:
        monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite_connection_string(proxy.url))
        yield proxy


@pytest.fixture
def dagster_proxy(azurite: AzuriteEmulator) -> Iterator[FaultProxy]:
    """Dagster's side's way to Azurite."""
    with FaultProxy(azurite.endpoint_url, fault=azure_error()) as proxy:
        yield proxy


def test_every_message_once_in_order_through_server_busy_on_both_sides(
    container: str,
    function_proxy: FaultProxy,
    dagster_proxy: FaultProxy,
    azure_blob_client: BlobServiceClient,
) -> None:
    function_proxy.probability = dagster_proxy.probability = 0.4

    def fn(pipes: PipesContext, payload: Any) -> str:
        for i in range(MESSAGES):
            pipes.log.info(f"line {i} of {MESSAGES}")
        pipes.report_asset_materialization(metadata={"lines": MESSAGES})
        return str(pipes.get_extra("who"))

    result = materialize_session(
        # the session is kept (cleanup=False) to count its chunks
        **reader_and_injector(container, azurite_client(dagster_proxy.url), cleanup=False),
        function=our_function_side(fn, max_chunk_bytes=400),  # two lines a chunk
        extras={"who": "azure"},
    )
    assert result.success, failure_text(result)
    lines = [int(n) for n in re.findall(rf"line (\d+) of {MESSAGES}", logs_of(result))]
    assert lines == list(range(MESSAGES))
    assert materialization_metadata(result, "azure_asset")["lines"] == MESSAGES
    assert result.responses == ["azure"]

    names = list(azure_blob_client.get_container_client(container).list_blob_names())
    claims = [name for name in names if f"{CLAIMS_FOLDER}/" in name]
    assert len(claims) == 1, "the session was claimed once, through the faults"
    chunks = [
        int(name.rsplit("/", 1)[1].removesuffix(".json")) for name in names if name not in claims
    ]
    assert sorted(chunks) == list(range(1, len(chunks) + 1)) and len(chunks) > 100
    assert not [name for name in names if name.startswith("ctx/")], "context blob deleted"
    for proxy in (function_proxy, dagster_proxy):
        share = sum(proxy.injected.values()) / len(proxy.requests)
        assert 0.3 <= share <= 0.5, share


def test_sessions_and_contexts_go_under_the_prefix_infra_azure_grants(
    container: str, function_proxy: FaultProxy, azure_blob_client: BlobServiceClient
) -> None:
    """With no `key_prefix`, the reader, its context fallback and the injector put every blob
    under "dagster-pipes/", infra/azure's default and the only prefix its roles let the function
    write under; `""` asks for the container's root."""
    assert DEFAULT_KEY_PREFIX == "dagster-pipes"
    result = materialize_session(
        message_reader=PipesAzureBlobStorageMessageReader(
            container=container, client=azure_blob_client, cleanup=False
        ),
        context_injector=PipesAzureBlobStorageContextInjector(
            container=container, client=azure_blob_client
        ),
        function=our_function_side(lambda pipes, payload: pipes.log.info("under the prefix")),
    )
    assert result.success, failure_text(result)
    names = list(azure_blob_client.get_container_client(container).list_blob_names())
    under = ("dagster-pipes/messages-", f"dagster-pipes/{CLAIMS_FOLDER}/messages-")
    assert names and all(name.startswith(under) for name in names), names

    for injector in (
        PipesAzureBlobStorageContextInjector(container=container, client=azure_blob_client),
        PipesAzureBlobStorageMessageReader(
            container=container, client=azure_blob_client
        ).blob_context_injector(),
    ):
        with injector.inject_context({}) as params:  # type: ignore[typeddict-item]
            assert params["key"].startswith("dagster-pipes/context-"), params
    at_root = PipesAzureBlobStorageContextInjector(
        container=container, client=azure_blob_client, key_prefix=""
    )
    with at_root.inject_context({}) as params:  # type: ignore[typeddict-item]
        assert params["key"].startswith("context-"), params


def test_a_missing_container_fails_the_step_naming_it_before_the_function_runs(
    dagster_proxy: FaultProxy,
) -> None:
    ran: list[bool] = []
    result = materialize_session(
        **reader_and_injector("no-such-container", azurite_client(dagster_proxy.url)),
        function=our_function_side(lambda pipes, payload: ran.append(True)),
    )
    assert not result.success
    assert "Azure container 'no-such-container' does not exist" in failure_text(result)
    assert ran == []
    # named from the first answer: one PUT of the context, its 404 not retried
    assert [(r.method, r.status) for r in dagster_proxy.requests] == [("PUT", 404)]


def test_denied_credentials_on_dagster_side_fail_before_the_function_runs(
    container: str, dagster_proxy: FaultProxy
) -> None:
    ran: list[bool] = []
    result = materialize_session(
        **reader_and_injector(container, azurite_client(dagster_proxy.url, WRONG_KEY)),
        function=our_function_side(lambda pipes, payload: ran.append(True)),
    )
    assert not result.success
    assert re.search(rf"access to \S+/{container}/\S+ denied", failure_text(result))
    assert ran == []


def test_denied_credentials_on_the_function_side_fail_the_step_naming_the_blob(
    container: str, dagster_proxy: FaultProxy, function_proxy: FaultProxy
) -> None:
    def fn(pipes: PipesContext, payload: Any) -> None:
        pipes.log.info("never arrives")

    result = materialize_session(
        **reader_and_injector(container, azurite_client(dagster_proxy.url), drain_timeout=1),
        function=our_function_side(fn, azurite_client(function_proxy.url, WRONG_KEY)),
    )
    assert not result.success
    failure = failure_text(result)
    assert f"/{container}/" in failure and "denied" in failure
