"""Wire compatibility with the official classes, both ways, on Azurite.

Our Azure writer and loader read by dagster-azure's `PipesAzureBlobStorageMessageReader` and
written for by its `PipesAzureBlobStorageContextInjector`; and dagster_pipes' Azure writer and
loader with our reader and injector. The function side runs in a thread (see `azure_testing`),
and, for the last two tests, in the local Functions host behind our client.
"""

from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient
from dagster_azure.pipes import PipesAzureBlobStorageContextInjector as OfficialInjector
from dagster_azure.pipes import PipesAzureBlobStorageMessageReader as OfficialReader
from dagster_pipes import PipesContext
from support.azure_testing import (
    materialize_session,
    new_container,
    official_function_side,
    our_function_side,
)
from support.dagster_testing import failure_text, logs_of, materialization_metadata, materialize_run

from dagster_pipes_cloud.local.azurite import AzuriteEmulator
from dagster_pipes_cloud.orchestration import (
    PipesAzureBlobStorageContextInjector,
    PipesAzureBlobStorageMessageReader,
    PipesAzureFunctionClient,
)


@pytest.fixture
def container(azurite: AzuriteEmulator) -> str:
    return new_container(azurite, "compat")


def test_our_writer_with_the_official_reader(
    container: str, azure_blob_client: BlobServiceClient
) -> None:
    def fn(pipes: PipesContext, payload: Any) -> str:
        pipes.log.info(f"written by dagster_pipes_cloud for {pipes.get_extra('who')}")
        pipes.report_asset_materialization(metadata={"writer": "dagster_pipes_cloud"})
        return "ours"

    result = materialize_session(
        message_reader=OfficialReader(
            container=container,
            client=azure_blob_client,
            interval=0.1,
            include_stdio_in_messages=True,
        ),
        context_injector=OfficialInjector(container=container, client=azure_blob_client),
        function=our_function_side(fn, azure_blob_client),
        extras={"who": "dagster-azure"},
    )
    assert result.success, failure_text(result)
    assert "written by dagster_pipes_cloud for dagster-azure" in logs_of(result)
    assert materialization_metadata(result, "azure_asset")["writer"] == "dagster_pipes_cloud"
    assert result.responses == ["ours"]


def test_the_official_writer_with_our_reader(
    container: str, azure_blob_client: BlobServiceClient
) -> None:
    def fn(pipes: PipesContext) -> str:
        pipes.log.info(f"written by dagster_pipes for {pipes.get_extra('who')}")
        pipes.report_asset_materialization(metadata={"writer": "dagster_pipes"})
        return "official"

    result = materialize_session(
        # stdio off: dagster_pipes' writer captures it by redirecting this process's fds 1 and 2
        message_reader=PipesAzureBlobStorageMessageReader(
            container=container, client=azure_blob_client, include_stdio_in_messages=False
        ),
        context_injector=PipesAzureBlobStorageContextInjector(
            container=container, client=azure_blob_client
        ),
        function=official_function_side(fn, azure_blob_client),
        extras={"who": "dagster_pipes_cloud"},
    )
    assert result.success, failure_text(result)
    assert "written by dagster_pipes for dagster_pipes_cloud" in logs_of(result)
    assert materialization_metadata(result, "azure_asset")["writer"] == "dagster_pipes"
    assert result.responses == ["official"]
    names = azure_blob_client.get_container_client(container).list_blob_names()
    assert not [name for name in names if name.startswith("context-")], "context blob deleted"


def test_our_azure_function_with_the_official_reader_through_the_host(azure_stack: Any) -> None:
    """Our `azure_function` served by the local host, read by dagster-azure's reader."""
    client = PipesAzureFunctionClient(
        message_reader=OfficialReader(
            container=azure_stack.container,
            client=azure_stack.blob_client(),
            interval=0.1,
            include_stdio_in_messages=True,
        ),
        function_key=azure_stack.function_key,
    )
    result = materialize_run(client, "azure_asset", function_url=azure_stack.url("counting"))
    assert result.success, failure_text(result)
    assert "invocation " in logs_of(result)
    assert "invocation" in materialization_metadata(result, "azure_asset")


def test_the_official_writer_in_a_function_with_our_reader_through_the_host(
    azure_stack: Any,
) -> None:
    """A function written as dagster_pipes documents it, served by the local host, read by ours."""
    client = PipesAzureFunctionClient(
        message_reader=PipesAzureBlobStorageMessageReader(
            container=azure_stack.container, client=azure_stack.blob_client()
        ),
        function_key=azure_stack.function_key,
    )
    result = materialize_run(client, "azure_asset", function_url=azure_stack.url("official_writer"))
    assert result.success, failure_text(result)
    assert "written by dagster_pipes" in logs_of(result)
    assert materialization_metadata(result, "azure_asset")["writer"] == "dagster_pipes"
    assert result.responses == ["official"]
